/**
 * Failover (nameko-cachetools' `CachedRpcProxy`, done properly): always ask the upstream, store
 * every success, and when the upstream fails or is slower than `timeout`, serve the last good
 * value instead — saying so in the outcome. Built on `Effect.timeout`.
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as Option from "effect/Option"
import * as Predicate from "effect/Predicate"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import type { CacheEntry } from "./CacheEntry.js"
import type { CacheKeyError } from "./CacheKey.js"
import * as CacheMetrics from "./CacheMetrics.js"
import { CacheStore, type CacheStoreError, getOrMiss, setOrWarn } from "./CacheStore.js"
import * as internal from "./internal/strategy.js"
import * as Outcome from "./Outcome.js"
import type { PolicyError } from "./PolicyError.js"
import * as TimePolicy from "./TimePolicy.js"

/**
 * @since 0.1.0
 * @category type ids
 */
export const TypeId: TypeId = "~@stalewise/core/Failover"

/**
 * @since 0.1.0
 * @category type ids
 */
export type TypeId = "~@stalewise/core/Failover"

/**
 * No value was cached and the upstream did not answer within `requestTimeout`.
 *
 * @since 0.1.0
 * @category errors
 */
export class RequestTimeoutError extends Schema.TaggedError<RequestTimeoutError>(
  "@stalewise/core/RequestTimeoutError"
)("RequestTimeoutError", {
  /** The key of the call. */
  key: Schema.String,
  /** The `requestTimeout` that ran out, formatted (e.g. `2s`). */
  timeout: Schema.String
}) {
  /**
   * @since 0.1.0
   */
  override get message(): string {
    return `No cached value for ${this.key} and the upstream did not answer within ${this.timeout}`
  }
}

/**
 * The errors a failover call adds to the upstream's own: an argument that cannot be keyed, or
 * no cached value and no answer within `requestTimeout`.
 *
 * @since 0.1.0
 * @category errors
 */
export type FailoverError = CacheKeyError | RequestTimeoutError

/**
 * Options of {@link make}.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options<Args extends ReadonlyArray<any>, A, E, R, I = A> {
  /** What is cached: the key's `name`. */
  readonly name: string
  /** The key's namespace. Default `"failover"`. */
  readonly namespace?: string | undefined
  /** The upstream call. */
  readonly lookup: (...args: Args) => Effect.Effect<A, E, R>
  /**
   * How long to wait for the upstream before serving the cached value, when one exists.
   * Must be positive: a zero or negative timeout is a `PolicyError`, never "wait forever".
   */
  readonly timeout: Duration.DurationInput
  /**
   * How long to wait for the upstream when nothing is cached; then the call fails with
   * `RequestTimeoutError`. Default: wait as long as the upstream takes.
   */
  readonly requestTimeout?: Duration.DurationInput | undefined
  /** How long a stored value stays available as a fallback. Default 1 day. */
  readonly timeToLive?: Duration.DurationInput | undefined
  /**
   * What happens to an upstream call that ran past its deadline: `"continue"` (default) lets it
   * finish in the background, in the strategy's scope, and stores its success; `"interrupt"`
   * interrupts it.
   */
  readonly onTimeout?: "continue" | "interrupt" | undefined
  /**
   * Which failures of the upstream fall back to the cached value. Default: every failure of `E`.
   * A failure that does not fall back reaches the caller unchanged.
   */
  readonly fallbackOn?: ((error: E) => boolean) | undefined
  /** Whether an upstream defect (a die) falls back too. Default false: defects reach the caller. */
  readonly fallbackOnDefect?: boolean | undefined
  /** Identical concurrent calls share one upstream call. Default true. */
  readonly singleFlight?: boolean | undefined
  /** The value's schema, for stores that serialise (KeyValueStore, Redis). */
  readonly schema?: Schema.Schema<A, I> | undefined
  /** Computes the key's id from the arguments, instead of digesting all of them. */
  readonly key?: ((...args: Args) => string) | undefined
}

/**
 * A failover-cached function. Interruption of the upstream never falls back; errors are never
 * stored.
 *
 * @since 0.1.0
 * @category models
 */
export interface Failover<in Args extends ReadonlyArray<any>, out A, out E> {
  readonly [TypeId]: TypeId
  /** Calls the upstream; on failure or timeout serves the cached value. */
  readonly get: (...args: Args) => Effect.Effect<A, E | FailoverError>
  /** Like `get`, with the outcome: `miss` (fresh from the upstream) or `failover` with its reason and age. */
  readonly getWithOutcome: (...args: Args) => Effect.Effect<Outcome.Outcome<A>, E | FailoverError>
  /** The stored fallback for these arguments, without calling the upstream. */
  readonly peek: (...args: Args) => Effect.Effect<Option.Option<CacheEntry<A>>, CacheKeyError>
  /**
   * Drops the stored fallback for these arguments. A delete the store refuses fails with
   * `CacheStoreError`: the entry may still be there, and the caller is told.
   */
  readonly invalidate: (...args: Args) => Effect.Effect<void, CacheKeyError | CacheStoreError>
}

/**
 * @since 0.1.0
 * @category guards
 */
export const isFailover = (u: unknown): u is Failover<ReadonlyArray<unknown>, unknown, unknown> =>
  Predicate.hasProperty(u, TypeId)

/** One upstream call, shared by the callers of its key while it runs. */
interface InFlight<A, E> {
  readonly deferred: Deferred.Deferred<A, E>
  fiber: Fiber.RuntimeFiber<void> | undefined
  /** A caller's deadline passed: later callers serve the cached value at once. */
  overdue: boolean
  /** The stored value as the first caller read it; callers joining the call reuse the read. */
  stored: Option.Option<CacheEntry<A>> | undefined
}

const strategy = "failover"
const annotations: CacheMetrics.Annotations = { strategy }

/**
 * Builds a failover-cached function over `lookup`, storing through the `CacheStore` in context.
 * Fails with `PolicyError` for a non-positive `timeout`, `requestTimeout` or `timeToLive`.
 *
 * **Details**
 *
 * - Every call asks the upstream; a success is stored (for `timeToLive`) and returned with
 *   status `miss`.
 * - With a stored value, a failure accepted by `fallbackOn` (default: all of `E`), or no answer
 *   within `timeout`, returns the stored value with status `failover`, reason `error` or
 *   `timeout`, and its age.
 * - The call that ran past `timeout` finishes in the background (in the scope the strategy was
 *   built in) and its success is stored, unless `onTimeout: "interrupt"`. While it is overdue,
 *   later callers of the same key get the stored value at once instead of waiting again.
 * - Without a stored value the caller waits for the upstream, at most `requestTimeout`
 *   (`RequestTimeoutError`).
 * - Identical concurrent calls share one upstream call (`singleFlight`, on by default);
 *   interrupting one caller never cancels the call others wait on.
 * - A store that fails is treated as empty (logged, counted); the upstream still answers.
 *
 * @example
 * ```ts
 * import { CacheStore, Failover } from "@stalewise/core"
 * import { Effect } from "effect"
 *
 * const fetchRate = (currency: string) => Effect.succeed(currency === "EUR" ? 1.08 : 1)
 *
 * const program = Effect.gen(function*() {
 *   const rate = yield* Failover.make({ name: "rate", lookup: fetchRate, timeout: "200 millis" })
 *   const outcome = yield* rate.getWithOutcome("EUR")
 *   console.log(outcome.status, outcome.value) // "miss" 1.08
 * }).pipe(Effect.scoped, Effect.provide(CacheStore.layerMemory))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = <Args extends ReadonlyArray<any>, A, E, R, I = A>(
  options: Options<Args, A, E, R, I>
): Effect.Effect<Failover<Args, A, E>, PolicyError, R | CacheStore | Scope.Scope> =>
  Effect.gen(function*() {
    const timeout = yield* TimePolicy.positiveDuration("timeout", options.timeout)
    const requestTimeout = options.requestTimeout === undefined
      ? undefined
      : yield* TimePolicy.positiveDuration("requestTimeout", options.requestTimeout)
    const ttl = options.timeToLive ?? Duration.days(1)
    const policy = yield* TimePolicy.make({ lifetime: ttl, timeToLive: ttl })
    const store = yield* CacheStore
    const scope = yield* Effect.scope
    const context = yield* Effect.context<R>()
    const deriveKey = yield* internal.keyDeriver(options.namespace ?? strategy, options.name, options.key)
    const schema = options.schema
    const fallbackOn = options.fallbackOn ?? (() => true)
    const fallbackOnDefect = options.fallbackOnDefect ?? false
    const interruptOnTimeout = options.onTimeout === "interrupt"
    const singleFlight = options.singleFlight ?? true
    const count = CacheMetrics.makeOutcomeCounter(annotations)
    const inflight = new Map<string, InFlight<A, E>>()

    // Starts the upstream call for `key` in the strategy's scope, or joins the one running.
    // Registration is synchronous, so concurrent callers can never start two calls.
    const join = (key: string, args: Args): Effect.Effect<InFlight<A, E>> =>
      Effect.suspend(() => {
        const running = singleFlight ? inflight.get(key) : undefined
        if (running !== undefined) return Effect.succeed(running)
        const call: InFlight<A, E> = {
          deferred: Deferred.unsafeMake(FiberId.none),
          fiber: undefined,
          overdue: false,
          stored: undefined
        }
        if (singleFlight) inflight.set(key, call)
        const run = CacheMetrics.timeUpstream(annotations, key, options.lookup(...args)).pipe(
          Effect.provide(context),
          Effect.exit,
          Effect.flatMap((exit) => {
            if (inflight.get(key) === call) inflight.delete(key)
            return Effect.zipRight(
              Deferred.done(call.deferred, exit),
              Exit.isSuccess(exit)
                ? Effect.flatMap(
                  TimePolicy.entry(policy, exit.value),
                  (entry) => setOrWarn(store, key, entry, schema, annotations)
                )
                : Effect.void
            )
          }),
          Effect.onInterrupt(() =>
            Effect.suspend(() => {
              if (inflight.get(key) === call) inflight.delete(key)
              return Deferred.interrupt(call.deferred)
            })
          )
        )
        return Effect.map(internal.forkNow(run, scope), (fiber) => {
          call.fiber = fiber
          return call
        })
      })

    const giveUp = (call: InFlight<A, E>) =>
      Effect.suspend(() => {
        call.overdue = true
        return interruptOnTimeout && call.fiber !== undefined ? Fiber.interruptFork(call.fiber) : Effect.void
      })

    // `waited`: whether this caller waited for the upstream before falling back
    const failover = (entry: CacheEntry<A>, reason: Outcome.FailoverReason, waited = true) =>
      Effect.map(Clock.currentTimeMillis, (now) => {
        count("failover", reason)
        return internal.fromEntry(entry, now, "failover", { reason, fetchedSynchronously: waited })
      })

    const fresh = (value: A) => {
      count("miss")
      return Outcome.make({ value, status: "miss", fetchedSynchronously: true })
    }

    const falls = (cause: Cause.Cause<E>): boolean =>
      Cause.isInterruptedOnly(cause)
        ? false
        : Option.match(Cause.failureOption(cause), {
          onSome: fallbackOn,
          onNone: () => fallbackOnDefect && Cause.isDie(cause)
        })

    const withCached = (key: string, call: InFlight<A, E>, cached: CacheEntry<A>) => {
      if (call.overdue) return failover(cached, "timeout", false)
      return Deferred.await(call.deferred).pipe(
        Effect.exit,
        Effect.timeout(timeout),
        Effect.matchCauseEffect({
          // the timeout: serve the cached value; the call goes on (or is interrupted)
          onFailure: () => Effect.zipRight(giveUp(call), failover(cached, "timeout")),
          onSuccess: (exit): Effect.Effect<Outcome.Outcome<A>, E> =>
            Exit.isSuccess(exit)
              ? Effect.succeed(fresh(exit.value))
              : call.overdue && Cause.isInterruptedOnly(exit.cause)
              ? failover(cached, "timeout") // interrupted by another caller's deadline
              : falls(exit.cause)
              ? Effect.tap(failover(cached, "error"), () =>
                Effect.logDebug("stalewise: upstream failed, serving the cached value").pipe(
                  Effect.annotateLogs({ strategy, key })
                ))
              : Effect.failCause(exit.cause)
        })
      )
    }

    const withoutCached = (key: string, call: InFlight<A, E>) => {
      const awaited = Effect.map(Deferred.await(call.deferred), fresh)
      if (requestTimeout === undefined) return awaited
      return awaited.pipe(
        Effect.timeoutFail({
          duration: requestTimeout,
          onTimeout: () => new RequestTimeoutError({ key, timeout: Duration.format(requestTimeout) })
        }),
        Effect.tapErrorTag("RequestTimeoutError", () => giveUp(call))
      )
    }

    const decide = (key: string, call: InFlight<A, E>, stored: Option.Option<CacheEntry<A>>) =>
      Option.isNone(stored) ? withoutCached(key, call) : withCached(key, call, stored.value)

    const getWithOutcome = (...args: Args): Effect.Effect<Outcome.Outcome<A>, E | FailoverError> =>
      Effect.flatMap(deriveKey(args), (key) =>
        Effect.flatMap(join(key, args), (call) =>
          // in a stampede, one store read serves every caller of the shared call
          call.stored !== undefined ? decide(key, call, call.stored) : Effect.flatMap(
            getOrMiss(store, key, schema, annotations),
            (stored) => {
              call.stored = stored
              return decide(key, call, stored)
            }
          )))

    const failoverFn: Failover<Args, A, E> = {
      [TypeId]: TypeId,
      getWithOutcome,
      get: (...args) => Effect.map(getWithOutcome(...args), (outcome) => outcome.value),
      peek: (...args) => Effect.flatMap(deriveKey(args), (key) => getOrMiss(store, key, schema, annotations)),
      invalidate: (...args) => Effect.flatMap(deriveKey(args), (key) => store.delete(key))
    }
    return failoverFn
  })
