/**
 * Per-call cache control: run any cached call — a strategy's `get`, a method of a cached service,
 * a cached RPC — with `bypass` (skip the cache: ask the upstream, read and store nothing) or
 * `forceRefresh` (ask the upstream now and store its answer, whatever is cached). The mode is a
 * `FiberRef`, so it reaches the cache through any number of wrappers without changing a method's
 * signature, and the upstream call itself runs in the default mode: a cached call made inside a
 * bypassed lookup is cached as usual.
 *
 * @since 0.1.0
 */
export * as CacheControl from "./CacheControl.js"

/**
 * A cached value with the timestamps that decide its freshness. Every timestamp is absolute
 * (epoch milliseconds from `Clock`) and measured from one origin, the moment the value was
 * fetched, so a refresh attempt never resets a value's age.
 *
 * @since 0.1.0
 */
export * as CacheEntry from "./CacheEntry.js"

/**
 * Cache-first (nameko-cachetools' `CacheFirstRpcProxy`, done properly): serve the cached value
 * without asking the upstream; on a miss, one upstream call serves every concurrent caller.
 * Built on effect's `Cache`, with `timeToLive` and `capacity` applying to each call's entry, and
 * optionally backed by a `CacheStore` so a shared store (Redis) serves other processes too.
 *
 * @since 0.1.0
 */
export * as CacheFirst from "./CacheFirst.js"

/**
 * Cache keys: `namespace:name:digest`, where the digest covers a canonical, type-tagged encoding
 * of the arguments.
 *
 * The encoding is injective over the values it accepts: object key order never matters, and
 * values that are not deep-equal never share an encoding (`1` vs `"1"`, `["a:b"]` vs `["a", "b"]`,
 * `0` vs `-0`, `null` vs `undefined`, …). A value that cannot be keyed — a function, a symbol, a
 * cycle, an instance of an unknown class — fails with a typed {@link CacheKeyError} before any I/O.
 *
 * @since 0.1.0
 */
export * as CacheKey from "./CacheKey.js"

/**
 * The toolkit's Effect `Metric`s. Store metrics carry a `backend` tag (`memory`,
 * `key-value-store`, `redis`, …); read them with `Metric.value` or export them with any Effect
 * metrics exporter.
 *
 * @since 0.1.0
 */
export * as CacheMetrics from "./CacheMetrics.js"

/**
 * `CacheStore`: where entries live. A service tag with one small contract — get, set (the entry
 * carries its own expiry), delete, delete by prefix, and an atomic lease for refresh ownership —
 * and layers for each backend: memory (`layerMemory`), any `@effect/platform` `KeyValueStore`
 * (`layerKeyValueStore`) and Redis (in `@stalewise/redis`).
 *
 * **Codec**: stores that cross a process boundary keep Schema-encoded values; give `get` and `set`
 * the value schema. The memory store keeps live values and ignores the schema. A stored value
 * that fails to decode is a miss: it is deleted, counted in `CacheMetrics.storeDecodeFailures`
 * and logged, never handed to the caller.
 *
 * @since 0.1.0
 */
export * as CacheStore from "./CacheStore.js"

/**
 * `CacheTags`: invalidation by tag. Entries carry tags (`CacheEntry.tags`); `invalidate(tag)`
 * makes every entry with that tag written before it stale (`soft`) or gone (`hard`), in one store
 * write whatever the number of entries: it stores the tag's invalidation time under a reserved
 * key (`__tag:<tag>`), and readers compare each entry's `createdAt` with its tags' times lazily,
 * on read — nothing is scanned or deleted.
 *
 * **No round trip per hit.** Tag times are kept in process and re-read from the store at most
 * once per tag per `refreshInterval` (default 10 seconds), or as soon as an invalidation of the
 * tag is heard on the `InvalidationBus` (the invalidating instance publishes one). So another
 * instance stops serving an entry invalidated by tag within the bus delay (milliseconds on
 * Redis pub/sub), and within `refreshInterval` when the message was lost (or without a bus).
 *
 * Strategies share the `CacheTags` in context (`layer`); without one, each builds its own over
 * its store, and only hears the others' invalidations through the bus.
 *
 * @since 0.1.0
 */
export * as CacheTags from "./CacheTags.js"

/**
 * `Coherence`: what an in-process tier needs to stay coherent with the other instances — its
 * subscription to the `InvalidationBus`, and a guard on its loads. Used by CacheFirst's
 * in-process tier and the tiered store's memory tier; any L1 can use it the same way.
 *
 * **The guard** (a generation per load): a load (a read of the shared store, an upstream call)
 * is tracked from `begin` to `end`. An invalidation covering its key that this instance makes or
 * hears in between — or a bus `Flush` — overtakes it: its value is still returned to whoever
 * waits for it, but `mayWrite` says no, so it neither fills the in-process tier nor re-stores
 * the old value in the shared store.
 *
 * **Repair** (optional): an invalidation from another instance may still be on the bus when a
 * load lands here and writes the old value to the shared store. When that message arrives, and
 * the write started before the invalidation (`at`) and completed after it, `repair` runs for
 * the key (typically: delete it from the store and tell the others). The same happens for every
 * write of the last `repairWindow` when the bus flushes (it may have lost such a message).
 *
 * @since 0.1.0
 */
export * as Coherence from "./Coherence.js"

/**
 * What the toolkit says when something goes wrong, and how much of it: schema errors summarised
 * by path and reason (never the value that failed), and warnings rate-limited per kind, so that
 * an outage costs one line per kind per interval, with a count, instead of one line per call.
 *
 * @since 0.1.0
 */
export * as Diagnostics from "./Diagnostics.js"

/**
 * `EntryCodec`: the stored form of a `CacheEntry` for backends that cross a process boundary
 * (`KeyValueStore`, Redis). An entry becomes one JSON string, an envelope
 * `{ "$": 1, "v": value, "c": createdAt, "s": staleAt, "e": expiresAt | null }`: the value is
 * Schema-encoded when a schema is given (JSON as is otherwise, and the envelope then has no
 * `"t": 1`), `$` is the format version and `e` is `null` for "never expires" (JSON has no
 * `Infinity`), and `g` lists the entry's tags when it has some. Backends share it, so every
 * serialising backend stores the same bytes for the same entry.
 *
 * **Values JSON cannot say.** `undefined` (the value itself, an array element or an object
 * property), `NaN`, `±Infinity`, `-0` and the holes of sparse arrays would come back as
 * something else (or, for an `undefined` value, not at all). The envelope lists them in `p`, as
 * `[path, kind]` pairs beside the JSON, and decoding puts them back, so every value round-trips
 * exactly. Values JSON would drop or flatten silently — functions, symbols, `Map`, `Set` — are
 * refused at write with `CacheStoreError` reason `Encode`: give the strategy a schema for them.
 *
 * @since 0.1.0
 */
export * as EntryCodec from "./EntryCodec.js"

/**
 * Promise callers: a Job, a CacheFirst or a Failover as `(...args) => Promise<A>`, run over a
 * `ManagedRuntime` — for code that is not written in Effect (a route handler, a GraphQL
 * resolver, a queue consumer).
 *
 * A hit held in process answers without starting a fiber: the strategy looks its key up
 * synchronously (the same key as its Effect methods derive) and the promise resolves with the
 * value. A stale value a job holds in process is served the same way, its refresh requested
 * behind the caller's back (once per key, like the Effect path). Everything else — misses,
 * stores that live elsewhere (Redis), refreshes that must run in the call, every Failover call —
 * runs the strategy's own Effect method on the runtime, with every rule intact: one upstream call
 * per key for all concurrent callers, leases, outcomes.
 *
 * A failure rejects the promise with the typed error itself (`CacheKeyError`, the upstream's own
 * error, `RequestTimeoutError`, …), not a wrapper; a defect rejects with the defect.
 *
 * @since 0.1.0
 */
export * as Facade from "./Facade.js"

/**
 * Failover (nameko-cachetools' `CachedRpcProxy`, done properly): always ask the upstream, store
 * every success, and when the upstream fails or is slower than `timeout`, serve the last good
 * value instead — saying so in the outcome. One deadline per upstream call, shared by its callers.
 *
 * @since 0.1.0
 */
export * as Failover from "./Failover.js"

/**
 * `InvalidationBus`: how instances tell each other that cached values changed, so that every
 * in-process tier (the tiered store's memory, CacheFirst's `Cache`, any L1) drops its copy. A
 * service tag with two operations — `publish` an invalidation, `subscribe` a listener — and its
 * layers: `layerLocal` for instances in one process, `RedisInvalidationBus` (in
 * `@stalewise/redis`) over Redis pub/sub across processes, and `makeControlled` for tests that
 * delay, reorder or drop messages.
 *
 * **Messages** name a key or a prefix, the instance that sent them (`origin`, so that an
 * instance can ignore its own) and when (`at`, the sender's `Clock`). A bus that may have lost
 * messages — its subscription dropped, or was just restored — delivers a local `Flush`: every
 * listener must then forget everything it holds, since it cannot know what it missed.
 *
 * @since 0.1.0
 */
export * as InvalidationBus from "./InvalidationBus.js"

/**
 * The story of a cached call: what came back and why. Every strategy can return a value alone or
 * a value with its outcome, so callers can tell a fresh value from a stale one or a fallback.
 *
 * @since 0.1.0
 */
export * as Outcome from "./Outcome.js"

/**
 * The error raised when a strategy or time policy is given options that cannot work: a duration
 * that is not positive, or a combination such as `lifetime > timeToLive`. It is raised when the
 * policy is defined, before any value is cached.
 *
 * @since 0.1.0
 */
export * as PolicyError from "./PolicyError.js"

/**
 * A strategy (a Failover, a CacheFirst, a refresh Job, …) lives as long as the `Scope` it was made
 * in: its upstream calls and background refreshes run there. Used after that scope closed, it
 * would only see its calls interrupted (`All fibers interrupted without errors`); `guard` makes
 * every use after the close die with a {@link ScopeClosedError} that names the strategy and says
 * what happened instead.
 *
 * @since 0.1.0
 */
export * as ScopeGuard from "./ScopeGuard.js"

/**
 * `SingleFlight`: one upstream call per key across processes that share a `CacheStore`. The
 * process that takes the key's lease fetches, stores, releases the lease and announces the
 * landing on the `InvalidationBus`; the others wait for the value to land — woken by the bus, or
 * polling the store without one — within a wait budget, then fetch themselves. Stale-while-
 * revalidate jobs and persisted CacheFirst functions run their upstream calls through it.
 *
 * @since 0.1.0
 */
export * as SingleFlight from "./SingleFlight.js"

/**
 * The time policy shared by every strategy: `lifetime` (age until a value is stale) and
 * `timeToLive` (age until it is gone), both measured from the moment the value was fetched and
 * read from `Clock`, so `TestClock` drives every rule.
 *
 * @since 0.1.0
 */
export * as TimePolicy from "./TimePolicy.js"
