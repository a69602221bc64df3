/**
 * `RedisStore`: a `CacheStore` over Redis (ioredis), shared by every process that connects to the
 * same server. Entries are core's JSON envelopes (`EntryCodec`) with a native time-to-live
 * (`SET … PX`); prefix deletes walk the key space with `SCAN` (never `KEYS`); refresh leases are
 * atomic across processes; every command has a timeout and every failure is a typed, counted
 * `CacheStoreError`.
 *
 * **Key layout** (`keyPrefix` defaults to `"stalewise:"`): the entry for `key` lives at
 * `${keyPrefix}v:${key}` and its lease at `${keyPrefix}l:${key}`, so a namespace is a Redis key
 * prefix and a prefix delete can never reach a lease. On a Redis Cluster (`nodes`) the key is a
 * hash tag, `${keyPrefix}v:{${key}}` and `${keyPrefix}l:{${key}}`, so that both share one hash
 * slot, and prefix deletes walk every master (docs/redis-cluster.md).
 *
 * @since 0.1.0
 */
import * as CacheStore from "@stalewise/core/CacheStore"
import type { PolicyError } from "@stalewise/core/PolicyError"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as internal from "./internal/redisStore.js"
import * as RedisClient from "./RedisClient.js"

/**
 * Options of the store itself (the connection has its own, `RedisClient.RedisOptions`).
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /**
   * Prepended to every Redis key the store uses. Default `"stalewise:"`. Stores with different
   * prefixes on one server never see each other's entries or leases.
   */
  readonly keyPrefix?: string | undefined
  /**
   * The `COUNT` hint of each `SCAN` in `deletePrefix`, hence about how many keys each `UNLINK`
   * removes at once. Default 1,000.
   */
  readonly scanCount?: number | undefined
  /**
   * The most writes after upstream calls (`setInBackground`, what strategies use) in flight at
   * once. Those writes do not make the caller wait: a Redis that stopped answering holds each for
   * `commandTimeout`, and past this bound new ones are dropped (not cached) and counted in
   * `CacheMetrics.storeWritesDropped`. `0` makes them wait for Redis like `set`. Default 1,000.
   */
  readonly backgroundWrites?: number | undefined
  /**
   * Whether reads issued at the same moment share a round trip: the GETs of concurrent callers
   * (those issued while the current microtasks run) leave together as one pipeline, each keeping
   * its own answer or error. A lone read is a plain GET. Default true; `false` sends each GET on
   * its own.
   */
  readonly batchReads?: boolean | undefined
}

/**
 * Options of {@link layer}: the connection's and the store's. Unless given, the connection is
 * made with `enableOfflineQueue: false` and `maxRetriesPerRequest: 0` (see {@link clientDefaults}).
 *
 * @since 0.1.0
 * @category models
 */
export interface LayerOptions extends RedisClient.RedisOptions, Options {}

/**
 * The ioredis settings the store's own connection gets unless told otherwise: a cache must
 * answer or fail now, not later.
 *
 * - `enableOfflineQueue: false`: a command issued while the connection is down fails at once
 *   (`CacheStoreError` `Unavailable`) instead of waiting in ioredis's offline queue, to be
 *   replayed after a reconnect — possibly long after the caller gave up on it (a `SET` that
 *   overwrites a newer value, a lease nobody knows it holds).
 * - `maxRetriesPerRequest: 0`: commands in flight when the connection drops fail at once instead
 *   of being re-sent after the reconnect, for the same reason.
 *
 * The connection itself keeps reconnecting (ioredis's `retryStrategy`), so the store recovers by
 * itself when Redis is back.
 *
 * @since 0.1.0
 * @category constants
 */
export const clientDefaults: {
  readonly enableOfflineQueue: false
  readonly maxRetriesPerRequest: 0
} = { enableOfflineQueue: false, maxRetriesPerRequest: 0 }

/**
 * Builds a store over the `RedisClient` in context. Fails with `PolicyError` for a `scanCount`
 * that is not a positive integer or a `backgroundWrites` that is not a non-negative integer.
 *
 * **Details**
 *
 * - `get`: `GET`, decode with the schema (a miss when absent, expired by `Clock`, or
 *   undecodable — then deleted with a compare-and-delete, counted and logged).
 * - `set`: `SET key envelope PX remaining` (no `PX` for entries that never expire); an entry
 *   already expired by `Clock` deletes the key. It waits for Redis and reports failures.
 * - `setInBackground` (the write after an upstream call, through `CacheStore.setOrWarn`): the
 *   same command, sent at once and not awaited; until it has landed or failed, this store's
 *   `get` answers with the entry (read-your-writes in this process), other processes see it
 *   once Redis has it. At most `backgroundWrites` in flight (beyond: dropped, counted in
 *   `CacheMetrics.storeWritesDropped`); failures are counted in `storeErrors` and logged. A
 *   `set`, `delete` or `deletePrefix` of the key replaces the unlanded entry; commands on one
 *   connection run in order, so the later one wins in Redis too.
 * - `delete`: `UNLINK`; `deletePrefix`: `SCAN MATCH <escaped prefix>*` with `UNLINK` per batch,
 *   pipelined with the next `SCAN`.
 * - Leases: a Lua script takes the lease when the key is absent or its stored `expiresAt` is not
 *   after the caller's `Clock`, storing `token|expiresAt` with a `PX` of the lease duration; a
 *   second script deletes it only for the same token. A plain `SET NX PX` would be atomic too,
 *   but only Redis's clock could end the lease: the script lets `Clock` (and so `TestClock`)
 *   decide, like every other backend, while `PX` still frees the lease of a crashed holder.
 *   Scripts run with `EVALSHA`, falling back to `EVAL` once after a server restart.
 * - Every command is bounded by the client's `commandTimeout`. A failure is a `CacheStoreError`
 *   (`Timeout` for no answer in time, `Unavailable` otherwise), counted in
 *   `CacheMetrics.storeErrors` with `backend: "redis"`.
 *
 * Give the client {@link clientDefaults} (as {@link layer} does) so that calls fail fast while
 * Redis is down.
 *
 * @example
 * ```ts
 * import { CacheStore, TimePolicy } from "@stalewise/core"
 * import { RedisClient, RedisStore } from "@stalewise/redis"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const store = yield* RedisStore.make({ keyPrefix: "myapp:" })
 *   const policy = yield* TimePolicy.make({ lifetime: "1 minute", timeToLive: "1 hour" })
 *   yield* store.set("users:get:1", yield* TimePolicy.entry(policy, { name: "Ada" }))
 *   return yield* store.get("users:get:1")
 * }).pipe(
 *   Effect.provide(RedisClient.layer({ host: "127.0.0.1", port: 6379, ...RedisStore.clientDefaults }))
 * )
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  options?: Options
): Effect.Effect<CacheStore.CacheStore.Service, PolicyError, RedisClient.RedisClient> =>
  Effect.flatMap(RedisClient.RedisClient, (redis) => internal.make(redis, options))

/**
 * A store over the `RedisClient` in context, which stays the owner of the connection.
 *
 * @example
 * ```ts
 * import { RedisClient, RedisStore } from "@stalewise/redis"
 * import { Layer } from "effect"
 *
 * const RedisLive = RedisClient.layer({ host: "127.0.0.1", port: 6379, ...RedisStore.clientDefaults })
 * const StoreLive = RedisStore.layerFromClient({ keyPrefix: "myapp:" }).pipe(Layer.provide(RedisLive))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerFromClient = (
  options?: Options
): Layer.Layer<CacheStore.CacheStore, PolicyError, RedisClient.RedisClient> =>
  Layer.effect(CacheStore.CacheStore, make(options))

/**
 * A store with a connection of its own, opened when the layer is built and closed when it is
 * released. It builds while Redis is down (calls fail fast as `Unavailable` — strategies treat
 * them as misses — and the store answers again once the connection is back, see
 * `RedisClient.RedisOptions.whenUnreachable`); fails with `RedisError` when Redis rejects the
 * credentials.
 *
 * @example
 * ```ts
 * import { RedisStore } from "@stalewise/redis"
 *
 * const StoreLive = RedisStore.layer({
 *   host: "127.0.0.1",
 *   port: 6379,
 *   keyPrefix: "myapp:",
 *   commandTimeout: "250 millis"
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
 * A store with a connection of its own, its options read from `Config`; keep the password in
 * `Config.redacted`.
 *
 * @example
 * ```ts
 * import { RedisStore } from "@stalewise/redis"
 * import { Config } from "effect"
 *
 * const StoreLive = RedisStore.layerConfig({
 *   host: Config.string("REDIS_HOST"),
 *   port: Config.port("REDIS_PORT"),
 *   password: Config.redacted("REDIS_PASSWORD"),
 *   keyPrefix: Config.string("CACHE_PREFIX").pipe(Config.withDefault("stalewise:"))
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
  const { backgroundWrites, batchReads, keyPrefix, scanCount, ...connection } = options
  return Effect.flatMap(
    RedisClient.make({ ...clientDefaults, ...connection }),
    (redis) => internal.make(redis, { backgroundWrites, batchReads, keyPrefix, scanCount })
  )
}
