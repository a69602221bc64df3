/**
 * Cache-first (nameko-cachetools' `CacheFirstRpcProxy`, done properly): serve the cached value
 * without asking the upstream; on a miss, one upstream call serves every concurrent caller.
 * Built on effect's `Cache`, with `timeToLive` and `capacity` applying to each call's entry, and
 * optionally backed by a `CacheStore` so a shared store (Redis) serves other processes too.
 *
 * @since 0.1.0
 */
import * as Cache from "effect/Cache"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Equal from "effect/Equal"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Hash from "effect/Hash"
import * as Option from "effect/Option"
import * as Predicate from "effect/Predicate"
import type * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as CacheEntry from "./CacheEntry.js"
import * as CacheKey from "./CacheKey.js"
import * as CacheMetrics from "./CacheMetrics.js"
import { CacheStore, type CacheStoreError, getOrMiss, setOrWarn } from "./CacheStore.js"
import * as internal from "./internal/strategy.js"
import type * as Outcome from "./Outcome.js"
import { type PolicyError, positiveInteger } from "./PolicyError.js"
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
  /** What is cached: the key's `name`. */
  readonly name: string
  /** The key's namespace. Default `"cache-first"`. */
  readonly namespace?: string | undefined
  /** The upstream call, made on a miss. */
  readonly lookup: (...args: Args) => Effect.Effect<A, E, R>
  /** How long each call's value is served, from the moment it was fetched. */
  readonly timeToLive: Duration.DurationInput
  /** How many calls' values are kept in process (least recently used evicted first). Default 1,000. */
  readonly capacity?: number | undefined
  /** The value's schema, for stores that serialise (with {@link makePersisted}). */
  readonly schema?: Schema.Schema<A, I> | undefined
  /** Computes the key's id from the arguments, instead of digesting all of them. */
  readonly key?: ((...args: Args) => string) | undefined
}

/**
 * A cache-first function.
 *
 * @since 0.1.0
 * @category models
 */
export interface CacheFirst<in Args extends ReadonlyArray<any>, out A, out E> {
  readonly [TypeId]: TypeId
  /** The cached value, or the upstream's on a miss (one call for all concurrent callers). */
  readonly get: (...args: Args) => Effect.Effect<A, E | CacheKey.CacheKeyError>
  /** Like `get`, with the outcome: `hit` (with the value's age) or `miss`. */
  readonly getWithOutcome: (...args: Args) => Effect.Effect<Outcome.Outcome<A>, E | CacheKey.CacheKeyError>
  /**
   * Drops the value for these arguments (in process and, when persisted, in the store). A delete
   * the store refuses fails with `CacheStoreError` (the in-process copy is gone all the same).
   */
  readonly invalidate: (...args: Args) => Effect.Effect<void, CacheKey.CacheKeyError | CacheStoreError>
  /** Drops every value of this function; fails with `CacheStoreError` when the store refuses. */
  readonly invalidateAll: Effect.Effect<void, CacheStoreError>
}

/**
 * @since 0.1.0
 * @category guards
 */
export const isCacheFirst = (u: unknown): u is CacheFirst<ReadonlyArray<unknown>, unknown, unknown> =>
  Predicate.hasProperty(u, TypeId)

const strategy = "cache-first"
const annotations: CacheMetrics.Annotations = { strategy }

/** A lookup request: the key decides equality, the arguments travel along for the upstream. */
class Request<Args> implements Equal.Equal {
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
 *   each on its own; at most `capacity` are kept.
 * - Concurrent misses of one key make one upstream call. Failures are not cached: the next call
 *   asks again.
 * - The upstream call runs in the scope the function was built in, not in a caller's fiber:
 *   interrupting one waiter never cancels the call others wait on (effect's `Cache` alone runs
 *   it on the first caller's fiber).
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

const build = <Args extends ReadonlyArray<any>, A, E, R, I>(
  options: Options<Args, A, E, R, I>,
  store: CacheStore.Service | undefined
): Effect.Effect<CacheFirst<Args, A, E>, PolicyError, R | Scope.Scope> =>
  Effect.gen(function*() {
    const policy = yield* TimePolicy.make({ lifetime: options.timeToLive })
    const capacity = yield* positiveInteger("capacity", options.capacity ?? 1_000)
    const namespace = options.namespace ?? strategy
    const deriveKey = yield* internal.keyDeriver(namespace, options.name, options.key)
    const schema = options.schema
    const count = CacheMetrics.makeOutcomeCounter(annotations)
    const scope = yield* Effect.scope
    const clock = yield* Effect.clock

    const fetch = (request: Request<Args>): Effect.Effect<CacheEntry.CacheEntry<A>, E, R> =>
      Effect.flatMap(CacheMetrics.timeUpstream(annotations, request.key, options.lookup(...request.args)), (value) =>
        Effect.tap(
          TimePolicy.entry(policy, value),
          (entry) =>
            store === undefined ? Effect.void : setOrWarn(store, request.key, entry, schema, annotations)
        ))

    const lookup = store === undefined ? fetch : (request: Request<Args>) =>
      Effect.flatMap(
        getOrMiss(store, request.key, schema, annotations),
        Option.match({
          onNone: () =>
            fetch(request),
          onSome: Effect.succeed
        })
      )

    const cache = yield* Cache.makeWith<Request<Args>, CacheEntry.CacheEntry<A>, E, R>({
      capacity,
      lookup,
      // failures get no time at all; they are also dropped explicitly once their waiters have them
      timeToLive: (exit) =>
        Exit.isSuccess(exit)
          ? Duration.millis(Math.max(0, exit.value.expiresAt - clock.unsafeCurrentTimeMillis()))
          : Duration.zero
    })

    // Loads run in the strategy's scope; callers only join them, so interrupting a caller
    // interrupts its wait, never the load.
    const loading = new Map<string, Fiber.RuntimeFiber<CacheEntry.CacheEntry<A>, E>>()
    const load = (request: Request<Args>) =>
      Effect.suspend(() => {
        const running = loading.get(request.key)
        if (running !== undefined) return Effect.succeed(running)
        const run = cache.get(request).pipe(
          Effect.onExit((exit) =>
            Effect.suspend(() => {
              loading.delete(request.key)
              return Exit.isSuccess(exit) ? Effect.void : cache.invalidate(request)
            })
          )
        )
        // a load that completed synchronously has nothing left to join
        return Effect.tap(internal.forkNow(run, scope), (fiber) =>
          Effect.sync(() => {
            if (fiber.unsafePoll() === null) loading.set(request.key, fiber)
          }))
      })

    const getWithOutcome = (...args: Args): Effect.Effect<Outcome.Outcome<A>, E | CacheKey.CacheKeyError> =>
      Effect.flatMap(deriveKey(args), (key) => {
        const request = new Request(key, args)
        // a load already running: join it without asking the Cache (stampedes)
        const running = loading.get(key)
        if (running !== undefined) return joinAndServe(running, clock.unsafeCurrentTimeMillis())
        return Effect.flatMap(cache.getOptionComplete(request), (cached) => {
          const now = clock.unsafeCurrentTimeMillis()
          if (Option.isSome(cached)) {
            // effect's Cache keeps an entry until just after its time; ours ends at expiresAt
            if (!CacheEntry.isExpired(cached.value, now)) {
              count("hit")
              return Effect.succeed(internal.fromEntry(cached.value, now, "hit"))
            }
            return Effect.zipRight(cache.invalidate(request), loadAndServe(request, now))
          }
          return loadAndServe(request, now)
        })
      })

    const loadAndServe = (request: Request<Args>, startedAt: number) =>
      Effect.flatMap(load(request), (fiber) => joinAndServe(fiber, startedAt))

    // `Fiber.await`, not `Fiber.join`: waiters take the load's result, not its FiberRefs
    const joinAndServe = (fiber: Fiber.Fiber<CacheEntry.CacheEntry<A>, E>, startedAt: number) =>
      Effect.map(Effect.flatten(Fiber.await(fiber)), (entry) => {
        // fetched during this call: a miss; otherwise another process's value from the store
        const status = entry.createdAt >= startedAt ? "miss" : "hit"
        count(status)
        return internal.fromEntry(entry, clock.unsafeCurrentTimeMillis(), status, { fetchedSynchronously: true })
      })

    const self: CacheFirst<Args, A, E> = {
      [TypeId]: TypeId,
      getWithOutcome,
      get: (...args) => Effect.map(getWithOutcome(...args), (outcome) => outcome.value),
      invalidate: (...args) =>
        Effect.flatMap(deriveKey(args), (key) =>
          Effect.zipRight(
            cache.invalidate(new Request(key, args)),
            store === undefined ? Effect.void : store.delete(key)
          )),
      invalidateAll: Effect.zipRight(
        cache.invalidateAll,
        store === undefined ? Effect.void : Effect.asVoid(store.deletePrefix(CacheKey.prefix(namespace, options.name)))
      )
    }
    return self
  })
