/**
 * Cache-first (nameko-cachetools' `CacheFirstRpcProxy`, done properly): serve the cached value
 * without asking the upstream; on a miss, one upstream call serves every concurrent caller.
 * Built on effect's `Cache`, with `timeToLive` and `capacity` applying to each call's entry, and
 * optionally backed by a `CacheStore` so a shared store (Redis) serves other processes too.
 *
 * @since 0.1.0
 */
import * as Cache from "effect/Cache"
import * as Cause from "effect/Cause"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Equal from "effect/Equal"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as Hash from "effect/Hash"
import * as Option from "effect/Option"
import * as Predicate from "effect/Predicate"
import type * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import * as CacheControl from "./CacheControl.js"
import * as CacheEntry from "./CacheEntry.js"
import * as CacheKey from "./CacheKey.js"
import * as CacheMetrics from "./CacheMetrics.js"
import { CacheStore, type CacheStoreError, getManyOrMiss, setOrWarn, withLease } from "./CacheStore.js"
import * as CacheTags from "./CacheTags.js"
import * as Coherence from "./Coherence.js"
import * as Facade from "./Facade.js"
import { preload } from "./internal/preload.js"
import { type Node as RecencyNode, Recency } from "./internal/recency.js"
import * as internal from "./internal/strategy.js"
import type * as InvalidationBus from "./InvalidationBus.js"
import * as Outcome from "./Outcome.js"
import { type PolicyError, positiveInteger } from "./PolicyError.js"
import * as ScopeGuard from "./ScopeGuard.js"
import * as SingleFlight from "./SingleFlight.js"
import * as TimePolicy from "./TimePolicy.js"

/**
 * @since 0.1.0
 * @category type ids
 */
export const TypeId: TypeId = "~@stalewise/core/CacheFirst"

/**
 * @since 0.1.0
 * @category type ids
 */
export type TypeId = "~@stalewise/core/CacheFirst"

/**
 * Options of {@link make} and {@link makePersisted}.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options<Args extends ReadonlyArray<any>, A, E, R, I = A> {
  /** What is cached: the key's `name`, and the `name` tag of its metrics and spans. */
  readonly name: string
  /** The key's namespace. Default `"cache-first"`. */
  readonly namespace?: string | undefined
  /** The upstream call, made on a miss. */
  readonly lookup: (...args: Args) => Effect.Effect<A, E, R>
  /**
   * Many upstream calls in one, for `getMany`: one value per argument list, in order. Without
   * it, `getMany` loads its misses one `lookup` per key (all at once).
   */
  readonly lookupMany?: ((argsList: ReadonlyArray<Args>) => Effect.Effect<ReadonlyArray<A>, E, R>) | undefined
  /** How long each call's value is served, from the moment it was fetched. */
  readonly timeToLive: Duration.DurationInput
  /**
   * How many calls' values (and cached failures) are kept in process. Least recently *used* go
   * first: a hit counts as a use. Default 1,000.
   */
  readonly capacity?: number | undefined
  /** The value's schema, for stores that serialise (with {@link makePersisted}). */
  readonly schema?: Schema.Schema<A, I> | undefined
  /** Computes the key's id from the arguments, instead of digesting all of them. */
  readonly key?: ((...args: Args) => string) | undefined
  /**
   * What happens to a load when every caller waiting for it was interrupted before it answered:
   * `"complete"` (default) lets it finish and caches its value — it is served for its whole
   * `timeToLive`, so the work is rarely wasted; `"interrupt"` interrupts it once its last waiter
   * leaves. Waiters are counted: one leaving never cancels the load the others wait for.
   */
  readonly onAbandon?: "complete" | "interrupt" | undefined
  /**
   * The longest a load nobody waits for any more may run, from its start (`onAbandon:
   * "complete"`): then it is interrupted and the next caller starts a fresh one, so a hung
   * upstream never pins a key. Default 30 seconds.
   */
  readonly backgroundTimeout?: Duration.DurationInput | undefined
  /**
   * Negative caching, off by default: failures for which `when` holds (e.g. "not found") are
   * kept in process for their own `timeToLive` (keep it short) and returned to later callers
   * without asking the upstream, counted with status `negative`. Other failures are never cached.
   * Cached failures are not written to the `CacheStore`.
   */
  readonly negative?: {
    readonly when: (error: E) => boolean
    readonly timeToLive: Duration.DurationInput
  } | undefined
  /**
   * Whether hits run in a `stalewise.get` span too. Default false: misses, loads and cached
   * failures always do, but a span costs a hit several times its own time (docs/observability.md).
   */
  readonly traceHits?: boolean | undefined
  /**
   * With {@link makePersisted}: how long a miss waits for another process that holds the key's
   * lease (it is fetching the same key) before calling the upstream itself. Positive and finite.
   * Default 5 seconds.
   */
  readonly leaseWait?: Duration.DurationInput | undefined
  /**
   * Refresh-ahead: a hit after this fraction of `timeToLive` is served as a hit and starts one
   * background reload of its key (one per key in this process; with {@link makePersisted}, one
   * per key across processes through the store's lease), so a key read often never misses. Its
   * failures keep the cached value. In `(0, 1)`, e.g. `0.8`. Default: off.
   */
  readonly refreshAhead?: number | undefined
  /**
   * The tags of each value: fixed (`["users"]`) or computed from the arguments and the value.
   * `invalidateTag` of one of them makes the value a miss (`hard`) or reloads it (`soft`); see
   * `CacheTags`.
   */
  readonly tags?: CacheTags.Tags<NoInfer<Args>, NoInfer<A>> | undefined
}

/**
 * A cache-first function.
 *
 * @since 0.1.0
 * @category models
 */
export interface CacheFirst<in Args extends ReadonlyArray<any>, in out A, out E> {
  readonly [TypeId]: TypeId
  /** The cached value, or the upstream's on a miss (one call for all concurrent callers). */
  readonly get: (...args: Args) => Effect.Effect<A, E | CacheKey.CacheKeyError>
  /** Like `get`, with the outcome: `hit` (with the value's age) or `miss`. */
  readonly getWithOutcome: (...args: Args) => Effect.Effect<Outcome.Outcome<A>, E | CacheKey.CacheKeyError>
  /**
   * The value cached for these arguments (in process, else — when persisted — in the store), with
   * its timestamps; no upstream call, nothing loaded into the in-process tier.
   */
  readonly peek: (...args: Args) => Effect.Effect<Option.Option<CacheEntry.CacheEntry<A>>, CacheKey.CacheKeyError>
  /** Caches `value` for `args` (in process and, when persisted, in the store) as if just fetched. */
  readonly set: (args: Args, value: A) => Effect.Effect<void, CacheKey.CacheKeyError>
  /**
   * Fetches each argument list (at most `concurrency` at once, default 4) and caches the answers:
   * a warm-up before traffic. Failures are counted and logged, never raised.
   */
  readonly preload: (
    argsList: Iterable<Args>,
    options?: { readonly concurrency?: number | undefined }
  ) => Effect.Effect<Outcome.Preloaded>
  /**
   * Drops the value for these arguments (in process and, when persisted, in the store). A delete
   * the store refuses fails with `CacheStoreError` (the in-process copy is gone all the same).
   */
  readonly invalidate: (...args: Args) => Effect.Effect<void, CacheKey.CacheKeyError | CacheStoreError>
  /** Drops every value of this function; fails with `CacheStoreError` when the store refuses. */
  readonly invalidateAll: Effect.Effect<void, CacheStoreError>
  /**
   * The values of many argument lists, in order. Those cached in process are served from it;
   * with {@link makePersisted}, the others are read from the store in one round trip
   * (`CacheStore.getMany`); what is still missing is loaded through one `lookupMany` call (one
   * `lookup` per key without it). A key already loading is joined, and a concurrent `get` of a
   * key in the batch joins the batch: one upstream call per key.
   */
  readonly getMany: (argsList: ReadonlyArray<Args>) => Effect.Effect<ReadonlyArray<A>, E | CacheKey.CacheKeyError>
  /** `getMany` with each value's outcome. */
  readonly getManyWithOutcome: (
    argsList: ReadonlyArray<Args>
  ) => Effect.Effect<ReadonlyArray<Outcome.Outcome<A>>, E | CacheKey.CacheKeyError>
  /**
   * Invalidates every value tagged `tag` — this function's and any other strategy's sharing the
   * tag service — in one store write (`CacheTags.invalidate`): `hard` makes them misses, `soft`
   * (default) serves them once more while one reload per key runs.
   */
  readonly invalidateTag: (
    tag: string,
    options?: { readonly mode?: CacheTags.Mode | undefined }
  ) => Effect.Effect<void, CacheStoreError>
}

/**
 * @since 0.1.0
 * @category guards
 */
export const isCacheFirst = (u: unknown): u is CacheFirst<ReadonlyArray<unknown>, unknown, unknown> =>
  Predicate.hasProperty(u, TypeId)

const strategy = "cache-first"
const defaultLeaseWait = Duration.seconds(5)
// how long a miss's upstream call owns its key across processes (released when it ends)
const leaseDuration = Duration.minutes(1)

/** A lookup request: the key decides equality, the arguments travel along for the upstream. */
class Request<Args> implements Equal.Equal, RecencyNode {
  /**
   * The entry the Cache holds for this request's key while it is the key's entry in `recency`:
   * what the Promise facade's synchronous hit path reads.
   */
  entry: CacheEntry.CacheEntry<unknown> | undefined = undefined
  /** Its slot in `recency` while it is held there, −1 otherwise. */
  slot = -1
  constructor(readonly key: string, readonly args: Args) {}
  [Equal.symbol](that: unknown): boolean {
    return that instanceof Request && that.key === this.key
  }
  [Hash.symbol](): number {
    return Hash.string(this.key)
  }
}

/**
 * Builds a cache-first function kept in process (effect's `Cache`). Fails with `PolicyError` for
 * a `timeToLive` that is not positive or a `capacity` that is not a positive integer.
 *
 * **Details**
 *
 * - A hit never calls the upstream. Entries expire `timeToLive` after their value was fetched,
 *   each on its own; at most `capacity` are kept, the least recently used (read or written)
 *   evicted first.
 * - Concurrent misses of one key make one upstream call. Failures are not cached: the next call
 *   asks again.
 * - The upstream call runs in the scope the function was built in, not in a caller's fiber:
 *   interrupting one waiter never cancels the call others wait on (effect's `Cache` alone runs
 *   it on the first caller's fiber); `onAbandon` decides what happens when the last one leaves.
 * - `CacheControl.bypass` and `CacheControl.forceRefresh` apply per call; `negative` caches
 *   chosen failures for a short time.
 * - Misses run in a `stalewise.get` span (hits too with `traceHits`) and every call is counted
 *   in `CacheMetrics.outcomes` with its `name` and `namespace`.
 *
 * @example
 * ```ts
 * import { CacheFirst } from "@stalewise/core"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const countries = yield* CacheFirst.make({
 *     name: "countries",
 *     timeToLive: "1 hour",
 *     capacity: 100,
 *     lookup: (region: string) => Effect.succeed([`${region}-1`, `${region}-2`])
 *   })
 *   yield* countries.get("EU") // miss: asks the upstream
 *   const again = yield* countries.getWithOutcome("EU")
 *   console.log(again.status) // "hit"
 * }).pipe(Effect.scoped)
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = <Args extends ReadonlyArray<any>, A, E, R, I = A>(
  options: Options<Args, A, E, R, I>
): Effect.Effect<CacheFirst<Args, A, E>, PolicyError, R | Scope.Scope> => build(options, undefined)

/**
 * Builds a cache-first function whose values also live in the `CacheStore` in context: effect's
 * `Cache` is the in-process tier in front of it, so a shared store (Redis) serves values fetched
 * by other processes, and values survive a restart with a persistent store. A failing store is
 * treated as empty (logged, counted): the upstream still answers.
 *
 * @example
 * ```ts
 * import { CacheFirst, CacheStore } from "@stalewise/core"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const profile = yield* CacheFirst.makePersisted({
 *     name: "profile",
 *     timeToLive: "10 minutes",
 *     lookup: (id: number) => Effect.succeed({ id, name: "Ada" })
 *   })
 *   return yield* profile.get(1)
 * }).pipe(Effect.scoped, Effect.provide(CacheStore.layerMemory))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const makePersisted = <Args extends ReadonlyArray<any>, A, E, R, I = A>(
  options: Options<Args, A, E, R, I>
): Effect.Effect<CacheFirst<Args, A, E>, PolicyError, R | CacheStore | Scope.Scope> =>
  Effect.flatMap(CacheStore, (store) => build(options, store))

/** The default `backgroundTimeout`: 30 seconds, as failover's. */
const defaultBackgroundMillis = 30_000

/** A load running in the strategy's scope, and how many callers wait for it. */
interface Load<A, E> {
  fiber: Fiber.RuntimeFiber<CacheEntry.CacheEntry<A>, E> | undefined
  readonly startedAt: number
  waiters: number
  /** Interrupts the load at `startedAt + backgroundTimeout`, once nobody waits for it. */
  timer: Fiber.RuntimeFiber<unknown> | undefined
  /** The load was given up (interrupted on abandon or by its bound): it cleans nothing up. */
  abandoned: boolean
  /** The effect `Cache` the load runs in (the strategy's may be rebuilt meanwhile). */
  readonly cache: unknown
}

const build = <Args extends ReadonlyArray<any>, A, E, R, I>(
  options: Options<Args, A, E, R, I>,
  store: CacheStore.Service | undefined
): Effect.Effect<CacheFirst<Args, A, E>, PolicyError, R | Scope.Scope> =>
  Effect.gen(function*() {
    const policy = yield* TimePolicy.make({ lifetime: options.timeToLive })
    const capacity = yield* positiveInteger("capacity", options.capacity ?? 1_000)
    const leaseWait = yield* TimePolicy.finiteDuration("leaseWait", options.leaseWait ?? defaultLeaseWait)
    const negativeMillis = options.negative === undefined
      ? 0
      : Duration.toMillis(yield* TimePolicy.positiveDuration("negative.timeToLive", options.negative.timeToLive))
    const isNegative = options.negative?.when
    const namespace = options.namespace ?? strategy
    const deriveKeyNow = yield* internal.syncKeyDeriver(namespace, options.name, options.key)
    const deriveKey = internal.deferred(deriveKeyNow)
    const schema = options.schema
    const annotations: CacheMetrics.Annotations = { strategy, namespace, name: options.name }
    const count = CacheMetrics.makeOutcomeCounter(annotations)
    const traceHits = options.traceHits ?? false
    const interruptOnAbandon = options.onAbandon === "interrupt"
    const backgroundMillis = options.backgroundTimeout === undefined
      ? defaultBackgroundMillis
      : Duration.toMillis(yield* TimePolicy.positiveDuration("backgroundTimeout", options.backgroundTimeout))
    const refreshAhead = options.refreshAhead === undefined
      ? undefined
      : yield* TimePolicy.fraction("refreshAhead", options.refreshAhead)
    const scope = yield* Effect.scope
    const clock = yield* Effect.clock
    const context = yield* Effect.context<R>()
    const now = () => clock.unsafeCurrentTimeMillis()

    // the process's tag service, or this function's own (in process only when not persisted)
    const tags = yield* CacheTags.fromContextOr(store, { subscribe: options.tags !== undefined })
    const tagsOption = options.tags
    const entryOf = (args: Args, value: A): Effect.Effect<CacheEntry.CacheEntry<A>> =>
      tagsOption === undefined
        ? TimePolicy.entry(policy, value)
        : Effect.map(
          TimePolicy.entry(policy, value),
          (entry) => CacheEntry.withTags(entry, CacheTags.tagsOf(tagsOption, args, value))
        )

    const upstream = (args: Args): Effect.Effect<A, E> =>
      Effect.provide(CacheControl.upstream(options.lookup(...args)), context)

    // keys that a `getMany` batch is loading: their loads take the batch's value
    const batchPending = new Map<string, Deferred.Deferred<A, E>>()
    const valueOf = (request: Request<Args>): Effect.Effect<A, E> => {
      const pending = batchPending.size > 0 ? batchPending.get(request.key) : undefined
      return pending !== undefined
        ? Deferred.await(pending)
        : CacheMetrics.timeUpstream(annotations, request.key, upstream(request.args))
    }

    const fetch = (request: Request<Args>, load: Coherence.Load): Effect.Effect<CacheEntry.CacheEntry<A>, E> =>
      Effect.flatMap(valueOf(request), (value) =>
        Effect.tap(
          entryOf(request.args, value),
          (entry) =>
            // an invalidation overtook this call: its value is served to its waiters, not stored
            store === undefined || !coherence.mayWrite(load)
              ? Effect.void
              : setOrWarn(store, request.key, entry, schema, annotations)
        ))

    // With a shared store, a miss is one upstream call across processes: the lease holder calls,
    // the others wait for its value (SingleFlight).
    const flight = store === undefined ? undefined : yield* Effect.provideService(
      SingleFlight.make({ lease: leaseDuration, wait: leaseWait, annotations }),
      CacheStore,
      store
    )
    const lookupOnce = flight === undefined ? fetch : (request: Request<Args>, load: Coherence.Load) =>
      // a batch's key: the batch already read the store, and calls the upstream for it
      batchPending.has(request.key) ? fetch(request, load) : Effect.flatMap(
        flight.read(request.key, schema),
        Option.match({
          onNone: () =>
            flight.run({
              key: request.key,
              read: flight.read(request.key, schema),
              accept: () => true,
              fetch: fetch(request, load)
            }),
          onSome: (stored) =>
            stored.tags === undefined ?
              Effect.succeed(stored) :
              Effect.flatMap(tags.check(stored), (verdict) =>
                verdict !== "hard" ? Effect.succeed(stored) : flight.run({
                  key: request.key,
                  read: flight.read(request.key, schema),
                  // another process's landing serves if it replaced the invalidated entry
                  accept: (landed) => landed.createdAt > stored.createdAt,
                  fetch: fetch(request, load)
                }))
        })
      )

    // Entries that an invalidation overtook while they loaded: the Cache gets them for no time.
    const overtaken = new WeakSet<CacheEntry.CacheEntry<A>>()
    // rarely any: until the first, a hit does not look the WeakSet up
    let anyOvertaken = false
    const tracked = <X>(key: string, f: (load: Coherence.Load) => Effect.Effect<CacheEntry.CacheEntry<A>, X>) =>
      Effect.suspend(() => {
        const load = coherence.begin(key)
        return f(load).pipe(
          Effect.tap((entry) => {
            if (load.overtaken) {
              overtaken.add(entry)
              anyOvertaken = true
            }
          }),
          Effect.ensuring(Effect.sync(() => coherence.end(load)))
        )
      })
    const lookup = (request: Request<Args>) => tracked(request.key, (load) => lookupOnce(request, load))

    // effect's Cache keeps the values, expiry and single flight; its own eviction is not least
    // recently used (a hit re-queues the entry behind a stale copy of its first access), so its
    // capacity is unbounded and `recency` evicts instead: the requests' slots linked from the
    // least to the most recently used, a use relinking one (internal/recency.ts).
    const makeCache = Cache.makeWith<Request<Args>, CacheEntry.CacheEntry<A>, E>({
      capacity: Number.MAX_SAFE_INTEGER,
      lookup,
      // failures get no time at all; they are also dropped explicitly once their waiters have them
      timeToLive: (exit) =>
        Exit.isSuccess(exit) && !overtaken.has(exit.value)
          ? Duration.millis(Math.max(0, exit.value.expiresAt - clock.unsafeCurrentTimeMillis()))
          : Duration.zero
    })
    let cache = yield* makeCache
    const recency = new Recency<Request<Args>>()
    // effect's Cache remembers a key object for every read that missed, every load's pending
    // state and every entry invalidated after a hit, in a queue only its own capacity eviction
    // trims; with that capacity unbounded (`recency` evicts), they piled up — about 425 bytes per
    // distinct key ever missed, each keeping its request alive. So after `capacity + 1,024` loads
    // the Cache is replaced by an empty one, at once; the live entries (each request in `recency`
    // holds its entry) go back into it as they are read (`completeEntry`), and loads still
    // running finish into it (`cleanUp`). Only the live keys' names are noted at the replacement:
    // no entry is copied then, so it makes no long pause.
    const rebuildAfter = capacity + 1_024
    let loadsSinceRebuild = 0
    // keys live when the Cache was last replaced, not yet put back into the new one
    let unmigrated = new Set<string>()
    const rebuild: Effect.Effect<void> = Effect.map(makeCache, (fresh) => {
      unmigrated = new Set()
      for (const [key, request] of recency.entries()) if (request.entry !== undefined) unmigrated.add(key)
      cache = fresh
      loadsSinceRebuild = 0
    })
    // The Cache's complete entry for `request`; a live entry from before the last replacement is
    // put back into the new Cache on its first read.
    const completeEntry = (
      request: Request<Args>
    ): Effect.Effect<Option.Option<CacheEntry.CacheEntry<A>>> =>
      Effect.flatMap(cache.getOptionComplete(request), (found) => {
        if (Option.isSome(found) || unmigrated.size === 0 || !unmigrated.delete(request.key)) {
          return Effect.succeed(found)
        }
        const held = recency.peek(request.key)
        const entry = held?.entry as CacheEntry.CacheEntry<A> | undefined
        return held === undefined || entry === undefined
          ? Effect.succeed(found)
          : Effect.as(cache.set(held, entry), Option.some(entry))
      })
    // failures kept by negative caching, with the time they expire
    const negatives = new Map<string, { readonly error: E; readonly expiresAt: number }>()

    const forgetKey = (key: string) => {
      recency.delete(key)
      negatives.delete(key)
    }

    // A use moves the key to the end, keeping the request held already: holding each hit's own
    // request (and its arguments) until the key's next use promoted one garbage object per hit
    // to the old generation once the working set outgrew the young one.
    const reuse = (key: string, request: Request<Args>): Request<Args> => {
      const held = recency.use(key)
      if (held !== undefined) return held
      recency.set(request)
      return request
    }

    // the key becomes the most recently used, with this request; past capacity, the least
    // recently used keys leave (their negative results too)
    const touch = (request: Request<Args>): Effect.Effect<void> =>
      Effect.suspend(() => {
        recency.set(request)
        if (recency.size <= capacity) return Effect.void
        const evicted = recency.trim(capacity)
        for (const oldest of evicted) negatives.delete(oldest.key)
        return Effect.forEach(evicted, (oldest) => cache.invalidate(oldest), { discard: true })
      })

    // Loads run in the strategy's scope; callers only join them, so interrupting a caller
    // interrupts its wait, never the load (unless `onAbandon: "interrupt"` and it was the last).
    const loading = new Map<string, Load<A, E>>()
    // A load ended: cache its value (or chosen failure) by recency; a given-up load touches nothing.
    const cleanUp = (
      request: Request<Args>,
      started: Load<A, E>,
      exit: Exit.Exit<CacheEntry.CacheEntry<A>, E>
    ): Effect.Effect<void> => {
      if (started.abandoned) return Effect.void
      loading.delete(request.key)
      if (Exit.isSuccess(exit)) {
        request.entry = exit.value
        // a load that ran in a Cache since rebuilt stores its value in the current one
        const stored = started.cache === cache
          ? touch(request)
          : Effect.zipRight(cache.set(request, exit.value), touch(request))
        return ++loadsSinceRebuild >= rebuildAfter ? Effect.zipRight(stored, rebuild) : stored
      }
      const error = Cause.failureOption(exit.cause)
      if (isNegative !== undefined && Option.isSome(error) && isNegative(error.value)) {
        negatives.set(request.key, { error: error.value, expiresAt: now() + negativeMillis })
        return Effect.zipRight(cache.invalidate(request), touch(request))
      }
      return cache.invalidate(request)
    }

    const load = (request: Request<Args>): Effect.Effect<Load<A, E>> =>
      Effect.suspend(() => {
        const running = loading.get(request.key)
        if (running !== undefined) {
          running.waiters++
          return Effect.succeed(running)
        }
        const started: Load<A, E> = {
          fiber: undefined,
          startedAt: now(),
          waiters: 1,
          timer: undefined,
          abandoned: false,
          cache
        }
        const run = cache.get(request).pipe(
          Effect.onExit((exit) =>
            Effect.suspend((): Effect.Effect<void> => {
              if (started.timer !== undefined) {
                const timer = started.timer
                started.timer = undefined
                return Effect.zipRight(Fiber.interruptFork(timer), cleanUp(request, started, exit))
              }
              return cleanUp(request, started, exit)
            })
          ),
          Effect.interruptible
        )
        return Effect.map(internal.forkNow(run, scope), (fiber) => {
          started.fiber = fiber
          // a load that completed synchronously has nothing left to join
          if (fiber.unsafePoll() === null) loading.set(request.key, started)
          return started
        })
      })

    // Invalidations heard from other instances (and this one's) drop the in-process copies and
    // give up the loads they overtook, so that the next call loads again.
    const functionPrefix = CacheKey.prefix(namespace, options.name)
    const dropKey = (key: string) => {
      forgetKey(key)
      const running = loading.get(key)
      if (running !== undefined) {
        running.abandoned = true
        loading.delete(key)
      }
      Effect.runSync(cache.invalidate(new Request(key, undefined as never)))
    }
    const dropCopies = (target: InvalidationBus.Target): void => {
      if (target._tag === "Key") return dropKey(target.key)
      if (functionPrefix.startsWith(target.prefix)) {
        for (const running of loading.values()) running.abandoned = true
        loading.clear()
        recency.clear()
        negatives.clear()
        return Effect.runSync(cache.invalidateAll)
      }
      const keys = new Set([...recency.keys(), ...loading.keys(), ...negatives.keys()])
      for (const key of keys) if (key.startsWith(target.prefix)) dropKey(key)
    }
    const coherence: Coherence.Coherence = yield* Coherence.make({
      // its own flights' announcements are its own messages
      origin: flight?.origin,
      // a tiered store's messages about the writes of this function's own loads
      echoes: [store?.origin],
      drop: dropCopies,
      // a late write heard of after it landed: take it out of the store, and out of every tier
      repair: store === undefined ? undefined : (key) =>
        Effect.zipRight(
          Effect.ignoreLogged(store.delete(key)),
          coherence.invalidate({ _tag: "Key", key })
        )
    })

    // Copies are dropped and loads overtaken before the store changes (a load landing in between
    // must not write) and again once it has (a load that read the old value meanwhile must not
    // keep it); the other instances are told after the change (they must not read the old value).
    const invalidateTarget = (target: InvalidationBus.Target) =>
      Effect.suspend(() => {
        const dropHere = () => {
          coherence.overtake(target)
          dropCopies(target)
        }
        dropHere()
        // a store that refuses fails the call (the in-process copies are gone all the same)
        const change: Effect.Effect<void, CacheStoreError> = store === undefined
          ? Effect.void
          : Effect.asVoid(target._tag === "Key" ? store.delete(target.key) : store.deletePrefix(target.prefix))
        return change.pipe(Effect.ensuring(Effect.sync(dropHere)), Effect.zipRight(coherence.invalidate(target)))
      })

    // Gives a load up: the next caller starts a fresh one, whatever the old one still does.
    const abandon = (request: Request<Args>, running: Load<A, E>) =>
      Effect.suspend(() => {
        running.abandoned = true
        if (loading.get(request.key) === running) loading.delete(request.key)
        return cache.invalidate(request)
      })

    // Nobody waits for the load any more: it may run until `startedAt + backgroundTimeout`.
    const bound = (request: Request<Args>, running: Load<A, E>): Effect.Effect<void> =>
      Effect.suspend(() => {
        if (running.timer !== undefined || running.fiber === undefined) return Effect.void
        const fiber = running.fiber
        const timer = Effect.sleep(Duration.millis(Math.max(0, running.startedAt + backgroundMillis - now()))).pipe(
          Effect.zipRight(Effect.suspend(() => {
            if (running.waiters === 0) return abandon(request, running)
            running.timer = undefined // someone joined since: re-armed when they leave
            return Effect.void
          })),
          Effect.zipRight(Effect.suspend(() => running.abandoned ? Fiber.interruptFork(fiber) : Effect.void))
        )
        return Effect.map(internal.forkNow(Effect.interruptible(timer), scope), (timerFiber) => {
          running.timer = timerFiber
        })
      })

    // A waiter is done: the last one leaving by interruption abandons the load.
    const leave = (request: Request<Args>, running: Load<A, E>, exit: Exit.Exit<unknown, unknown>) =>
      Effect.suspend(() => {
        running.waiters--
        const fiber = running.fiber
        if (running.waiters > 0 || fiber === undefined || fiber.unsafePoll() !== null) return Effect.void
        if (!(Exit.isFailure(exit) && Cause.isInterruptedOnly(exit.cause))) return Effect.void
        return interruptOnAbandon
          ? Effect.zipRight(abandon(request, running), Fiber.interrupt(fiber))
          : bound(request, running)
      })

    const joinAndServe = (request: Request<Args>, startedAt: number) =>
      Effect.uninterruptibleMask((restore) =>
        Effect.flatMap(load(request), (running) =>
          Effect.onExit(
            restore(serve(running.fiber!, startedAt)),
            (exit) => leave(request, running, exit)
          ))
      )

    // `Fiber.await`, not `Fiber.join`: waiters take the load's result, not its FiberRefs
    const serve = (fiber: Fiber.Fiber<CacheEntry.CacheEntry<A>, E>, startedAt: number) =>
      Effect.map(Effect.flatten(Fiber.await(fiber)), (entry) => {
        // fetched during this call: a miss; otherwise another process's value from the store
        const status = entry.createdAt >= startedAt ? "miss" : "hit"
        count(status)
        return internal.fromEntry(entry, now(), status, { fetchedSynchronously: true })
      })

    const traced = (key: string, effect: Effect.Effect<Outcome.Outcome<A>, E>, status?: CacheMetrics.CountedStatus) =>
      CacheMetrics.traceCall(annotations, key, effect, status)

    const cachedCall = (key: string, args: Args): Effect.Effect<Outcome.Outcome<A>, E> => {
      const request = new Request(key, args)
      // a load already running: join it without asking the Cache (stampedes)
      if (loading.has(key)) return traced(key, joinAndServe(request, now()))
      if (negatives.size > 0) {
        const negative = negatives.get(key)
        if (negative !== undefined) {
          if (now() < negative.expiresAt) {
            count("negative")
            reuse(key, request)
            return traced(key, Effect.zipRight(CacheMetrics.annotateStatus("negative"), Effect.fail(negative.error)))
          }
          forgetKey(key)
        }
      }
      return Effect.flatMap(completeEntry(request), (cached) => {
        const at = now()
        if (Option.isSome(cached)) {
          const entry = cached.value
          // effect's Cache keeps an entry until just after its time; ours ends at expiresAt
          if (!CacheEntry.isExpired(entry, at) && !overtaken.has(entry)) {
            deriveKeyNow.remember(args, key)
            if (entry.tags === undefined) return hit(key, args, request, entry, at, false)
            // tagged: a hard invalidation of a tag is a miss, a soft one a hit that reloads
            return Effect.flatMap(tags.check(entry), (verdict) =>
              verdict === "hard"
                ? reload(key, request, at)
                : hit(key, args, request, entry, at, verdict === "soft"))
          }
          return reload(key, request, at)
        }
        return traced(key, joinAndServe(request, at))
      })
    }

    const reload = (key: string, request: Request<Args>, at: number) => {
      recency.delete(key)
      return traced(key, Effect.zipRight(cache.invalidate(request), joinAndServe(request, at)))
    }

    // a hit past the refresh-ahead point of its time-to-live starts a background reload
    const aheadDue = (entry: CacheEntry.CacheEntry<A>, at: number): boolean =>
      refreshAhead !== undefined && at >= TimePolicy.refreshAheadAt(entry, refreshAhead)

    const hit = (
      key: string,
      args: Args,
      request: Request<Args>,
      entry: CacheEntry.CacheEntry<A>,
      at: number,
      invalidated: boolean
    ): Effect.Effect<Outcome.Outcome<A>, E> => {
      count("hit")
      // the request already held keeps its place (no new one retained per hit)
      reuse(key, request).entry = entry
      const outcome = internal.fromEntry(entry, at, "hit")
      const served = traceHits ? traced(key, Effect.succeed(outcome)) : Effect.succeed(outcome)
      return invalidated || aheadDue(entry, at)
        ? Effect.zipRight(startRefreshAhead(key, args, entry), served)
        : served
    }

    // `forceRefresh` and `preload`: fetch now, store, replace what is cached
    const refreshNow = (key: string, args: Args): Effect.Effect<CacheEntry.CacheEntry<A>, E> => {
      const request = new Request(key, args)
      return Effect.tap(tracked(key, (load) => fetch(request, load)), (entry) =>
        Effect.suspend(() => {
          request.entry = entry
          negatives.delete(key)
          return Effect.zipRight(cache.set(request, entry), touch(request))
        }))
    }

    // Refresh-ahead (and soft tag invalidations): one background reload per key at a time. When
    // persisted, one across processes: the lease holder reloads; the others adopt its value from
    // the store once it landed, and retry no sooner than `leaseWait` after finding the lease
    // held (a hit never pays a store round trip each time). A failed reload keeps the value.
    const refreshingAhead = new Map<string, number>()
    const startRefreshAhead = (key: string, args: Args, seen: CacheEntry.CacheEntry<A>): Effect.Effect<void> =>
      Effect.suspend(() => {
        const busyUntil = refreshingAhead.get(key)
        if ((busyUntil !== undefined && now() < busyUntil) || loading.has(key)) return Effect.void
        if (refreshingAhead.size >= 1_024) {
          // keys that found the lease held and were never read again
          const at = now()
          for (const [k, until] of refreshingAhead) if (until <= at) refreshingAhead.delete(k)
        }
        refreshingAhead.set(key, Infinity)
        const reload = Effect.ignore(refreshNow(key, args))
        if (store === undefined) {
          return Effect.asVoid(internal.forkNow(
            Effect.ensuring(reload, Effect.sync(() => refreshingAhead.delete(key))),
            scope
          ))
        }
        const adopt = (landed: CacheEntry.CacheEntry<A>) => {
          const request = new Request(key, args)
          return Effect.zipRight(cache.set(request, landed), touch(request))
        }
        const leased = Effect.flatMap(flight!.read(key, schema), (current) =>
          Option.isSome(current) && current.value.createdAt > seen.createdAt
            ? Effect.zipRight(
              adopt(current.value),
              Effect.sync(() =>
                refreshingAhead.delete(key)
              )
            )
            : Effect.flatMap(
              Effect.option(Effect.provideService(withLease(key, leaseDuration, reload), CacheStore, store)),
              (ran) =>
                Effect.sync(() => {
                  if (Option.isSome(ran) && Option.isSome(ran.value)) refreshingAhead.delete(key)
                  else refreshingAhead.set(key, now() + Duration.toMillis(leaseWait))
                })
            ))
        return Effect.asVoid(internal.forkNow(
          Effect.onInterrupt(leased, () => Effect.sync(() => refreshingAhead.delete(key))),
          scope
        ))
      })

    const fresh = (entry: CacheEntry.CacheEntry<A>) => {
      count("miss")
      return internal.fromEntry(entry, now(), "miss", { fetchedSynchronously: true })
    }

    const getWithOutcome = (...args: Args): Effect.Effect<Outcome.Outcome<A>, E | CacheKey.CacheKeyError> =>
      Effect.flatMap(deriveKey(args), (key) =>
        CacheControl.withCurrentMode((mode) => {
          switch (mode) {
            case "default":
              return cachedCall(key, args)
            case "bypass":
              return traced(
                key,
                Effect.map(upstream(args), (value) => {
                  count("bypass")
                  return Outcome.make({ value, status: "miss", fetchedSynchronously: true })
                }),
                "bypass"
              )
            case "forceRefresh":
              return traced(key, Effect.map(refreshNow(key, args), fresh))
          }
        }))

    // --- Batches ----------------------------------------------------------------------------------

    const fetchMany = options.lookupMany
    // Starts one `lookupMany` call for `keys` in the strategy's scope; until it ends, their loads
    // (started by the caller right after, or by any concurrent `get`) take its values.
    const startBatch = (
      keys: ReadonlyArray<string>,
      argsList: ReadonlyArray<Args>
    ): Effect.Effect<Fiber.RuntimeFiber<ReadonlyArray<A>, E>> =>
      Effect.suspend(() => {
        const deferreds = keys.map((key) => {
          const deferred = Deferred.unsafeMake<A, E>(FiberId.none)
          batchPending.set(key, deferred)
          return deferred
        })
        const call = Effect.provide(CacheControl.upstream(fetchMany!(argsList)), context)
        const run = CacheMetrics.timeUpstream(annotations, keys[0]!, call).pipe(
          Effect.flatMap((values) =>
            values.length === keys.length ? Effect.succeed(values) : Effect.dieMessage(
              `stalewise: lookupMany of ${options.name} returned ${values.length} values for ${keys.length} argument lists`
            )
          ),
          Effect.tapErrorCause((cause) =>
            Effect.forEach(deferreds, (d) => Deferred.failCause(d, cause), { discard: true })
          ),
          Effect.tap((values) =>
            Effect.forEach(deferreds, (d, i) => Deferred.succeed(d, values[i]!), { discard: true })
          ),
          Effect.ensuring(Effect.sync(() =>
            keys.forEach((key, i) => {
              if (batchPending.get(key) === deferreds[i]) batchPending.delete(key)
              Deferred.unsafeDone(deferreds[i]!, Exit.interrupt(FiberId.none))
            })
          ))
        )
        return internal.forkNow(run, scope)
      })

    // whether a call for `key` is answered in process (a live copy, a load to join, a negative)
    const inProcess = (key: string, args: Args): Effect.Effect<boolean> =>
      loading.has(key) || negatives.has(key)
        ? Effect.succeed(true)
        : Effect.map(
          completeEntry(new Request(key, args)),
          (cached) =>
            Option.isSome(cached) && !CacheEntry.isExpired(cached.value, now()) && !overtaken.has(cached.value)
        )

    const getManyWithOutcome = (
      argsList: ReadonlyArray<Args>
    ): Effect.Effect<ReadonlyArray<Outcome.Outcome<A>>, E | CacheKey.CacheKeyError> =>
      Effect.flatMap(Effect.forEach(argsList, deriveKey), (keys) =>
        CacheControl.withCurrentMode((mode) =>
          mode !== "default"
            ? Effect.forEach(argsList, (args) => getWithOutcome(...args), { concurrency: "unbounded" })
            : Effect.gen(function*() {
              const answers: Array<Effect.Effect<Outcome.Outcome<A>, E>> = new Array(keys.length)
              // the keys not answered in process, each once
              const rest = new Map<string, { readonly args: Args; readonly at: Array<number> }>()
              for (let i = 0; i < keys.length; i++) {
                const key = keys[i]!
                const seen = rest.get(key)
                if (seen !== undefined) {
                  seen.at.push(i)
                } else if (yield* inProcess(key, argsList[i]!)) {
                  answers[i] = cachedCall(key, argsList[i]!)
                } else {
                  rest.set(key, { args: argsList[i]!, at: [i] })
                }
              }
              const toLoad = new Map(rest)
              // persisted: one store round trip for all of them
              if (store !== undefined && rest.size > 0) {
                const restKeys = [...rest.keys()]
                const loads = restKeys.map((key) => coherence.begin(key))
                const stored = yield* Effect.ensuring(
                  getManyOrMiss(store, restKeys, schema, annotations),
                  Effect.sync(() => loads.forEach((load) => coherence.end(load)))
                )
                for (let n = 0; n < restKeys.length; n++) {
                  const found = stored[n]!
                  if (Option.isNone(found)) continue
                  const entry = found.value
                  if (entry.tags !== undefined && (yield* tags.check(entry)) === "hard") continue
                  const key = restKeys[n]!
                  const { args, at } = rest.get(key)!
                  toLoad.delete(key)
                  if (coherence.mayWrite(loads[n]!)) {
                    const request = new Request(key, args)
                    yield* Effect.zipRight(cache.set(request, entry), touch(request))
                  }
                  for (const i of at) {
                    answers[i] = Effect.sync(() => {
                      count("hit")
                      return internal.fromEntry(entry, now(), "hit")
                    })
                  }
                }
              }
              const outcomes: Array<Outcome.Outcome<A>> = new Array(keys.length)
              // without lookupMany, each miss is a call of its own
              if (fetchMany === undefined) {
                for (const [key, { args, at }] of toLoad) for (const i of at) answers[i] = cachedCall(key, args)
                toLoad.clear()
              }
              const loadKeys = [...toLoad.keys()]
              const loadArgs = [...toLoad.values()].map((load) => load.args)
              // tracked from before the call: an invalidation meanwhile keeps its values out
              const loads = loadKeys.map((key) => coherence.begin(key))
              const batchFiber = loadKeys.length === 0 ? undefined : yield* startBatch(loadKeys, loadArgs)
              const batchAnswers = batchFiber === undefined ? Effect.void : Effect.flatMap(
                Effect.ensuring(
                  Effect.flatten(Fiber.await(batchFiber)),
                  Effect.sync(() => loads.forEach((load) => coherence.end(load)))
                ),
                (values) =>
                  Effect.forEach(loadKeys, (key, n) =>
                    Effect.flatMap(entryOf(loadArgs[n]!, values[n]!), (entry) => {
                      for (const i of toLoad.get(key)!.at) outcomes[i] = fresh(entry)
                      if (!coherence.mayWrite(loads[n]!)) return Effect.void
                      const request = new Request(key, loadArgs[n]!)
                      negatives.delete(key)
                      return Effect.zipRight(
                        Effect.zipRight(cache.set(request, entry), touch(request)),
                        store === undefined ? Effect.void : setOrWarn(store, key, entry, schema, annotations)
                      )
                    }), { discard: true })
              )
              // the rest: hits and joins of loads already running, one after the other (nothing to
              // wait for but those loads); without lookupMany, single misses start together
              const others = Effect.forEach(
                answers.flatMap((answer, i) => answer === undefined ? [] : [i]),
                (i) =>
                  Effect.map(answers[i]!, (outcome) => {
                    outcomes[i] = outcome
                  }),
                { concurrency: fetchMany === undefined ? "unbounded" : 1, discard: true }
              )
              yield* Effect.all([batchAnswers, others], { concurrency: 2, discard: true })
              return outcomes
            })
        ))

    const self: CacheFirst<Args, A, E> = {
      getManyWithOutcome,
      getMany: (argsList) =>
        Effect.map(getManyWithOutcome(argsList), (outcomes) => outcomes.map((outcome) => outcome.value)),
      [TypeId]: TypeId,
      getWithOutcome,
      get: (...args) => Effect.map(getWithOutcome(...args), (outcome) => outcome.value),
      peek: (...args) =>
        Effect.flatMap(deriveKey(args), (key) =>
          Effect.flatMap(
            Effect.map(
              completeEntry(new Request(key, args)),
              Option.filter((entry) => !CacheEntry.isExpired(entry, now()))
            ),
            (inProcess) =>
              Option.isNone(inProcess) && store !== undefined
                ? flight!.read(key, schema)
                : Effect.succeed(inProcess)
          )),
      set: (args, value) =>
        Effect.flatMap(deriveKey(args), (key) =>
          Effect.flatMap(entryOf(args, value), (entry) => {
            const request = new Request(key, args)
            request.entry = entry
            negatives.delete(key)
            // loads of the key in flight must not overwrite it; the other instances drop theirs
            coherence.overtake({ _tag: "Key", key })
            return Effect.zipRight(
              Effect.zipRight(cache.set(request, entry), touch(request)),
              store === undefined
                ? Effect.void
                : Effect.zipRight(
                  setOrWarn(store, key, entry, schema, annotations),
                  coherence.invalidate({ _tag: "Key", key })
                )
            )
          })),
      preload: (argsList, preloadOptions) => preload(strategy, argsList, deriveKey, refreshNow, preloadOptions),
      invalidate: (...args) => Effect.flatMap(deriveKey(args), (key) => invalidateTarget({ _tag: "Key", key })),
      invalidateAll: invalidateTarget({ _tag: "Prefix", prefix: functionPrefix }),
      invalidateTag: (tag, tagOptions) => tags.invalidate(tag, tagOptions)
    }
    // The Promise facade's hit path: the entry the Cache holds, read through `recency` without
    // an Effect; anything but an unexpired hit runs through the runtime.
    let closed = false
    yield* Scope.addFinalizer(scope, Effect.sync(() => closed = true))
    const fastPath: Facade.FastPath<Args, A> = (args, outcome, fork, answer) => {
      if (closed || traceHits) return false
      const known = deriveKeyNow.remembered(args)
      let key: string
      if (known !== undefined) key = known
      else if (fork === undefined && options.key === undefined) {
        // in a fiber, a key not remembered yet is derived once, by the Effect path (which
        // remembers it on a hit), not here and again there
        return false
      } else {
        const derived = deriveKeyNow(args)
        if (derived._tag === "Left") return false
        key = derived.right
      }
      const request = recency.peek(key)
      const entry = request?.entry as CacheEntry.CacheEntry<A> | undefined
      if (entry === undefined) return false
      const at = now()
      // the expiry compared in place: `CacheEntry.isExpired` is dual, a wrapper call per hit
      if (
        at >= entry.expiresAt || (anyOvertaken && overtaken.has(entry)) ||
        (loading.size > 0 && loading.has(key))
      ) return false
      if (known === undefined) deriveKeyNow.remember(args, key)
      // tags are checked, and refreshes ahead started, through the Effect path
      if (entry.tags !== undefined) return false
      if (aheadDue(entry, at)) return false
      count("hit")
      recency.refresh(request!)
      answer.value = outcome ? internal.fromEntry(entry, at, "hit") : entry.value
      return true
    }
    const guarded = yield* ScopeGuard.guard(scope, "CacheFirst", options.name, self)
    // in a fiber too, a hit held in process answers in one step
    return Object.assign(guarded, { [Facade.FastPathId]: fastPath, get: Facade.fiberGet(fastPath, guarded.get) })
  })
