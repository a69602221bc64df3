/**
 * Failover (nameko-cachetools' `CachedRpcProxy`, done properly): always ask the upstream, store
 * every success, and when the upstream fails or is slower than `timeout`, serve the last good
 * value instead — saying so in the outcome. One deadline per upstream call, shared by its callers.
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
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
import * as CacheControl from "./CacheControl.js"
import * as CacheEntry from "./CacheEntry.js"
import * as CacheKey from "./CacheKey.js"
import type { CacheKeyError } from "./CacheKey.js"
import * as CacheMetrics from "./CacheMetrics.js"
import { CacheStore, type CacheStoreError, getOrMiss, setOrWarn } from "./CacheStore.js"
import { preload } from "./internal/preload.js"
import * as internal from "./internal/strategy.js"
import * as Outcome from "./Outcome.js"
import type { PolicyError } from "./PolicyError.js"
import * as ScopeGuard from "./ScopeGuard.js"
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
  /** What is cached: the key's `name`, and the `name` tag of its metrics and spans. */
  readonly name: string
  /** The key's namespace. Default `"failover"`. */
  readonly namespace?: string | undefined
  /** The upstream call. */
  readonly lookup: (...args: Args) => Effect.Effect<A, E, R>
  /**
   * How long to wait for the upstream before serving the cached value, when one exists,
   * counted from the start of the upstream call: callers that join a running call are served at
   * its deadline. Must be positive and finite: a zero, negative or infinite timeout is a `PolicyError`, never
   * "wait forever".
   */
  readonly timeout: Duration.DurationInput
  /**
   * How long to wait for the upstream when nothing is cached; then the call fails with
   * `RequestTimeoutError`. Default: wait as long as the upstream takes.
   */
  readonly requestTimeout?: Duration.DurationInput | undefined
  /** How long a stored value stays available as a fallback; it is never served later. Default 1 day. */
  readonly timeToLive?: Duration.DurationInput | undefined
  /**
   * What happens to an upstream call that ran past its deadline: `"continue"` (default) lets it
   * finish in the background, in the strategy's scope, for at most `backgroundTimeout`, and
   * stores its success; `"interrupt"` interrupts it.
   */
  readonly onTimeout?: "continue" | "interrupt" | undefined
  /**
   * The longest an upstream call may run, from its start, once nobody waits for it any more (a
   * call's deadline passed, or every caller left): then it is interrupted and the next caller
   * starts a fresh call. Default: `requestTimeout` when set, otherwise 30 seconds.
   */
  readonly backgroundTimeout?: Duration.DurationInput | undefined
  /**
   * What happens to an upstream call when every caller waiting for it was interrupted before
   * it answered (and none gave up on it at its deadline): `"complete"` (default) lets it finish,
   * for at most `backgroundTimeout`, and stores its success — it was paid for, and the next
   * caller fails over to it; `"interrupt"` interrupts it once its last waiter leaves. Waiters
   * are counted: one leaving never cancels the call the others wait for.
   */
  readonly onAbandon?: "complete" | "interrupt" | undefined
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
 * stored. Every call honours `CacheControl.bypass` and `CacheControl.forceRefresh`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Failover<in Args extends ReadonlyArray<any>, in out A, out E> {
  readonly [TypeId]: TypeId
  /** Calls the upstream; on failure or timeout serves the cached value. */
  readonly get: (...args: Args) => Effect.Effect<A, E | FailoverError>
  /** Like `get`, with the outcome: `miss` (fresh from the upstream) or `failover` with its reason and age. */
  readonly getWithOutcome: (...args: Args) => Effect.Effect<Outcome.Outcome<A>, E | FailoverError>
  /** The stored fallback for these arguments, without calling the upstream. */
  readonly peek: (...args: Args) => Effect.Effect<Option.Option<CacheEntry.CacheEntry<A>>, CacheKeyError>
  /**
   * Drops the stored fallback for these arguments. A delete the store refuses fails with
   * `CacheStoreError`: the entry may still be there, and the caller is told.
   */
  readonly invalidate: (...args: Args) => Effect.Effect<void, CacheKeyError | CacheStoreError>
  /** Drops every stored fallback of this function; a refused delete fails with `CacheStoreError`. */
  readonly invalidateAll: Effect.Effect<void, CacheStoreError>
  /** Stores `value` as the fallback for `args`, as if the upstream had just answered it. */
  readonly set: (args: Args, value: A) => Effect.Effect<void, CacheKeyError | CacheStoreError>
  /**
   * Asks the upstream for each argument list (at most `concurrency` at once, default 4) and
   * stores the answers: a warm-up before traffic. Failures are counted and logged, never raised.
   */
  readonly preload: (
    argsList: Iterable<Args>,
    options?: { readonly concurrency?: number | undefined }
  ) => Effect.Effect<Outcome.Preloaded>
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
  readonly startedAt: number
  fiber: Fiber.RuntimeFiber<unknown> | undefined
  /** The call's deadline passed: later callers serve the cached value at once. */
  overdue: boolean
  /** The stored value as the first caller read it; callers joining the call reuse the read. */
  stored: Option.Option<CacheEntry.CacheEntry<A>> | undefined
  /** Callers waiting for the call (reference count for `onAbandon`). */
  waiters: number
  done: boolean
  /** Interrupts the call at `startedAt + backgroundTimeout`, once armed. */
  timer: Fiber.RuntimeFiber<unknown> | undefined
  /** The call was interrupted by its background bound. */
  cut: boolean
  /** How the call ended, once it has (what `deferred` holds). */
  exit: Exit.Exit<A, E> | undefined
  /**
   * Done when the call ends or its deadline (`startedAt + timeout`) passes, whichever is first:
   * what callers with a fallback wait for. One deadline per call, not one timer per caller.
   */
  readonly settled: Deferred.Deferred<void>
  /** The deadline is armed (by the first caller with a fallback). */
  armed: boolean
  /** Completes `settled` at the deadline, once armed. */
  deadline: Fiber.RuntimeFiber<unknown> | undefined
}

const strategy = "failover"

/** The default `backgroundTimeout` without a `requestTimeout`. */
const defaultBackgroundTimeout = Duration.seconds(30)

/**
 * Builds a failover-cached function over `lookup`, storing through the `CacheStore` in context.
 * Fails with `PolicyError` for a non-positive `timeout`, `requestTimeout`, `backgroundTimeout`
 * or `timeToLive`, and for an infinite `timeout` or `requestTimeout` (budgets must run out).
 *
 * **Details**
 *
 * - Every call asks the upstream; a success is stored (for `timeToLive`) and returned with
 *   status `miss`.
 * - With a stored value younger than `timeToLive`, a failure accepted by `fallbackOn` (default:
 *   all of `E`), or no answer within `timeout` of the upstream call's start (one deadline per
 *   call, shared by every caller waiting on it), returns the stored value with status `failover`,
 *   reason `error` or `timeout`, and its age. A value past `timeToLive` is never served.
 * - The call that ran past `timeout` finishes in the background (in the scope the strategy was
 *   built in) and its success is stored, unless `onTimeout: "interrupt"`; it runs at most
 *   `backgroundTimeout` from its start, then is interrupted. While it is overdue, later callers
 *   of the same key get the stored value at once instead of waiting again; once it ends, the next
 *   caller starts a fresh call.
 * - Without a stored value the caller waits for the upstream, at most `requestTimeout`
 *   (`RequestTimeoutError`).
 * - Identical concurrent calls share one upstream call (`singleFlight`, on by default);
 *   interrupting one caller never cancels the call others wait on, and `onAbandon` decides what
 *   happens when the last one leaves.
 * - A store that fails is treated as empty (logged, counted); the upstream still answers.
 * - Every call runs in a `stalewise.get` span and is counted in `CacheMetrics.outcomes` with its
 *   `name` and `namespace`.
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
    // budgets: an infinite one would never serve the fallback it exists for
    const timeout = yield* TimePolicy.finiteDuration("timeout", options.timeout)
    const requestTimeout = options.requestTimeout === undefined
      ? undefined
      : yield* TimePolicy.finiteDuration("requestTimeout", options.requestTimeout)
    const backgroundTimeout = options.backgroundTimeout === undefined
      ? requestTimeout ?? defaultBackgroundTimeout
      : yield* TimePolicy.positiveDuration("backgroundTimeout", options.backgroundTimeout)
    const backgroundMillis = Duration.toMillis(backgroundTimeout)
    const timeoutMillis = Duration.toMillis(timeout)
    const ttl = options.timeToLive ?? Duration.days(1)
    const policy = yield* TimePolicy.make({ lifetime: ttl, timeToLive: ttl })
    const store = yield* CacheStore
    const scope = yield* Effect.scope
    const clock = yield* Effect.clock
    const context = yield* Effect.context<R>()
    const namespace = options.namespace ?? strategy
    const deriveKey = yield* internal.keyDeriver(namespace, options.name, options.key)
    const schema = options.schema
    const fallbackOn = options.fallbackOn ?? (() => true)
    const fallbackOnDefect = options.fallbackOnDefect ?? false
    const interruptOnTimeout = options.onTimeout === "interrupt"
    const interruptOnAbandon = options.onAbandon === "interrupt"
    const singleFlight = options.singleFlight ?? true
    const annotations: CacheMetrics.Annotations = { strategy, namespace, name: options.name }
    const count = CacheMetrics.makeOutcomeCounter(annotations)
    const inflight = new Map<string, InFlight<A, E>>()
    const now = () => clock.unsafeCurrentTimeMillis()

    // The upstream call and the store write of its success, in the default cache mode.
    const fetchAndStore = (key: string, args: Args): Effect.Effect<A, E> =>
      CacheMetrics.timeUpstream(annotations, key, CacheControl.upstream(options.lookup(...args))).pipe(
        Effect.provide(context),
        Effect.tap((value) =>
          Effect.flatMap(TimePolicy.entry(policy, value), (entry) => setOrWarn(store, key, entry, schema, annotations))
        )
      )

    const forget = (key: string, call: InFlight<A, E>) => {
      if (inflight.get(key) === call) inflight.delete(key)
    }

    // Starts the upstream call for `key` in the strategy's scope, or joins the one running, and
    // counts the caller as a waiter. Registration is synchronous, so concurrent callers can never
    // start two calls.
    const join = (key: string, args: Args): Effect.Effect<InFlight<A, E>> =>
      Effect.suspend(() => {
        const running = singleFlight ? inflight.get(key) : undefined
        if (running !== undefined) {
          running.waiters++
          return Effect.succeed(running)
        }
        const call: InFlight<A, E> = {
          deferred: Deferred.unsafeMake(FiberId.none),
          startedAt: now(),
          fiber: undefined,
          overdue: false,
          stored: undefined,
          waiters: 1,
          done: false,
          timer: undefined,
          cut: false,
          exit: undefined,
          settled: Deferred.unsafeMake(FiberId.none),
          armed: false,
          deadline: undefined
        }
        if (singleFlight) inflight.set(key, call)
        const run = fetchAndStore(key, args).pipe(
          Effect.exit,
          Effect.flatMap((exit) => {
            forget(key, call)
            settle(call, exit)
            return Deferred.done(call.deferred, exit)
          }),
          Effect.onInterrupt(() =>
            Effect.suspend(() => {
              forget(key, call)
              settle(call, Exit.interrupt(FiberId.none))
              return Deferred.interrupt(call.deferred)
            })
          ),
          Effect.ensuring(Effect.suspend(() => {
            call.done = true
            const timers = [call.timer, call.deadline].filter((fiber) => fiber !== undefined)
            return timers.length === 0 ? Effect.void : Effect.forEach(timers, Fiber.interruptFork, { discard: true })
          }))
        )
        // interruptible, although callers join inside an uninterruptible region
        return Effect.map(internal.forkNow(Effect.interruptible(run), scope), (fiber) => {
          call.fiber = fiber
          return call
        })
      })

    // The call ended: callers waiting for its answer or its deadline read `exit`.
    const settle = (call: InFlight<A, E>, exit: Exit.Exit<A, E>): void => {
      if (call.exit !== undefined) return
      call.exit = exit
      Deferred.unsafeDone(call.settled, Exit.void)
    }

    // One timer per call, armed by its first caller with a fallback: at `startedAt + timeout` the
    // call is overdue and every caller waiting on it is served the fallback at once, whenever it
    // joined. (A timer per caller made a wave of callers wake one by one, each after its own
    // `timeout`.)
    const armDeadline = (key: string, call: InFlight<A, E>): Effect.Effect<void> =>
      Effect.suspend(() => {
        if (call.armed || call.exit !== undefined) return Effect.void
        call.armed = true
        const timer = Effect.sleep(Duration.millis(Math.max(0, call.startedAt + timeoutMillis - now()))).pipe(
          Effect.zipRight(Effect.suspend(() => {
            if (call.exit !== undefined) return Effect.void
            Deferred.unsafeDone(call.settled, Exit.void)
            return giveUp(key, call)
          }))
        )
        return Effect.map(internal.forkNow(Effect.interruptible(timer), scope), (fiber) => {
          call.deadline = fiber
        })
      })

    const interruptCall = (key: string, call: InFlight<A, E>) =>
      Effect.suspend(() => {
        forget(key, call)
        return call.fiber === undefined ? Effect.void : Fiber.interruptFork(call.fiber)
      })

    // Nobody waits for the call any more: it may run until `startedAt + backgroundTimeout`.
    const bound = (key: string, call: InFlight<A, E>): Effect.Effect<void> =>
      Effect.suspend(() => {
        if (call.done || call.timer !== undefined) return Effect.void
        const timer = Effect.sleep(Duration.millis(Math.max(0, call.startedAt + backgroundMillis - now()))).pipe(
          Effect.zipRight(Effect.suspend(() => {
            call.cut = true
            return interruptCall(key, call)
          }))
        )
        return Effect.map(internal.forkNow(Effect.interruptible(timer), scope), (fiber) => {
          call.timer = fiber
        })
      })

    const giveUp = (key: string, call: InFlight<A, E>) =>
      Effect.suspend(() => {
        call.overdue = true
        return interruptOnTimeout ? interruptCall(key, call) : bound(key, call)
      })

    // A caller is done with the call: the last one leaving by interruption abandons it.
    const leave = (key: string, call: InFlight<A, E>, exit: Exit.Exit<unknown, unknown>) =>
      Effect.suspend(() => {
        call.waiters--
        if (call.waiters > 0 || call.done || call.overdue) return Effect.void
        if (!(Exit.isFailure(exit) && Cause.isInterruptedOnly(exit.cause))) return Effect.void
        // awaited: the last caller leaves once the call is cancelled
        return interruptOnAbandon
          ? Effect.suspend(() => {
            forget(key, call)
            return call.fiber === undefined ? Effect.void : Fiber.interrupt(call.fiber)
          })
          : bound(key, call)
      })

    // `waited`: whether this caller waited for the upstream before falling back
    const failover = (entry: CacheEntry.CacheEntry<A>, reason: Outcome.FailoverReason, waited = true) =>
      Effect.sync(() => {
        count("failover", reason)
        return internal.fromEntry(entry, now(), "failover", { reason, fetchedSynchronously: waited })
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

    const withCached = (
      key: string,
      call: InFlight<A, E>,
      cached: CacheEntry.CacheEntry<A>
    ): Effect.Effect<Outcome.Outcome<A>, E | FailoverError> => {
      if (call.overdue) return failover(cached, "timeout", false)
      const answered = (exit: Exit.Exit<A, E>): Effect.Effect<Outcome.Outcome<A>, E | FailoverError> =>
        Exit.isSuccess(exit)
          ? Effect.succeed(fresh(exit.value))
          : CacheEntry.isExpired(cached, now())
          ? awaited(key, call, exit)
          : call.overdue && Cause.isInterruptedOnly(exit.cause)
          ? failover(cached, "timeout") // interrupted by the call's deadline
          : falls(exit.cause)
          ? Effect.tap(failover(cached, "error"), () =>
            Effect.logDebug("stalewise: upstream failed, serving the cached value").pipe(
              Effect.annotateLogs({ strategy, key })
            ))
          : Effect.failCause(exit.cause)
      // the deadline: serve the cached value; the call goes on (or is interrupted: `giveUp`)
      const timedOut = (giveUpNow: boolean): Effect.Effect<Outcome.Outcome<A>, E | FailoverError> =>
        CacheEntry.isExpired(cached, now())
          ? withoutCached(key, call)
          : giveUpNow
          ? Effect.zipRight(giveUp(key, call), failover(cached, "timeout"))
          : failover(cached, "timeout")
      // the cached value is a fallback only until it expires: one that expires before the call's
      // deadline bounds this caller's wait on its own
      const expiresIn = cached.expiresAt - now()
      if (cached.expiresAt <= call.startedAt + timeoutMillis) {
        return Deferred.await(call.deferred).pipe(
          Effect.exit,
          Effect.timeout(Duration.millis(Math.max(0, expiresIn))),
          Effect.matchCauseEffect({
            onFailure: () =>
              timedOut(true),
            onSuccess: answered
          })
        )
      }
      return Effect.zipRight(
        armDeadline(key, call),
        // the deadline's timer has given up on the call already
        Effect.flatMap(Deferred.await(call.settled), () =>
          call.exit === undefined ? timedOut(false) : answered(call.exit))
      )
    }

    // A call cut by its background bound is, for a caller without a fallback, a request timeout.
    const awaited = (
      key: string,
      call: InFlight<A, E>,
      exit: Exit.Exit<A, E>
    ): Effect.Effect<Outcome.Outcome<A>, E | FailoverError> =>
      Exit.isSuccess(exit)
        ? Effect.succeed(fresh(exit.value))
        : call.cut && Cause.isInterruptedOnly(exit.cause)
        ? Effect.fail(new RequestTimeoutError({ key, timeout: Duration.format(backgroundTimeout) }))
        : Effect.failCause(exit.cause)

    const withoutCached = (
      key: string,
      call: InFlight<A, E>
    ): Effect.Effect<Outcome.Outcome<A>, E | FailoverError> => {
      const result = Effect.flatMap(Effect.exit(Deferred.await(call.deferred)), (exit) =>
        awaited(key, call, exit))
      if (requestTimeout === undefined) {
        return result
      }
      return result.pipe(
        Effect.timeoutFail({
          duration: requestTimeout,
          onTimeout: () =>
            new RequestTimeoutError({ key, timeout: Duration.format(requestTimeout) })
        }),
        Effect.tapErrorTag("RequestTimeoutError", () =>
          giveUp(key, call))
      )
    }

    const decide = (key: string, call: InFlight<A, E>, stored: Option.Option<CacheEntry.CacheEntry<A>>) => {
      // a read shared with earlier callers may have expired since
      const at = now()
      return Option.isSome(stored) && !CacheEntry.isExpired(stored.value, at)
        ? withCached(key, call, stored.value)
        : withoutCached(key, call)
    }

    const shared = (key: string, args: Args): Effect.Effect<Outcome.Outcome<A>, E | FailoverError> =>
      Effect.uninterruptibleMask((restore) =>
        Effect.flatMap(join(key, args), (call) =>
          Effect.onExit(
            restore(
              // in a stampede, one store read serves every caller of the shared call
              call.stored !== undefined ? decide(key, call, call.stored) : Effect.flatMap(
                getOrMiss(store, key, schema, annotations),
                (stored) => {
                  call.stored = stored
                  return decide(key, call, stored)
                }
              )
            ),
            (exit) => leave(key, call, exit)
          ))
      )

    // `forceRefresh`: a call of its own, waited for (at most `requestTimeout`), no fallback
    const forced = (key: string, args: Args): Effect.Effect<Outcome.Outcome<A>, E | FailoverError> => {
      const fetched = Effect.map(fetchAndStore(key, args), fresh)
      return requestTimeout === undefined ? fetched : Effect.timeoutFail(fetched, {
        duration: requestTimeout,
        onTimeout: () => new RequestTimeoutError({ key, timeout: Duration.format(requestTimeout) })
      })
    }

    const bypassed = (args: Args): Effect.Effect<Outcome.Outcome<A>, E> =>
      Effect.map(Effect.provide(CacheControl.upstream(options.lookup(...args)), context), (value) => {
        count("bypass")
        return Outcome.make({ value, status: "miss", fetchedSynchronously: true })
      })

    const getWithOutcome = (...args: Args): Effect.Effect<Outcome.Outcome<A>, E | FailoverError> =>
      Effect.flatMap(deriveKey(args), (key) =>
        CacheControl.withCurrentMode((mode) =>
          mode === "bypass"
            ? CacheMetrics.traceCall(annotations, key, bypassed(args), "bypass")
            : CacheMetrics.traceCall(annotations, key, mode === "forceRefresh" ? forced(key, args) : shared(key, args))
        ))

    const failoverFn: Failover<Args, A, E> = {
      [TypeId]: TypeId,
      getWithOutcome,
      get: (...args) => Effect.map(getWithOutcome(...args), (outcome) => outcome.value),
      peek: (...args) => Effect.flatMap(deriveKey(args), (key) => getOrMiss(store, key, schema, annotations)),
      invalidate: (...args) => Effect.flatMap(deriveKey(args), (key) => store.delete(key)),
      invalidateAll: Effect.asVoid(store.deletePrefix(CacheKey.prefix(namespace, options.name))),
      set: (args, value) =>
        Effect.flatMap(deriveKey(args), (key) =>
          Effect.flatMap(TimePolicy.entry(policy, value), (entry) =>
            store.set(key, entry, schema))),
      preload: (argsList, preloadOptions) =>
        preload(strategy, argsList, deriveKey, fetchAndStore, preloadOptions)
    }
    return yield* ScopeGuard.guard(scope, "Failover", options.name, failoverFn)
  })
