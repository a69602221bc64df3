/** @internal */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import type * as Fiber from "effect/Fiber"
import * as Runtime from "effect/Runtime"
import type * as Scope from "effect/Scope"
import type { CacheEntry } from "../CacheEntry.js"
import * as CacheKey from "../CacheKey.js"
import * as Outcome from "../Outcome.js"
import { PolicyError } from "../PolicyError.js"

/**
 * How a strategy derives the key of a call: a user `key` function (its result is the id), or
 * the canonical encoding of the arguments. The namespace and name are checked once, here: an
 * invalid one is a `PolicyError` when the strategy is built. The key of a call is derived when
 * its Effect runs, never when it is created, and derivation is total: an argument that cannot
 * be keyed, or a `key` function that throws, is a `CacheKeyError`.
 *
 * @internal
 */
export const keyDeriver = <Args extends ReadonlyArray<unknown>>(
  namespace: string,
  name: string,
  key: ((...args: Args) => string) | undefined
): Either.Either<(args: Args) => Effect.Effect<string, CacheKey.CacheKeyError>, PolicyError> =>
  Either.map(syncKeyDeriver(namespace, name, key), deferred)

/**
 * A synchronous key derivation as an Effect: the key is derived when the Effect runs.
 *
 * @internal
 */
export const deferred = <Args extends ReadonlyArray<unknown>>(
  derive: (args: Args) => Either.Either<string, CacheKey.CacheKeyError>
) =>
(args: Args): Effect.Effect<string, CacheKey.CacheKeyError> => Effect.suspend(() => derive(args))

/**
 * {@link keyDeriver} without the Effect: the same keys, derived at once (the Promise facade's
 * synchronous hit path).
 *
 * @internal
 */
export const syncKeyDeriver = <Args extends ReadonlyArray<unknown>>(
  namespace: string,
  name: string,
  key: ((...args: Args) => string) | undefined
): Either.Either<SyncKeyDeriver<Args>, PolicyError> => {
  const invalid = (error: CacheKey.CacheKeyError) =>
    new PolicyError({ reason: "InvalidValue", option: error.path, detail: error.message })
  if (key === undefined) {
    return Either.map(
      Either.mapLeft(CacheKey.deriver(namespace, name), invalid),
      (fromArgs) =>
        Object.assign((args: Args) => fromArgs(args), {
          remember: fromArgs.remember,
          remembered: fromArgs.remembered
        })
    )
  }
  // as `CacheKey.attempt(() => key(...args))`, without a closure per call (the hit path's)
  return Either.map(
    Either.mapLeft(CacheKey.idDeriver(namespace, name), invalid),
    (fromId) =>
      Object.assign((args: Args) => {
        let id: string
        try {
          id = key(...args)
        } catch {
          return CacheKey.attempt(throws)
        }
        return fromId(id)
      }, { remember: rememberNothing, remembered: rememberNothing })
  )
}

/**
 * A strategy's synchronous key derivation; `remember` offers the key of a call read as cached to
 * the memo of hot arguments (`CacheKey.Deriver`; nothing with a user `key` function).
 *
 * @internal
 */
export interface SyncKeyDeriver<Args extends ReadonlyArray<unknown>> {
  (args: Args): Either.Either<string, CacheKey.CacheKeyError>
  readonly remember: (args: Args, key: string) => void
  /** The key remembered for `args`, or `undefined` (always, with a user `key` function). */
  readonly remembered: (args: Args) => string | undefined
}

const rememberNothing = (): undefined => undefined

// what `CacheKey.attempt` answers for a key function that threw, without calling it again
const throws = (): never => {
  throw new Error("the key function threw")
}

/**
 * The outcome of serving a cached entry at `now`.
 *
 * @internal
 */
export const fromEntry = <A>(
  entry: CacheEntry<A>,
  now: number,
  status: Outcome.Status,
  options?: { readonly reason?: Outcome.FailoverReason | undefined; readonly fetchedSynchronously?: boolean }
): Outcome.Outcome<A> =>
  Outcome.make({
    value: entry.value,
    status,
    reason: options?.reason,
    age: Duration.millis(Math.max(0, now - entry.createdAt)),
    fetchedSynchronously: options?.fetchedSynchronously ?? false
  })

/**
 * Forks `effect` into `scope` and starts it at once, on the current fiber's runtime (so it keeps
 * the caller's services, clock and span), instead of queueing it behind the fibers already
 * scheduled: in a stampede of N callers the upstream call starts before the other N - 1 run.
 *
 * @internal
 */
export const forkNow = <A, E, R>(
  effect: Effect.Effect<A, E, R>,
  scope: Scope.Scope
): Effect.Effect<Fiber.RuntimeFiber<A, E>, never, R> =>
  Effect.flatMap(Effect.runtime<R>(), (runtime) => Effect.sync(() => Runtime.runFork(runtime, effect, { scope })))
