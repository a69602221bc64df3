/**
 * `TieredStore`: a `CacheStore` with an in-process memory tier in front of Redis, kept coherent
 * across instances through the `InvalidationBus` (Redis pub/sub with `RedisInvalidationBus`).
 * Reads are served from memory when they can (no round trip), writes go to both tiers, and every
 * write tells the other instances to drop their memory copy.
 *
 * @since 0.1.0
 */
import * as CacheEntry from "@stalewise/core/CacheEntry"
import * as CacheMetrics from "@stalewise/core/CacheMetrics"
import * as CacheStore from "@stalewise/core/CacheStore"
import * as Coherence from "@stalewise/core/Coherence"
import * as InvalidationBus from "@stalewise/core/InvalidationBus"
import { PolicyError } from "@stalewise/core/PolicyError"
import * as TimePolicy from "@stalewise/core/TimePolicy"
import * as Cause from "effect/Cause"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as internal from "./internal/redisStore.js"
import * as RedisClient from "./RedisClient.js"
import * as RedisInvalidationBus from "./RedisInvalidationBus.js"
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
   * message is lost without the bus noticing. Positive and finite. Default 1 minute.
   */
  readonly memoryTimeToLive?: Duration.DurationInput | undefined
}

/**
 * Options of {@link layer}: the connection's, the store's and the bus's channel (default
 * `${keyPrefix}invalidate`). Unless given, the connections get `RedisStore.clientDefaults`.
 *
 * @since 0.1.0
 * @category models
 */
export interface LayerOptions extends RedisClient.RedisOptions, Options, RedisInvalidationBus.Options {}

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

const memoryTimeToLiveMillis = (input: Duration.DurationInput): Either.Either<number, PolicyError> =>
  Either.flatMap(TimePolicy.positiveDuration("memoryTimeToLive", input), (d) =>
    Duration.isFinite(d)
      ? Either.right(Duration.toMillis(d))
      : Either.left(
        new PolicyError({ reason: "InvalidDuration", option: "memoryTimeToLive", detail: "must be finite" })
      ))

/**
 * Builds a tiered store over the `RedisClient` and the `InvalidationBus` in context. Fails with
 * `PolicyError` for invalid memory options.
 *
 * **Details**
 *
 * - `get`: the memory tier first; on a miss, Redis, and a Redis hit fills the memory tier (for at
 *   most `memoryTimeToLive`). A read that an invalidation overtakes (made here, or heard on the
 *   bus while the read was on its way) does not fill memory, so a late answer never brings an
 *   old value back.
 * - `set` / `delete` / `deletePrefix`: Redis first, with an invalidation on the bus — in the same
 *   `MULTI … EXEC` as the write on a `RedisInvalidationBus`, after it on another bus; this
 *   instance's memory tier is updated at once. `setInBackground` (the write after an upstream
 *   call) updates memory at once and sends the write and its message to Redis in the background
 *   (on a non-Redis bus it waits, like `set`). The other instances drop their memory copy when
 *   the message arrives; each instance ignores its own messages.
 * - When Redis fails, `set` still keeps the value in this instance's memory tier (the failure is
 *   returned and counted), so an instance keeps serving what it has while Redis is down.
 * - When the bus may have lost messages (a `Flush`: its subscription dropped or came back), the
 *   memory tier is emptied; `memoryTimeToLive` bounds how long any memory copy is served without
 *   a look at Redis.
 * - Leases are Redis leases (`RedisStore`). The memory tier keeps live values: the schema given
 *   to `get` applies to values read from Redis.
 *
 * @example
 * ```ts
 * import { RedisClient, RedisInvalidationBus, RedisStore, TieredStore } from "@stalewise/redis"
 * import { Effect, Layer } from "effect"
 *
 * const RedisLive = RedisClient.layer({ host: "127.0.0.1", port: 6379, ...RedisStore.clientDefaults })
 *
 * const program = Effect.gen(function*() {
 *   const store = yield* TieredStore.make({ memoryTimeToLive: "30 seconds", memory: { capacity: 5_000 } })
 *   return yield* store.get("users:get:1")
 * }).pipe(
 *   Effect.scoped,
 *   Effect.provide(RedisInvalidationBus.layerFromClient().pipe(Layer.provideMerge(RedisLive)))
 * )
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = Effect.fnUntraced(function*(
  options: Options = {}
): Effect.fn.Return<
  TieredStore,
  PolicyError,
  RedisClient.RedisClient | InvalidationBus.InvalidationBus | Scope.Scope
> {
  const redis = yield* RedisClient.RedisClient
  const memoryTtl = yield* memoryTimeToLiveMillis(options.memoryTimeToLive ?? defaultMemoryTimeToLive)
  const sizeOf = options.memory?.sizeOf
  // The memory tier holds each entry as the value of a wrapper entry whose expiresAt is capped.
  const memory = yield* CacheStore.makeMemory({
    ...options.memory,
    sizeOf: sizeOf === undefined ? undefined : (wrapped) => sizeOf((wrapped as CacheEntry.CacheEntry<unknown>).value)
  })
  const clock = yield* Effect.clock
  const counters = CacheMetrics.makeStoreCounters(backend)
  const bus = yield* InvalidationBus.InvalidationBus
  // On a Redis bus, each write and its invalidation are one MULTI … EXEC: they land together,
  // background writes included. On another bus, messages follow the writes.
  const wire = RedisInvalidationBus.wireOf(bus)
  let origin = ""
  const remote = yield* internal.make(
    redis,
    options,
    wire === undefined ? undefined : {
      channel: wire.channel,
      message: (invalidation) =>
        wire.encode({
          ...("key" in invalidation
            ? { _tag: "Key", key: invalidation.key }
            : { _tag: "Prefix", prefix: invalidation.prefix }),
          origin,
          at: clock.unsafeCurrentTimeMillis()
        })
    }
  )

  // Memory operations are synchronous effects: run them in place (bus listeners included).
  const drop = (target: InvalidationBus.Target) =>
    Effect.runSync(target._tag === "Key" ? memory.delete(target.key) : memory.deletePrefix(target.prefix))
  const keep = <A>(key: string, entry: CacheEntry.CacheEntry<A>) => {
    const expiresAt = Math.min(entry.expiresAt, clock.unsafeCurrentTimeMillis() + memoryTtl)
    Effect.runSync(memory.set(key, CacheEntry.make({ ...entry, value: entry, expiresAt })))
  }
  const coherence = yield* Coherence.make({ drop })
  origin = coherence.origin
  // tells the others, unless the write already did
  const announce = (target: InvalidationBus.Target) =>
    wire === undefined ? coherence.invalidate(target) : Effect.sync(() => coherence.overtake(target))
  // Reads in flight must not fill memory with what they saw before the change: overtake them and
  // drop the copy, before the change and again once it is done.
  const invalidateHere = (target: InvalidationBus.Target) => {
    coherence.overtake(target)
    drop(target)
  }

  const counted = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
    Effect.tapError(effect, () => Effect.sync(counters.error))

  const store: TieredStore = {
    [CacheStore.TypeId]: CacheStore.TypeId,
    backend,
    origin: coherence.origin,
    instanceId: coherence.origin,
    peekMemory: <A>(key: string) =>
      // the memory store never fails
      Effect.orDie(Effect.map(memory.get<CacheEntry.CacheEntry<A>>(key), Option.map((wrapped) => wrapped.value))),
    get: <A, I>(key: string, schema?: Schema.Schema<A, I>) =>
      Effect.flatMap(memory.get<CacheEntry.CacheEntry<A>>(key), (local) => {
        if (Option.isSome(local)) {
          counters.hit()
          return Effect.succeed(Option.some(local.value.value))
        }
        const load = coherence.begin(key)
        return remote.get(key, schema).pipe(
          Effect.tap((entry) =>
            Effect.sync(() => {
              if (Option.isNone(entry)) return counters.miss()
              counters.hit()
              if (coherence.mayWrite(load)) keep(key, entry.value)
            })
          ),
          Effect.ensuring(Effect.sync(() => coherence.end(load))),
          counted
        )
      }),
    // the memory tier first, then one round trip (MGET) for the keys it lacks
    getMany: <A, I>(keys: ReadonlyArray<string>, schema?: Schema.Schema<A, I>) =>
      Effect.flatMap(CacheStore.getMany(memory, keys), (locals) => {
        const results: Array<Option.Option<CacheEntry.CacheEntry<A>>> = new Array(keys.length)
        const missing: Array<number> = []
        locals.forEach((local, i) => {
          if (Option.isSome(local)) {
            counters.hit()
            results[i] = Option.some(local.value.value as CacheEntry.CacheEntry<A>)
          } else {
            missing.push(i)
          }
        })
        if (missing.length === 0) return Effect.succeed(results)
        const loads = missing.map((i) => coherence.begin(keys[i]!))
        return CacheStore.getMany(remote, missing.map((i) => keys[i]!), schema).pipe(
          Effect.map((entries) => {
            entries.forEach((entry, n) => {
              const i = missing[n]!
              results[i] = entry
              if (Option.isNone(entry)) return counters.miss()
              counters.hit()
              if (coherence.mayWrite(loads[n]!)) keep(keys[i]!, entry.value)
            })
            return results
          }),
          Effect.ensuring(Effect.sync(() => loads.forEach((load) => coherence.end(load)))),
          counted
        )
      }),
    set: (key, entry, schema) =>
      Effect.suspend(() => {
        const target = { _tag: "Key", key } as const
        invalidateHere(target)
        return remote.set(key, entry, schema).pipe(
          Effect.matchCauseEffect({
            onSuccess: () =>
              Effect.zipRight(
                Effect.sync(() => {
                  invalidateHere(target)
                  keep(key, entry)
                }),
                announce(target)
              ),
            onFailure: (cause) =>
              Effect.zipRight(
                Effect.sync(() => {
                  invalidateHere(target)
                  // Redis down or slow: this instance keeps serving the value it has.
                  if (isBackendFailure(cause)) keep(key, entry)
                }),
                Effect.failCause(cause)
              )
          }),
          counted
        )
      }),
    // The memory tier has it at once; Redis in the background (and on failure, as with `set`, this
    // instance keeps serving it). Without a Redis bus the message must follow the write: it waits.
    setInBackground: (key, entry, schema) =>
      wire === undefined ? store.set(key, entry, schema) : Effect.suspend(() => {
        invalidateHere({ _tag: "Key", key })
        keep(key, entry)
        return counted(remote.setInBackground(key, entry, schema))
      }),
    delete: (key) => invalidating({ _tag: "Key", key }, Effect.asVoid(remote.delete(key))),
    deletePrefix: (prefix) => invalidating({ _tag: "Prefix", prefix }, remote.deletePrefix(prefix)),
    acquireLease: (key, duration) => counted(remote.acquireLease(key, duration)),
    releaseLease: (lease) => counted(remote.releaseLease(lease))
  }

  function invalidating<A>(target: InvalidationBus.Target, change: Effect.Effect<A, CacheStore.CacheStoreError>) {
    return Effect.suspend(() => {
      invalidateHere(target)
      return change.pipe(
        Effect.ensuring(Effect.sync(() => invalidateHere(target))),
        Effect.tap(() => announce(target)),
        counted
      )
    })
  }
  return store
})

// Unavailable or Timeout: Redis did not take the write (or may not have). Not Encode (the value
// cannot be stored anywhere that serialises) and not an interruption.
const isBackendFailure = (cause: Cause.Cause<CacheStore.CacheStoreError>): boolean =>
  Option.exists(Cause.failureOption(cause), (error) => error.reason !== "Encode")

/**
 * A tiered store over the `RedisClient` and the `InvalidationBus` in context (which keep owning
 * their connections): share one bus between the tiered store, CacheFirst's in-process tier and
 * any other L1 of the app.
 *
 * @example
 * ```ts
 * import { RedisClient, RedisInvalidationBus, RedisStore, TieredStore } from "@stalewise/redis"
 * import { Layer } from "effect"
 *
 * const RedisLive = RedisClient.layer({ host: "127.0.0.1", port: 6379, ...RedisStore.clientDefaults })
 * const BusLive = RedisInvalidationBus.layerFromClient({ channel: "myapp:invalidate" })
 * const StoreLive = TieredStore.layerFromClient({ keyPrefix: "myapp:", memoryTimeToLive: "30 seconds" }).pipe(
 *   Layer.provideMerge(BusLive),
 *   Layer.provideMerge(RedisLive)
 * )
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerFromClient = (
  options?: Options
): Layer.Layer<CacheStore.CacheStore, PolicyError, RedisClient.RedisClient | InvalidationBus.InvalidationBus> =>
  Layer.scoped(CacheStore.CacheStore, make(options))

/**
 * A tiered store with connections of its own (commands, and the subscriber of a
 * `RedisInvalidationBus` on `channel`, default `${keyPrefix}invalidate`), opened when the layer
 * is built and closed when it is released.
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
  const {
    backgroundWrites,
    batchReads,
    channel,
    keyPrefix,
    maxResubscribeDelay,
    memory,
    memoryTimeToLive,
    scanCount,
    startupWait,
    ...connection
  } = options
  return Effect.flatMap(
    RedisClient.make({ ...clientDefaults, ...connection }),
    (redis) =>
      Effect.flatMap(
        RedisInvalidationBus.make({
          channel: channel ?? `${keyPrefix ?? internal.defaultKeyPrefix}invalidate`,
          maxResubscribeDelay,
          startupWait
        }),
        (bus) =>
          Effect.provideService(
            make({ backgroundWrites, batchReads, keyPrefix, memory, memoryTimeToLive, scanCount }),
            InvalidationBus.InvalidationBus,
            bus
          )
      ).pipe(Effect.provideService(RedisClient.RedisClient, redis))
  )
}
