/** @internal */
import * as CacheEntry from "@stalewise/core/CacheEntry"
import * as CacheMetrics from "@stalewise/core/CacheMetrics"
import * as CacheStore from "@stalewise/core/CacheStore"
import * as Diagnostics from "@stalewise/core/Diagnostics"
import * as EntryCodec from "@stalewise/core/EntryCodec"
import { PolicyError, positiveInteger } from "@stalewise/core/PolicyError"
import * as TimePolicy from "@stalewise/core/TimePolicy"
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Runtime from "effect/Runtime"
import type * as Schema from "effect/Schema"
import type { ChainableCommander, Cluster, Redis } from "ioredis"
import * as Crypto from "node:crypto"
import * as RedisClient from "../RedisClient.js"
import * as ClusterSlots from "./cluster.js"
import * as ReadBatcher from "./readBatcher.js"
import * as Script from "./script.js"

const backend = "redis"

const sha1 = (data: string | Buffer): string => Crypto.createHash("sha1").update(data).digest("hex")

/** @internal */
export const defaultKeyPrefix = "stalewise:"

/** @internal */
export interface Options {
  readonly keyPrefix?: string | undefined
  readonly scanCount?: number | undefined
  readonly backgroundWrites?: number | undefined
  readonly batchReads?: boolean | undefined
}

/**
 * A Redis store: `setInBackground` is always there (with `backgroundWrites: 0` it waits like
 * `set`).
 *
 * @internal
 */
export interface Store extends CacheStore.CacheStore.Service {
  readonly setInBackground: NonNullable<CacheStore.CacheStore.Service["setInBackground"]>
}

/**
 * What a write invalidates in other instances' memory: one key or every key under a prefix.
 *
 * @internal
 */
export type Invalidation = { readonly key: string } | { readonly prefix: string }

/**
 * Publishes an invalidation after each write, in the same transaction as the write itself (one
 * round trip, and other instances never see the write without the message).
 *
 * @internal
 */
export interface Notifier {
  readonly channel: string
  readonly message: (invalidation: Invalidation) => string
}

/**
 * Escapes Redis glob metacharacters, so a prefix matches itself literally in `SCAN … MATCH`.
 *
 * @internal
 */
export const escapeGlob = (literal: string): string => literal.replace(/[*?[\]\\]/g, "\\$&")

// The same rule as the core backends: positive and finite.
const leaseMillis = (duration: Duration.DurationInput): Either.Either<number, PolicyError> =>
  Either.map(TimePolicy.finiteDuration("leaseDuration", duration), Duration.toMillis)

type Command = readonly [string, ...Array<string | number>]

// A one-line account of a background write's failure, for its log line.
const describeCause = (cause: Cause.Cause<CacheStore.CacheStoreError>): string =>
  Option.match(Cause.failureOption(cause), {
    onNone: () => Cause.isInterruptedOnly(cause) ? "interrupted" : "defect",
    onSome: (error) => error.message
  })

// Runs a MULTI … EXEC or pipeline and fails with the first command error in it.
const exec = async (commands: ChainableCommander): Promise<Array<unknown>> => {
  const results = await commands.exec()
  if (results === null) throw new Error("transaction aborted")
  return results.map(([error, result]) => {
    if (error) throw error
    return result
  })
}

/**
 * The key layout of a store: entries under `${keyPrefix}v:`, leases under `${keyPrefix}l:`, so
 * that a prefix delete (even of the empty prefix) can never reach a lease. On a Redis Cluster the
 * cache key is a hash tag (`${keyPrefix}v:{${key}}`, `${keyPrefix}l:{${key}}`): a key's entry and
 * its lease share one hash slot (one node, so a script may touch both), while different keys
 * spread over the slots; a prefix still matches the keys' beginnings (`v:{prefix*`).
 *
 * @internal
 */
export const layout = (keyPrefix: string, cluster = false) =>
  cluster
    ? {
      entry: (key: string) => `${keyPrefix}v:{${key}}`,
      lease: (key: string) => `${keyPrefix}l:{${key}}`,
      entryPattern: (prefix: string) => `${escapeGlob(`${keyPrefix}v:{${prefix}`)}*`
    }
    : {
      entry: (key: string) => `${keyPrefix}v:${key}`,
      lease: (key: string) => `${keyPrefix}l:${key}`,
      entryPattern: (prefix: string) => `${escapeGlob(`${keyPrefix}v:${prefix}`)}*`
    }

/**
 * Deletes every key matching `pattern` on a cluster: each master is walked with `SCAN` (a
 * cluster's keys are spread over its masters), and each batch found is unlinked through the
 * cluster client, one `UNLINK` per key, so that each goes to its slot's current owner (a key
 * being migrated follows `ASK`). Masters are walked concurrently. Returns how many were removed.
 *
 * @internal
 */
export const deleteMatchingOnCluster = async (
  cluster: Cluster,
  pattern: string,
  scanCount: number
): Promise<number> => {
  const walk = async (node: Redis): Promise<number> => {
    let removed = 0
    let cursor = "0"
    do {
      const [next, batch] = await node.scan(cursor, "MATCH", pattern, "COUNT", scanCount)
      cursor = next
      // SCAN may return a key twice; UNLINK counts only keys it removed.
      const unlinked = await Promise.all(batch.map((key) => cluster.unlink(key)))
      for (const count of unlinked) removed += count
    } while (cursor !== "0")
    return removed
  }
  const counts = await Promise.all(cluster.nodes("master").map(walk))
  return counts.reduce((sum, count) => sum + count, 0)
}

/** @internal */
export const make = (
  redis: RedisClient.RedisClient.Service,
  options: Options = {},
  notifier?: Notifier | undefined
): Effect.Effect<Store, PolicyError> =>
  Effect.gen(function*() {
    const onCluster = RedisClient.isCluster(redis.client)
    const keys = layout(options.keyPrefix ?? defaultKeyPrefix, onCluster)
    const scanCount = yield* positiveInteger("scanCount", options.scanCount ?? 1_000)
    const backgroundWrites = options.backgroundWrites ?? 1_000
    if (!(Number.isSafeInteger(backgroundWrites) && backgroundWrites >= 0)) {
      return yield* new PolicyError({
        reason: "InvalidValue",
        option: "backgroundWrites",
        detail: `${backgroundWrites} is not a non-negative integer`
      })
    }
    const runFork = Runtime.runFork(yield* Effect.runtime<never>())
    // Concurrent reads share round trips (a pipeline per tick), unless `batchReads: false`.
    // (Not on a cluster: a pipeline there must keep to one slot; ioredis routes each GET.)
    const batched = options.batchReads === false || RedisClient.isCluster(redis.client)
      ? undefined
      : ReadBatcher.make(redis.client)
    const readEntry = (client: RedisClient.Connection, key: string): Promise<string | null> =>
      batched === undefined ? client.get(key) : batched(key)
    // The store's time source is the Clock present when it is built (TestClock in tests).
    const clock = yield* Effect.clock
    const counters = CacheMetrics.makeStoreCounters(backend)
    const warnings = Diagnostics.makeWarnings()

    const toStoreError = (method: string) => (error: RedisClient.RedisError) =>
      new CacheStore.CacheStoreError({
        reason: error.reason === "Timeout" ? "Timeout" : "Unavailable",
        backend,
        method,
        cause: error
      })
    // Writes, deletes and leases run in a span; reads do not: on a local Redis a span costs
    // several times the GET itself, and reads are the hot path.
    const call = <A>(
      method: string,
      f: (client: RedisClient.Connection) => Promise<A>
    ): Effect.Effect<A, CacheStore.CacheStoreError> =>
      method === "get"
        ? Effect.mapError(redis.use(method, f), toStoreError(method))
        : redis.use(method, f).pipe(
          Effect.mapError(toStoreError(method)),
          Effect.withSpan(`stalewise.redis.${method}`, { kind: "client", attributes: { "db.system": "redis" } })
        )
    const counted = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
      Effect.tapError(effect, () => Effect.sync(counters.error))

    // A write is one command; with a notifier, it and its invalidation message are one MULTI … EXEC.
    const write = (method: string, command: Command, invalidation: Invalidation) =>
      call(method, (client) =>
        notifier === undefined
          ? client.call(...command)
          : exec(client.multi().call(...command).publish(notifier.channel, notifier.message(invalidation))))

    const remove = (key: string, method: string) => write(method, ["UNLINK", keys.entry(key)], { key })

    // Compare-and-delete by digest: the bytes read are never sent back. A value that is not
    // valid UTF-8 reads as another string than its bytes: then (and only then) its bytes are
    // read once more to digest them.
    const deleteIfUnchanged = (client: RedisClient.Connection, key: string, json: string): Promise<unknown> =>
      Script.run(client, Script.deleteIfDigest, [keys.entry(key)], [sha1(json)]).then(async (deleted) => {
        if (deleted !== -1) return deleted
        const bytes = await client.getBuffer(keys.entry(key))
        return bytes !== null && bytes.toString("utf8") === json
          ? Script.run(client, Script.deleteIfDigest, [keys.entry(key)], [sha1(bytes)])
          : 0
      })

    const dropUndecodable = (key: string, json: string) =>
      warnings.warn("undecodable", "stalewise: dropped a stored entry that failed to decode", { backend, key }).pipe(
        Effect.zipRight(call("get", (client) => deleteIfUnchanged(client, key, json))),
        // The read is a miss either way; a failing cleanup is retried by the next read.
        Effect.catchAll((error) => Effect.logDebug("stalewise: could not drop an undecodable entry", error.message))
      )

    const deletePrefix = (prefix: string) =>
      Effect.gen(function*() {
        const pattern = keys.entryPattern(prefix)
        if (onCluster) {
          const removed = yield* call(
            "deletePrefix",
            (client) => deleteMatchingOnCluster(client as Cluster, pattern, scanCount)
          )
          if (notifier !== undefined) {
            yield* call("deletePrefix", (client) => client.publish(notifier.channel, notifier.message({ prefix })))
          }
          return removed
        }
        const scan = (cursor: string) =>
          call("deletePrefix", (client) => client.scan(cursor, "MATCH", pattern, "COUNT", scanCount))
        // A batch is unlinked in the same round trip as the next SCAN.
        const unlinkThenScan = (batch: ReadonlyArray<string>, cursor: string) =>
          call(
            "deletePrefix",
            (client) => exec(client.pipeline().unlink(...batch).scan(cursor, "MATCH", pattern, "COUNT", scanCount))
          ).pipe(
            Effect.map(([unlinked, next]) => [unlinked as number, next as [string, Array<string>]] as const)
          )
        let removed = 0
        let next = yield* scan("0")
        while (true) {
          const [cursor, batch] = next
          if (cursor === "0") {
            // SCAN may return a key twice; UNLINK counts only keys it removed.
            if (batch.length > 0) removed += yield* call("deletePrefix", (client) => client.unlink(...batch))
            break
          }
          if (batch.length === 0) {
            next = yield* scan(cursor)
            continue
          }
          const [unlinked, scanned] = yield* unlinkThenScan(batch, cursor)
          removed += unlinked
          next = scanned
        }
        if (notifier !== undefined) {
          yield* call("deletePrefix", (client) => client.publish(notifier.channel, notifier.message({ prefix })))
        }
        return removed
      })

    // The command that stores `entry`: SET with the remaining time to live, or UNLINK for an
    // entry already expired by `Clock`.
    const setCommand = <A, I>(key: string, entry: CacheEntry.CacheEntry<A>, schema?: Schema.Schema<A, I>) => {
      const remaining = CacheEntry.remainingMillis(entry, clock.unsafeCurrentTimeMillis())
      if (remaining !== undefined && remaining <= 0) {
        return Either.right(["UNLINK", keys.entry(key)] as const satisfies Command)
      }
      return Either.map(
        EntryCodec.encode(entry, schema, { backend, method: "set" }),
        (value): Command =>
          remaining === undefined
            ? ["SET", keys.entry(key), value]
            : ["SET", keys.entry(key), value, "PX", Math.ceil(remaining)]
      )
    }

    // --- Writes in the background (after upstream calls) --------------------------------------------
    // Each is sent at once (so it is ordered with this connection's other commands) and awaited by
    // nobody; its entry is kept here until it has landed or failed, so that this instance reads
    // its own writes. Bounded: past `backgroundWrites` in flight (a Redis that stopped answering
    // holds each for `commandTimeout`), writes are dropped and counted. When the connection closes
    // (the layer's scope), QUIT waits for their answers; a forced disconnect fails them.
    const unlanded = new Map<string, { readonly entry: CacheEntry.CacheEntry<unknown> }>()
    let inFlight = 0
    const forget = (key: string) => {
      if (unlanded.size > 0) unlanded.delete(key)
    }
    const forgetPrefix = (prefix: string) => {
      for (const key of unlanded.keys()) if (key.startsWith(prefix)) unlanded.delete(key)
    }
    const inBackground = (key: string, command: Command, entry: CacheEntry.CacheEntry<unknown> | undefined) => {
      if (inFlight >= backgroundWrites) {
        counters.writeDropped()
        return
      }
      inFlight++
      const own = entry === undefined ? undefined : { entry }
      if (own === undefined) forget(key)
      else unlanded.set(key, own)
      runFork(write("set", command, { key })).addObserver((exit) => {
        inFlight--
        if (own !== undefined && unlanded.get(key) === own) unlanded.delete(key)
        if (Exit.isFailure(exit)) {
          counters.error()
          runFork(
            Diagnostics.warningsOf(store).warn(
              "store-write-failed/background",
              "stalewise: store write failed, value not cached",
              { backend, key, error: describeCause(exit.cause) }
            )
          )
        }
      })
    }

    const store: Store = {
      [CacheStore.TypeId]: CacheStore.TypeId,
      backend,
      // the hot path: one error mapping that also counts, instead of `call` plus `counted`
      get: <A, I>(key: string, schema?: Schema.Schema<A, I>) => {
        // this instance's own write, not landed yet
        const own = unlanded.size > 0 ? unlanded.get(key) : undefined
        if (own !== undefined && !CacheEntry.isExpired(own.entry, clock.unsafeCurrentTimeMillis())) {
          counters.hit()
          return Effect.succeed(Option.some(own.entry as CacheEntry.CacheEntry<A>))
        }
        return Effect.flatMap(
          Effect.mapError(redis.use("get", (client) => readEntry(client, keys.entry(key))), (error) => {
            counters.error()
            return toStoreError("get")(error)
          }),
          (json): Effect.Effect<
            Option.Option<CacheEntry.CacheEntry<A>>
          > => {
            if (json === null) {
              counters.miss()
              return Effect.succeedNone
            }
            const entry = EntryCodec.decode(json, schema)
            if (Option.isNone(entry)) {
              counters.decodeFailure()
              counters.miss()
              return Effect.as(dropUndecodable(key, json), entry)
            }
            // Redis drops the key at its PX in real time; the Clock decides before that.
            if (CacheEntry.isExpired(entry.value, clock.unsafeCurrentTimeMillis())) {
              counters.miss()
              return Effect.succeedNone
            }
            counters.hit()
            return Effect.succeed(entry)
          }
        )
      },
      // one MGET for every key this instance has no unlanded write of; each decoded as `get` does
      getMany: <A, I>(names: ReadonlyArray<string>, schema?: Schema.Schema<A, I>) =>
        Effect.suspend(() => {
          const now = clock.unsafeCurrentTimeMillis()
          const results: Array<Option.Option<CacheEntry.CacheEntry<A>>> = new Array(names.length)
          const remote: Array<number> = []
          names.forEach((key, i) => {
            const own = unlanded.size > 0 ? unlanded.get(key) : undefined
            if (own !== undefined && !CacheEntry.isExpired(own.entry, now)) {
              counters.hit()
              results[i] = Option.some(own.entry as CacheEntry.CacheEntry<A>)
            } else {
              remote.push(i)
            }
          })
          if (remote.length === 0) return Effect.succeed(results)
          return Effect.flatMap(
            Effect.mapError(
              redis.use("mget", (client) => ClusterSlots.mget(client, remote.map((i) => keys.entry(names[i]!)))),
              (error) => {
                counters.error()
                return toStoreError("getMany")(error)
              }
            ),
            (jsons) => {
              const drops: Array<Effect.Effect<unknown>> = []
              const at = clock.unsafeCurrentTimeMillis()
              remote.forEach((i, n) => {
                const json = jsons[n] ?? null
                if (json === null) {
                  counters.miss()
                  results[i] = Option.none()
                  return
                }
                const entry = EntryCodec.decode(json, schema)
                if (Option.isNone(entry)) {
                  counters.decodeFailure()
                  counters.miss()
                  drops.push(dropUndecodable(names[i]!, json))
                  results[i] = Option.none()
                  return
                }
                if (CacheEntry.isExpired(entry.value, at)) {
                  counters.miss()
                  results[i] = Option.none()
                  return
                }
                counters.hit()
                results[i] = entry
              })
              return drops.length === 0
                ? Effect.succeed(results)
                : Effect.as(Effect.all(drops, { discard: true }), results)
            }
          )
        }),
      set: (key, entry, schema) =>
        Effect.suspend(() => {
          const command = setCommand(key, entry, schema)
          if (Either.isLeft(command)) return Effect.fail(command.left)
          forget(key)
          return write("set", command.right, { key })
        }).pipe(Effect.asVoid, counted),
      setInBackground: (key, entry, schema) =>
        Effect.suspend(() => {
          const command = setCommand(key, entry, schema)
          if (Either.isLeft(command)) return Effect.fail(command.left)
          if (backgroundWrites === 0) {
            forget(key)
            return Effect.asVoid(write("set", command.right, { key }))
          }
          inBackground(key, command.right, command.right[0] === "SET" ? entry : undefined)
          return Effect.void
        }).pipe(counted),
      delete: (key) =>
        Effect.suspend(() => {
          forget(key)
          return counted(Effect.asVoid(remove(key, "delete")))
        }),
      deletePrefix: (prefix) =>
        Effect.suspend(() => {
          forgetPrefix(prefix)
          return counted(deletePrefix(prefix))
        }),
      acquireLease: (key, duration) =>
        Effect.flatMap(leaseMillis(duration), (millis) => {
          const now = clock.unsafeCurrentTimeMillis()
          const lease: CacheStore.Lease = { key, token: Crypto.randomUUID(), expiresAt: now + millis }
          return call(
            "acquireLease",
            (client) =>
              Script.run(client, Script.acquireLease, [keys.lease(key)], [
                lease.token,
                now,
                lease.expiresAt,
                Math.max(1, Math.ceil(millis))
              ])
          ).pipe(
            Effect.map((won) => won === 1 ? Option.some(lease) : Option.none()),
            counted
          )
        }),
      releaseLease: (lease) =>
        call(
          "releaseLease",
          (client) =>
            Script.run(client, Script.releaseLease, [keys.lease(lease.key)], [
              lease.token,
              clock.unsafeCurrentTimeMillis()
            ])
        ).pipe(Effect.map((released) => released === 1), counted)
    }
    return store
  })
