/** @internal */
import {
  CacheFirst,
  CacheKey,
  type CacheStore,
  Diagnostics,
  Failover,
  type Outcome,
  type PolicyError
} from "@stalewise/core"
import * as Effect from "effect/Effect"
import type * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import type { MethodHandle } from "../CachedService.js"
import type * as Strategy from "../Strategy.js"

/**
 * The core strategy a descriptor names, over `common` (name, namespace, lookup, schema, key).
 *
 * @internal
 */
export const build = <Args extends ReadonlyArray<any>, A, E>(
  common: {
    readonly name: string
    readonly namespace: string
    readonly lookup: (...args: Args) => Effect.Effect<A, E>
    readonly schema?: Schema.Schema<A, any> | undefined
    readonly key?: ((...args: Args) => string) | undefined
  },
  strategy: Strategy.Strategy<Args, A, E>
): Effect.Effect<
  Failover.Failover<Args, A, E> | CacheFirst.CacheFirst<Args, A, E>,
  PolicyError.PolicyError,
  CacheStore.CacheStore | Scope.Scope
> =>
  strategy._tag === "Failover"
    ? Failover.make({
      ...common,
      timeout: strategy.timeout,
      timeToLive: strategy.timeToLive,
      onTimeout: strategy.onTimeout,
      backgroundTimeout: strategy.backgroundTimeout,
      onAbandon: strategy.onAbandon,
      fallbackOn: strategy.fallbackOn,
      fallbackOnDefect: strategy.fallbackOnDefect,
      singleFlight: strategy.singleFlight
    })
    : (strategy.persisted === true ? CacheFirst.makePersisted : CacheFirst.make)({
      ...common,
      timeToLive: strategy.timeToLive,
      capacity: strategy.capacity,
      onAbandon: strategy.onAbandon,
      backgroundTimeout: strategy.backgroundTimeout,
      negative: strategy.negative,
      traceHits: strategy.traceHits
    })

/**
 * @internal
 * Wraps one method in its strategy. The strategy's own errors cannot appear in the method's
 * type, so an argument that cannot be keyed bypasses the cache (the method is called directly
 * and a warning is logged) instead of failing.
 */
export const wrap = (
  namespace: string,
  name: string,
  method: (...args: ReadonlyArray<unknown>) => Effect.Effect<unknown, unknown>,
  strategy: Strategy.Strategy<ReadonlyArray<unknown>, unknown, unknown>,
  onOutcome?: ((name: string, outcome: Outcome.Outcome<unknown>) => Effect.Effect<void>) | undefined
): Effect.Effect<
  {
    readonly call: (...args: ReadonlyArray<unknown>) => Effect.Effect<unknown, unknown>
    readonly cache:
      | Failover.Failover<ReadonlyArray<unknown>, unknown, unknown>
      | CacheFirst.CacheFirst<
        ReadonlyArray<unknown>,
        unknown,
        unknown
      >
  },
  PolicyError.PolicyError,
  CacheStore.CacheStore | Scope.Scope
> =>
  Effect.gen(function*() {
    const cached = yield* build(
      { name, namespace, lookup: method, schema: strategy.schema, key: strategy.key },
      strategy
    )
    const warnings = Diagnostics.makeWarnings()
    const call = (...args: ReadonlyArray<unknown>) =>
      cached.getWithOutcome(...args).pipe(
        Effect.flatMap((outcome) =>
          onOutcome === undefined ? Effect.succeed(outcome.value) : Effect.as(onOutcome(name, outcome), outcome.value)
        ),
        Effect.catchIf(
          (error): error is CacheKey.CacheKeyError => error instanceof CacheKey.CacheKeyError,
          (error) =>
            Effect.zipRight(
              warnings.warn(
                `unkeyable/${error.reason}`,
                "stalewise: arguments cannot be keyed, calling the method uncached",
                { namespace, name, error: error.message }
              ),
              method(...args)
            )
        )
      )
    return { call, cache: cached }
  })

/**
 * The handle of a method that is not cached: nothing to peek, drop or set.
 *
 * @internal
 */
export const uncachedHandle: MethodHandle<ReadonlyArray<unknown>, unknown> = {
  cached: false,
  peek: () => Effect.succeedNone,
  set: () => Effect.void,
  invalidate: () => Effect.void,
  invalidateAll: Effect.void
}

/**
 * The handle on a cached method's strategy; `toArgs` maps the handle's arguments to the
 * strategy's (an RPC's strategy also takes the key id computed from the payload).
 *
 * @internal
 */
export const handleOf = (
  cache:
    | Failover.Failover<ReadonlyArray<unknown>, unknown, unknown>
    | CacheFirst.CacheFirst<
      ReadonlyArray<unknown>,
      unknown,
      unknown
    >,
  toArgs: (args: ReadonlyArray<unknown>) => Effect.Effect<ReadonlyArray<unknown>, CacheKey.CacheKeyError> = Effect
    .succeed
): MethodHandle<ReadonlyArray<unknown>, unknown> => ({
  cached: true,
  peek: (...args) => Effect.flatMap(toArgs(args), (strategyArgs) => cache.peek(...strategyArgs)),
  set: (args, value) => Effect.flatMap(toArgs(args), (strategyArgs) => cache.set(strategyArgs, value)),
  invalidate: (...args) => Effect.flatMap(toArgs(args), (strategyArgs) => cache.invalidate(...strategyArgs)),
  invalidateAll: cache.invalidateAll
})
