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
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as ManagedRuntime from "effect/ManagedRuntime"
import * as Runtime from "effect/Runtime"
import * as CacheControl from "./CacheControl.js"
import type { CacheEntry } from "./CacheEntry.js"
import type * as CacheStore from "./CacheStore.js"
import type * as Outcome from "./Outcome.js"

/**
 * The symbol under which a strategy keeps its {@link FastPath}.
 *
 * @since 0.1.0
 * @category symbols
 */
export const FastPathId: unique symbol = Symbol.for("@stalewise/core/Facade/FastPath")

/**
 * Where a {@link FastPath} puts its answer: it sets `value` and returns `true`. The caller owns
 * the object, reads `value` at once and clears it.
 *
 * An answer comes apart from the call's result so that a caller tells an answer from a pass by a
 * boolean: telling a value from a marker would read the value's memory, a cache miss in a large
 * working set, which the caller does not otherwise pay.
 *
 * @since 0.1.0
 * @category models
 */
export interface Answer<A = unknown> {
  value: A | Outcome.Outcome<A> | undefined
}

/**
 * A strategy's synchronous read, for strategy authors: derives the key of `args` exactly as the
 * strategy's Effect methods do, and answers when the value is held in process and may be served
 * at once — it puts the value (its `Outcome` when `outcome` is true) in `answer.value` and
 * returns `true` — doing the accounting the Effect path does (metrics, recency). Any other case (a
 * miss, an expired value, an invalid argument, a closed scope, a read that must wait) returns
 * `false`, having changed nothing: the call runs through the runtime instead. `fork` runs an
 * Effect on the caller's runtime without waiting for it (a refresh request), a macrotask after
 * the call, once the callers of that moment have their answers: whatever must be claimed at once
 * (so that concurrent callers do not fork the same work) the fast path claims before it forks.
 *
 * @since 0.1.0
 * @category models
 */
export type FastPath<in Args extends ReadonlyArray<any>, A> = (
  args: Args,
  outcome: boolean,
  fork: ((effect: Effect.Effect<unknown>) => void) | undefined,
  answer: Answer<A>
) => boolean

/**
 * The answer a {@link FastPath} put in `answer`, taken out of it (so that it holds no value after).
 *
 * @since 0.1.0
 * @category utils
 */
export const take = <A>(answer: Answer<A>): A | Outcome.Outcome<A> | undefined => {
  const value = answer.value
  answer.value = undefined
  return value
}

/**
 * A strategy's `get` that answers from its {@link FastPath} inside the caller's fiber when it can
 * — a hit held in process costs one step of the fiber instead of the Effect path's chain — and
 * runs `get` otherwise: under a `CacheControl` mode other than the default, or whenever the fast
 * path passes (it is given no `fork`, so a read that would start work, a stale one whose refresh
 * is not yet on its way, passes too). For strategy authors.
 *
 * @since 0.1.0
 * @category constructors
 */
export const fiberGet = <Args extends ReadonlyArray<any>, A, E>(
  fastPath: FastPath<Args, A>,
  get: (...args: Args) => Effect.Effect<A, E>
): (...args: Args) => Effect.Effect<A, E> => {
  // one per strategy: filled and emptied within one synchronous step
  const answer: Answer<A> = { value: undefined }
  return (...args) =>
    Effect.withFiberRuntime((fiber) =>
      fiber.getFiberRef(CacheControl.currentMode) === "default" && fastPath(args, false, undefined, answer)
        ? Exit.succeed(take(answer) as A)
        : get(...args)
    )
}

/**
 * What a facade can read: any strategy with `get` and `getWithOutcome` (a Job, a CacheFirst, a
 * Failover, or your own), and its {@link FastPath} when it has one.
 *
 * @since 0.1.0
 * @category models
 */
export interface Readable<in out Args extends ReadonlyArray<any>, in out A, out E> {
  readonly get: (...args: Args) => Effect.Effect<A, E>
  readonly getWithOutcome: (...args: Args) => Effect.Effect<Outcome.Outcome<A>, E>
  readonly [FastPathId]?: FastPath<Args, A> | undefined
}

/**
 * A strategy's reads as promises. Call it as the strategy's `get`; `withOutcome` is its
 * `getWithOutcome`. Promises reject with the strategy's typed errors themselves (or the
 * runtime's, when its layer failed to build); defects reject with the defect.
 *
 * @since 0.1.0
 * @category models
 */
export interface Facade<in out Args extends ReadonlyArray<any>, in out A> {
  (...args: Args): Promise<A>
  /** The value with its outcome (`hit`, `stale`, `miss`, …), as `getWithOutcome`. */
  readonly withOutcome: (...args: Args) => Promise<Outcome.Outcome<A>>
}

// the next macrotask: `setImmediate` where there is one (Node, Bun), a zero timeout elsewhere
const timers = globalThis as unknown as {
  readonly setImmediate?: (f: () => void) => unknown
  readonly setTimeout: (f: () => void, millis: number) => unknown
}
const later: (f: () => void) => void = timers.setImmediate !== undefined
  ? (f) => {
    timers.setImmediate!(f)
  }
  : (f) => {
    timers.setTimeout(f, 0)
  }

const settle = <A>(exit: Exit.Exit<A, unknown>): A => {
  if (Exit.isSuccess(exit)) return exit.value
  const failure = Cause.failureOption(exit.cause)
  // the typed error itself, as callers catch it
  if (failure._tag === "Some") throw failure.value
  // a defect that is an Error (ScopeClosedError, say) as it is; anything else as runPromise
  // would reject (a FiberFailure, an Error with the cause in its message)
  const defect = Cause.squash(exit.cause)
  throw defect instanceof Error ? defect : Runtime.makeFiberFailure(exit.cause)
}

/**
 * Wraps a strategy in promises over `runtime`. The strategy is given as it is, or as an Effect
 * that yields it on the runtime — typically the `Context.Tag` of a service whose layer builds it:
 * the runtime then builds the layer on the first call, and the strategy lives as long as the
 * runtime (its scope closes on `runtime.dispose()`, after which calls reject).
 *
 * @example
 * ```ts
 * import { CacheFirst, Facade } from "@stalewise/core"
 * import { Context, Effect, Layer, ManagedRuntime } from "effect"
 *
 * class Users extends Context.Tag("Users")<Users, CacheFirst.CacheFirst<[id: number], string, never>>() {}
 *
 * const UsersLive = Layer.scoped(
 *   Users,
 *   CacheFirst.make({ name: "users", timeToLive: "5 minutes", lookup: (id: number) => Effect.succeed(`user ${id}`) })
 * )
 *
 * const runtime = ManagedRuntime.make(UsersLive)
 * const getUser = Facade.make(runtime, Users)
 *
 * export const handler = async (id: number) => {
 *   const name = await getUser(id) // a miss: through the runtime, one lookup for concurrent callers
 *   const { status } = await getUser.withOutcome(id) // "hit", answered without starting a fiber
 *   return { name, status }
 * }
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = <Args extends ReadonlyArray<any>, A, E, R, ER, E2 = never>(
  runtime: ManagedRuntime.ManagedRuntime<R, ER>,
  strategy: Readable<Args, A, E> | Effect.Effect<Readable<Args, A, E>, E2, R>
): Facade<Args, A> => {
  let resolved: Readable<Args, A, E> | undefined
  let resolving: Promise<Readable<Args, A, E>> | undefined
  let fast: FastPath<Args, A> | undefined
  const use = (readable: Readable<Args, A, E>) => {
    resolved = readable
    fast = readable[FastPathId]
    return readable
  }
  if (!Effect.isEffect(strategy)) use(strategy)
  const resolve = (): Promise<Readable<Args, A, E>> =>
    resolving ??= runtime.runPromiseExit(strategy as Effect.Effect<Readable<Args, A, E>, E2, R>).then((exit) => {
      if (Exit.isFailure(exit)) resolving = undefined // a failed build may be retried
      return use(settle(exit))
    })
  // Started once the callers of this moment have their answers (a macrotask later), not in the
  // call and not in the microtasks their promises resolve in: the strategy has claimed the work
  // synchronously (concurrent callers see the claim), so none of them pays for starting it.
  const fork = (effect: Effect.Effect<unknown>): void => {
    later(() => runtime.runFork(effect))
  }

  const slow = <X>(read: (readable: Readable<Args, A, E>) => Effect.Effect<X, E>): Promise<X> =>
    resolved === undefined
      ? resolve().then((readable) => runtime.runPromiseExit(read(readable))).then(settle)
      : runtime.runPromiseExit(read(resolved)).then(settle)

  // filled and emptied within one synchronous call
  const answer: Answer<A> = { value: undefined }
  const get = (...args: Args): Promise<A> =>
    fast !== undefined && fast(args, false, fork, answer)
      ? Promise.resolve(take(answer) as A)
      : slow((readable) => readable.get(...args))
  const withOutcome = (...args: Args): Promise<Outcome.Outcome<A>> =>
    fast !== undefined && fast(args, true, fork, answer)
      ? Promise.resolve(take(answer) as Outcome.Outcome<A>)
      : slow((readable) => readable.getWithOutcome(...args))
  return Object.assign(get, { withOutcome })
}

/**
 * The synchronous view of a store's in-process tier, for strategy and store authors: a store that
 * holds live entries in process (the memory store) registers one with {@link registerInProcess},
 * and a strategy's {@link FastPath} reads through it.
 *
 * @since 0.1.0
 * @category models
 */
export interface InProcess {
  /**
   * The entry held at `key`, or `undefined`. It may have expired: the caller checks `expiresAt`
   * against its clock and serves nothing past it (the store's `get` drops it). Counts nothing:
   * call `hit` when the entry is served.
   */
  readonly peek: (key: string) => CacheEntry<unknown> | undefined
  /** Counts a hit in the store's metrics, as its `get` does. */
  readonly hit: () => void
}

// Kept apart from the store object: a wrapper that copies a store's members (`{ ...store, get }`)
// must not inherit a view that reads around its own `get`.
const inProcessViews = new WeakMap<CacheStore.CacheStore.Service, InProcess>()

/**
 * Registers the in-process view of `store`: from then on {@link inProcess} returns it for this
 * very object (not for copies or wrappers of it).
 *
 * @since 0.1.0
 * @category utils
 */
export const registerInProcess = <S extends CacheStore.CacheStore.Service>(store: S, view: InProcess): S => {
  inProcessViews.set(store, view)
  return store
}

/**
 * The synchronous in-process view of `store`, when it registered one (the memory store does;
 * stores that read over a network, and wrappers of other stores, do not).
 *
 * @since 0.1.0
 * @category utils
 */
export const inProcess = (store: CacheStore.CacheStore.Service): InProcess | undefined => inProcessViews.get(store)
