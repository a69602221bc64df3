/**
 * `TieredStore`: a `CacheStore` with an in-process memory tier in front of Redis, kept coherent
 * across instances by invalidation messages over Redis pub/sub. Reads are served from memory
 * when they can (no round trip), writes go to both tiers, and every write tells the other
 * instances to drop their memory copy.
 *
 * @since 0.1.0
 */
import * as CacheEntry from "@stalewise/core/CacheEntry"
import * as CacheMetrics from "@stalewise/core/CacheMetrics"
import * as CacheStore from "@stalewise/core/CacheStore"
import { PolicyError } from "@stalewise/core/PolicyError"
import * as TimePolicy from "@stalewise/core/TimePolicy"
import * as Cause from "effect/Cause"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as FiberSet from "effect/FiberSet"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Crypto from "node:crypto"
import * as internal from "./internal/redisStore.js"
import * as RedisClient from "./RedisClient.js"
import { clientDefaults } from "./RedisStore.js"
import type * as RedisStore from "./RedisStore.js"

/**
 * Options of the tiered store: the Redis tier's (`keyPrefix`, `scanCount`) and the memory
 * tier's.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options extends RedisStore.Options {
  /** The memory tier's bounds (entry count, bytes); core's memory store defaults otherwise. */
  readonly memory?: CacheStore.MemoryOptions | undefined
  /**
   * The longest an entry stays in the memory tier without being read from Redis again, whatever
   * its own `expiresAt`: the bound on how stale a memory copy can get when an invalidation
   * message is lost (bus down, a reconnect). Positive and finite. Default 1 minute.
   */
  readonly memoryTimeToLive?: Duration.DurationInput | undefined
  /** The pub/sub channel of invalidation messages. Default `${keyPrefix}invalidate`. */
  readonly channel?: string | undefined
}

/**
 * Options of {@link layer}: the connection's and the store's. Unless given, the connections get
 * `RedisStore.clientDefaults`.
 *
 * @since 0.1.0
 * @category models
 */
export interface LayerOptions extends RedisClient.RedisOptions, Options {}

/**
 * A tiered store: a `CacheStore.Service` (its `backend` is `"tiered"`) that also shows its
 * memory tier.
 *
 * @since 0.1.0
 * @category models
 */
export interface TieredStore extends CacheStore.CacheStore.Service {
  /** Identifies this instance in invalidation messages; its own messages are ignored. */
  readonly instanceId: string
  /** The entry in this instance's memory tier, without reading Redis. */
  readonly peekMemory: <A = unknown>(key: string) => Effect.Effect<Option.Option<CacheEntry.CacheEntry<A>>>
}

const backend = "tiered"
const defaultMemoryTimeToLive = Duration.minutes(1)

/** An invalidation message: from instance `i`, drop key `k` or every key under prefix `p`. */
interface Message {
  readonly i: string
  readonly k?: string
  readonly p?: string
}

const parseMessage = (message: string): Message | undefined => {
  try {
    const u: unknown = JSON.parse(message)
    if (typeof u !== "object" || u === null) return undefined
    const { i, k, p } = u as Record<string, unknown>
    if (typeof i !== "string") return undefined
    if (typeof k === "string") return { i, k }
    if (typeof p === "string") return { i, p }
    return undefined
  } catch {
    return undefined
  }
}

const memoryTimeToLiveMillis = (input: Duration.DurationInput): Either.Either<number, PolicyError> =>
  Either.flatMap(TimePolicy.positiveDuration("memoryTimeToLive", input), (d) =>
    Duration.isFinite(d)
      ? Either.right(Duration.toMillis(d))
      : Either.left(
        new PolicyError({ reason: "InvalidDuration", option: "memoryTimeToLive", detail: "must be finite" })
      ))

/** A read from Redis in flight; an invalidation of its key while it runs keeps it out of memory. */
interface PendingRead {
  dirty: boolean
}

/**
 * Builds a tiered store over the `RedisClient` in context, with a second connection of its own
 * (the subscriber, closed with the scope). Builds while Redis is down (the subscriber subscribes
 * once it connects); fails with `RedisError` when the subscriber is refused (credentials) or,
 * connected, cannot subscribe, and with `PolicyError` for invalid memory options.
 *
 * **Details**
 *
 * - `get`: the memory tier first; on a miss, Redis, and a Redis hit fills the memory tier (for at
 *   most `memoryTimeToLive`). A read that an invalidation overtakes does not fill memory, so a
 *   late answer never brings an old value back.
 * - `set` / `delete` / `deletePrefix`: Redis first, together with an invalidation message on
 *   `channel` (one `MULTI … EXEC` for a key, after the last `UNLINK` for a prefix); then this
 *   instance's memory tier. The other instances drop their memory copy when the message arrives;
 *   each instance ignores its own messages.
 * - When Redis fails, `set` still keeps the value in this instance's memory tier (the failure is
 *   returned and counted), so an instance keeps serving what it has while Redis is down.
 * - Messages are not delivered while the subscriber is disconnected: after each reconnect it
 *   subscribes again and empties the memory tier, and `memoryTimeToLive` bounds how long any
 *   memory copy is served without a look at Redis.
 * - Leases are Redis leases (`RedisStore`). The memory tier keeps live values: the schema given
 *   to `get` applies to values read from Redis.
 *
 * @example
 * ```ts
 * import { RedisClient, RedisStore, TieredStore } from "@stalewise/redis"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const store = yield* TieredStore.make({ memoryTimeToLive: "30 seconds", memory: { capacity: 5_000 } })
 *   return yield* store.get("users:get:1")
 * }).pipe(
 *   Effect.scoped,
 *   Effect.provide(RedisClient.layer({ host: "127.0.0.1", port: 6379, ...RedisStore.clientDefaults }))
 * )
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = Effect.fnUntraced(function*(
  options: Options = {}
): Effect.fn.Return<TieredStore, RedisClient.RedisError | PolicyError, RedisClient.RedisClient | Scope.Scope> {
  const redis = yield* RedisClient.RedisClient
  const keyPrefix = options.keyPrefix ?? internal.defaultKeyPrefix
  const channel = options.channel ?? `${keyPrefix}invalidate`
  const memoryTtl = yield* memoryTimeToLiveMillis(options.memoryTimeToLive ?? defaultMemoryTimeToLive)
  const sizeOf = options.memory?.sizeOf
  // The memory tier holds each entry as the value of a wrapper entry whose expiresAt is capped.
  const memory = yield* CacheStore.makeMemory({
    ...options.memory,
    sizeOf: sizeOf === undefined ? undefined : (wrapped) => sizeOf((wrapped as CacheEntry.CacheEntry<unknown>).value)
  })
  const clock = yield* Effect.clock
  const counters = CacheMetrics.makeStoreCounters(backend)
  const instanceId = Crypto.randomUUID()
  const remote = yield* internal.make(redis, options, {
    channel,
    message: (target) =>
      JSON.stringify("key" in target ? { i: instanceId, k: target.key } : { i: instanceId, p: target.prefix })
  })

  const pending = new Map<string, Set<PendingRead>>()
  const track = (key: string, read: PendingRead) => {
    const reads = pending.get(key)
    if (reads === undefined) pending.set(key, new Set([read]))
    else reads.add(read)
  }
  const untrack = (key: string, read: PendingRead) => {
    const reads = pending.get(key)
    if (reads !== undefined && reads.delete(read) && reads.size === 0) pending.delete(key)
  }
  const markDirty = (matches: (key: string) => boolean) => {
    for (const [key, reads] of pending) {
      if (matches(key)) { for (const read of reads) read.dirty = true }
    }
  }

  // Memory operations are synchronous effects: run them in place (event handlers included).
  const dropKey = (key: string) => {
    const reads = pending.get(key)
    if (reads !== undefined) { for (const read of reads) read.dirty = true }
    Effect.runSync(memory.delete(key))
  }
  const dropPrefix = (prefix: string) => {
    markDirty((key) => key.startsWith(prefix))
    Effect.runSync(memory.deletePrefix(prefix))
  }
  const keep = <A>(key: string, entry: CacheEntry.CacheEntry<A>) => {
    const expiresAt = Math.min(entry.expiresAt, clock.unsafeCurrentTimeMillis() + memoryTtl)
    Effect.runSync(memory.set(key, CacheEntry.make({ ...entry, value: entry, expiresAt })))
  }

  const subscriber = yield* redis.duplicate({ autoResubscribe: false })
  const run = yield* FiberSet.makeRuntime<never>()
  const onMessage = (from: string, message: string) => {
    if (from !== channel) return
    const parsed = parseMessage(message)
    if (parsed === undefined || parsed.i === instanceId) return
    if (parsed.k !== undefined) dropKey(parsed.k)
    else if (parsed.p !== undefined) dropPrefix(parsed.p)
  }
  // Messages published while the subscriber was away are lost: subscribe again, then forget
  // everything the memory tier may have missed.
  const resubscribe = subscriber.use("subscribe", (client) => client.subscribe(channel)).pipe(
    Effect.zipRight(Effect.sync(() => dropPrefix(""))),
    Effect.catchAll((error) => Effect.logWarning("stalewise: could not resubscribe to invalidations", error)),
    Effect.annotateLogs({ backend, channel })
  )
  const onReady = () => {
    run(resubscribe)
  }
  yield* Effect.acquireRelease(
    Effect.sync(() => {
      subscriber.client.on("message", onMessage)
      subscriber.client.on("ready", onReady)
    }),
    () =>
      Effect.sync(() => {
        subscriber.client.off("message", onMessage)
        subscriber.client.off("ready", onReady)
      })
  )
  // Redis down at build time: the subscriber subscribes on its first "ready", like after a reconnect.
  if (subscriber.client.status === "ready") yield* subscriber.use("subscribe", (client) => client.subscribe(channel))

  const counted = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
    Effect.tapError(effect, () => Effect.sync(counters.error))

  const store: TieredStore = {
    [CacheStore.TypeId]: CacheStore.TypeId,
    backend,
    instanceId,
    peekMemory: <A>(key: string) =>
      // the memory store never fails
      Effect.orDie(Effect.map(memory.get<CacheEntry.CacheEntry<A>>(key), Option.map((wrapped) => wrapped.value))),
    get: <A, I>(key: string, schema?: Schema.Schema<A, I>) =>
      Effect.flatMap(memory.get<CacheEntry.CacheEntry<A>>(key), (local) => {
        if (Option.isSome(local)) {
          counters.hit()
          return Effect.succeed(Option.some(local.value.value))
        }
        const read: PendingRead = { dirty: false }
        track(key, read)
        return remote.get(key, schema).pipe(
          Effect.tap((entry) =>
            Effect.sync(() => {
              if (Option.isNone(entry)) return counters.miss()
              counters.hit()
              if (!read.dirty) keep(key, entry.value)
            })
          ),
          Effect.ensuring(Effect.sync(() => untrack(key, read))),
          counted
        )
      }),
    set: (key, entry, schema) =>
      remote.set(key, entry, schema).pipe(
        Effect.onExit((exit) =>
          Effect.sync(() => {
            // Reads that started before the write completed must not fill memory with what they saw.
            dropKey(key)
            if (Exit.isSuccess(exit)) return keep(key, entry)
            // Redis down or slow: this instance keeps serving the value it has.
            if (isBackendFailure(exit)) keep(key, entry)
          })
        ),
        counted
      ),
    // The memory tier has it at once; Redis in the background (and on failure, as with `set`,
    // this instance keeps serving it).
    setInBackground: (key, entry, schema) =>
      Effect.suspend(() => {
        dropKey(key)
        keep(key, entry)
        return counted(remote.setInBackground(key, entry, schema))
      }),
    delete: (key) =>
      Effect.suspend(() => {
        dropKey(key)
        return remote.delete(key).pipe(Effect.ensuring(Effect.sync(() => dropKey(key))), counted)
      }),
    deletePrefix: (prefix) =>
      Effect.suspend(() => {
        dropPrefix(prefix)
        return remote.deletePrefix(prefix).pipe(Effect.ensuring(Effect.sync(() => dropPrefix(prefix))), counted)
      }),
    acquireLease: (key, duration) => counted(remote.acquireLease(key, duration)),
    releaseLease: (lease) => counted(remote.releaseLease(lease))
  }
  return store
})

// Unavailable or Timeout: Redis did not take the write (or may not have). Not Encode (the value
// cannot be stored anywhere that serialises) and not an interruption.
const isBackendFailure = (exit: Exit.Exit<void, CacheStore.CacheStoreError>): boolean =>
  Exit.isFailure(exit) && Option.exists(Cause.failureOption(exit.cause), (error) => error.reason !== "Encode")

/**
 * A tiered store over the `RedisClient` in context (which keeps owning that connection); the
 * subscriber connection is the layer's own.
 *
 * @example
 * ```ts
 * import { RedisClient, RedisStore, TieredStore } from "@stalewise/redis"
 * import { Layer } from "effect"
 *
 * const RedisLive = RedisClient.layer({ host: "127.0.0.1", port: 6379, ...RedisStore.clientDefaults })
 * const StoreLive = TieredStore.layerFromClient({ memoryTimeToLive: "30 seconds" }).pipe(Layer.provide(RedisLive))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerFromClient = (
  options?: Options
): Layer.Layer<CacheStore.CacheStore, RedisClient.RedisError | PolicyError, RedisClient.RedisClient> =>
  Layer.scoped(CacheStore.CacheStore, make(options))

/**
 * A tiered store with connections of its own (commands and subscriber), opened when the layer is
 * built and closed when it is released.
 *
 * @example
 * ```ts
 * import { TieredStore } from "@stalewise/redis"
 *
 * const StoreLive = TieredStore.layer({
 *   host: "127.0.0.1",
 *   port: 6379,
 *   keyPrefix: "myapp:",
 *   memory: { capacity: 10_000 },
 *   memoryTimeToLive: "1 minute"
 * })
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: LayerOptions
): Layer.Layer<CacheStore.CacheStore, RedisClient.RedisError | PolicyError> =>
  Layer.scoped(CacheStore.CacheStore, scoped(options))

/**
 * A tiered store with connections of its own, its options read from `Config`; keep the password
 * in `Config.redacted`.
 *
 * @example
 * ```ts
 * import { TieredStore } from "@stalewise/redis"
 * import { Config } from "effect"
 *
 * const StoreLive = TieredStore.layerConfig({
 *   host: Config.string("REDIS_HOST"),
 *   port: Config.port("REDIS_PORT"),
 *   password: Config.redacted("REDIS_PASSWORD"),
 *   memoryTimeToLive: Config.duration("CACHE_MEMORY_TTL").pipe(Config.withDefault("1 minute"))
 * })
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  config: Config.Config.Wrap<LayerOptions>
): Layer.Layer<CacheStore.CacheStore, RedisClient.RedisError | PolicyError | ConfigError.ConfigError> =>
  Layer.scoped(CacheStore.CacheStore, Effect.flatMap(Config.unwrap(config), scoped))

const scoped = (options: LayerOptions) => {
  const { backgroundWrites, channel, keyPrefix, memory, memoryTimeToLive, scanCount, ...connection } = options
  return Effect.flatMap(
    RedisClient.make({ ...clientDefaults, ...connection }),
    (redis) =>
      Effect.provideService(
        make({ backgroundWrites, channel, keyPrefix, memory, memoryTimeToLive, scanCount }),
        RedisClient.RedisClient,
        redis
      )
  )
}
