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
import * as CacheControl from "./CacheControl.js"
import * as CacheEntry from "./CacheEntry.js"
import * as CacheKey from "./CacheKey.js"
import * as CacheMetrics from "./CacheMetrics.js"
import { CacheStore, type CacheStoreError, setOrWarn } from "./CacheStore.js"
import * as Coherence from "./Coherence.js"
import { preload } from "./internal/preload.js"
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
    const deriveKey = yield* internal.keyDeriver(namespace, options.name, options.key)
    const schema = options.schema
    const annotations: CacheMetrics.Annotations = { strategy, namespace, name: options.name }
    const count = CacheMetrics.makeOutcomeCounter(annotations)
    const traceHits = options.traceHits ?? false
    const interruptOnAbandon = options.onAbandon === "interrupt"
    const backgroundMillis = options.backgroundTimeout === undefined
      ? defaultBackgroundMillis
      : Duration.toMillis(yield* TimePolicy.positiveDuration("backgroundTimeout", options.backgroundTimeout))
    const scope = yield* Effect.scope
    const clock = yield* Effect.clock
    const context = yield* Effect.context<R>()
    const now = () => clock.unsafeCurrentTimeMillis()

    const upstream = (args: Args): Effect.Effect<A, E> =>
      Effect.provide(CacheControl.upstream(options.lookup(...args)), context)

    const fetch = (request: Request<Args>, load: Coherence.Load): Effect.Effect<CacheEntry.CacheEntry<A>, E> =>
      Effect.flatMap(CacheMetrics.timeUpstream(annotations, request.key, upstream(request.args)), (value) =>
        Effect.tap(
          TimePolicy.entry(policy, value),
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
      Effect.flatMap(
        flight.read(request.key, schema),
        Option.match({
          onNone: () =>
            flight.run({
              key: request.key,
              read: flight.read(request.key, schema),
              accept: () => true,
              fetch: fetch(request, load)
            }),
          onSome: Effect.succeed
        })
      )

    // Entries that an invalidation overtook while they loaded: the Cache gets them for no time.
    const overtaken = new WeakSet<CacheEntry.CacheEntry<A>>()
    const tracked = <X>(key: string, f: (load: Coherence.Load) => Effect.Effect<CacheEntry.CacheEntry<A>, X>) =>
      Effect.suspend(() => {
        const load = coherence.begin(key)
        return f(load).pipe(
          Effect.tap((entry) => {
            if (load.overtaken) overtaken.add(entry)
          }),
          Effect.ensuring(Effect.sync(() => coherence.end(load)))
        )
      })
    const lookup = (request: Request<Args>) => tracked(request.key, (load) => lookupOnce(request, load))

    // effect's Cache keeps the values, expiry and single flight; its own eviction is not least
    // recently used (a hit re-queues the entry behind a stale copy of its first access), so its
    // capacity is unbounded and `recency` evicts instead: a Map's insertion order, where a use
    // moves the key to the end.
    const cache = yield* Cache.makeWith<Request<Args>, CacheEntry.CacheEntry<A>, E>({
      capacity: Number.MAX_SAFE_INTEGER,
      lookup,
      // failures get no time at all; they are also dropped explicitly once their waiters have them
      timeToLive: (exit) =>
        Exit.isSuccess(exit) && !overtaken.has(exit.value)
          ? Duration.millis(Math.max(0, exit.value.expiresAt - clock.unsafeCurrentTimeMillis()))
          : Duration.zero
    })
    const recency = new Map<string, Request<Args>>()
    // failures kept by negative caching, with the time they expire
    const negatives = new Map<string, { readonly error: E; readonly expiresAt: number }>()

    const forgetKey = (key: string) => {
      recency.delete(key)
      negatives.delete(key)
    }

    // A use moves the key to the end, keeping the request held already: holding each hit's own
    // request (and its arguments) until the key's next use promoted one garbage object per hit
    // to the old generation once the working set outgrew the young one.
    const reuse = (key: string, request: Request<Args>): void => {
      const held = recency.get(key)
      recency.delete(key)
      recency.set(key, held ?? request)
    }

    const touch = (request: Request<Args>): Effect.Effect<void> =>
      Effect.suspend(() => {
        recency.delete(request.key)
        recency.set(request.key, request)
        if (recency.size <= capacity) return Effect.void
        const evicted: Array<Request<Args>> = []
        for (const [key, oldest] of recency) {
          if (recency.size - evicted.length <= capacity) break
          evicted.push(oldest)
          negatives.delete(key)
        }
        for (const oldest of evicted) recency.delete(oldest.key)
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
      if (Exit.isSuccess(exit)) return touch(request)
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
          abandoned: false
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
      return Effect.flatMap(cache.getOptionComplete(request), (cached) => {
        const at = now()
        if (Option.isSome(cached)) {
          // effect's Cache keeps an entry until just after its time; ours ends at expiresAt
          if (!CacheEntry.isExpired(cached.value, at) && !overtaken.has(cached.value)) {
            count("hit")
            reuse(key, request)
            const outcome = internal.fromEntry(cached.value, at, "hit")
            return traceHits ? traced(key, Effect.succeed(outcome)) : Effect.succeed(outcome)
          }
          recency.delete(key)
          return traced(key, Effect.zipRight(cache.invalidate(request), joinAndServe(request, at)))
        }
        return traced(key, joinAndServe(request, at))
      })
    }

    // `forceRefresh` and `preload`: fetch now, store, replace what is cached
    const refreshNow = (key: string, args: Args): Effect.Effect<CacheEntry.CacheEntry<A>, E> => {
      const request = new Request(key, args)
      return Effect.tap(tracked(key, (load) => fetch(request, load)), (entry) =>
        Effect.suspend(() => {
          negatives.delete(key)
          return Effect.zipRight(cache.set(request, entry), touch(request))
        }))
    }

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

    const self: CacheFirst<Args, A, E> = {
      [TypeId]: TypeId,
      getWithOutcome,
      get: (...args) => Effect.map(getWithOutcome(...args), (outcome) => outcome.value),
      peek: (...args) =>
        Effect.flatMap(deriveKey(args), (key) =>
          Effect.flatMap(
            Effect.map(
              cache.getOptionComplete(new Request(key, args)),
              Option.filter((entry) => !CacheEntry.isExpired(entry, now()))
            ),
            (inProcess) =>
              Option.isNone(inProcess) && store !== undefined
                ? flight!.read(key, schema)
                : Effect.succeed(inProcess)
          )),
      set: (args, value) =>
        Effect.flatMap(deriveKey(args), (key) =>
          Effect.flatMap(TimePolicy.entry(policy, value), (entry) => {
            const request = new Request(key, args)
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
      invalidateAll: invalidateTarget({ _tag: "Prefix", prefix: functionPrefix })
    }
    return yield* ScopeGuard.guard(scope, "CacheFirst", options.name, self)
  })
