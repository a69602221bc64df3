/**
 * `BullRefreshQueue`: a `RefreshQueue` whose refreshes run in other processes, through BullMQ.
 * The app side (`layer`) turns each refresh request into a BullMQ job, named after the Stalewise
 * job, carrying the request as plain data; a request for a key that is already waiting, retrying
 * or running collapses into that job (BullMQ deduplication). The worker side (`layerWorker`)
 * takes jobs from the queue, finds each Stalewise job by name in its `JobRegistry`, decodes the
 * arguments with the job's `argsSchema`, refreshes and writes under the key the caller computed.
 * A failed refresh is retried with exponential back-off; a request that can never run (unknown
 * job, arguments that do not decode) fails at once. A worker that dies mid-job leaves a job that
 * BullMQ's stalled-job check hands to another worker.
 *
 * When Redis cannot take a request, `offer` answers with the queue's `overflow` fallback within
 * the client's `commandTimeout` — the caller refreshes, or the request is dropped, counted and
 * logged — never a silent loss and never a hang.
 *
 * `bullmq` is an optional peer dependency, loaded only when one of these layers is built:
 * importing `RedisStore` or the package's main entry never loads it.
 *
 * @since 0.1.0
 */
export * as BullRefreshQueue from "./BullRefreshQueue.js"

/**
 * `RedisClient`: one scoped ioredis connection as a service — to one Redis server, or to a Redis
 * Cluster (`nodes`: an ioredis `Cluster`, which routes each command to the master of its key's
 * slot and follows `MOVED`/`ASK` redirections and failovers). `make` connects and waits for the
 * connection (up to `connectTimeout`); when Redis cannot be reached it returns all the same and
 * keeps connecting in the background (or fails, with `whenUnreachable: "fail"`), so that an app
 * starts while Redis is down. It quits when its scope closes; `use` runs a command through the
 * client as an `Effect`, bounded by `commandTimeout`. After a connection loss it reconnects at
 * most `maxReconnectDelay` apart, whatever the outage's length. The Redis-backed stores, leases
 * and buses of this package are built on it.
 *
 * @since 0.1.0
 */
export * as RedisClient from "./RedisClient.js"

/**
 * `RedisInvalidationBus`: core's `InvalidationBus` over Redis pub/sub, for instances in several
 * processes. Messages are published on one channel through the `RedisClient` in context and
 * received on a subscriber connection of the bus's own.
 *
 * The subscriber never stops the app: it connects in the background (the layer builds while
 * Redis is down), reconnects with ioredis's back-off, and subscribes again after every reconnect,
 * retrying a subscribe that fails. Messages published while it is not subscribed are lost, so
 * whenever the subscription is lost, and again when it is back, listeners get a `Flush`: every
 * in-process tier drops its copies instead of serving what it may have missed.
 *
 * On a Redis Cluster (a `RedisClient` made with `nodes`) a `PUBLISH` reaches every node: the
 * subscriber is a connection to one of them, and when it is lost (the node failed) the bus
 * flushes, connects to the next node the cluster client knows and subscribes there.
 *
 * @since 0.1.0
 */
export * as RedisInvalidationBus from "./RedisInvalidationBus.js"

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
export * as RedisStore from "./RedisStore.js"

/**
 * `TieredStore`: a `CacheStore` with an in-process memory tier in front of Redis, kept coherent
 * across instances through the `InvalidationBus` (Redis pub/sub with `RedisInvalidationBus`).
 * Reads are served from memory when they can (no round trip), writes go to both tiers, and every
 * write tells the other instances to drop their memory copy.
 *
 * @since 0.1.0
 */
export * as TieredStore from "./TieredStore.js"
