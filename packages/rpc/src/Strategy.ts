/**
 * How one cached method, RPC or request is cached: `Strategy.failover` (always ask, serve the
 * last good value on failure or after a timeout) or `Strategy.cacheFirst` (serve the cached value
 * without asking). Used by `CachedService`, `CachedRpcClient` and `CachedHttpClient`.
 *
 * @since 0.1.0
 */
import type * as CacheFirst from "@stalewise/core/CacheFirst"
import type * as Duration from "effect/Duration"
import type * as Schema from "effect/Schema"

/**
 * Options shared by both strategies.
 *
 * @since 0.1.0
 * @category models
 */
export interface CommonOptions<Args extends ReadonlyArray<any>, A> {
  /** The value's schema, for stores that serialise (KeyValueStore, Redis). */
  readonly schema?: Schema.Schema<A, any> | undefined
  /** Computes the key's id from the arguments, instead of digesting all of them. */
  readonly key?: ((...args: Args) => string) | undefined
}

/**
 * Failover for one method: see `Failover.make` in `@stalewise/core`. `requestTimeout` is not
 * offered here: its error would change the method's type.
 *
 * @since 0.1.0
 * @category models
 */
export interface FailoverStrategy<Args extends ReadonlyArray<any>, A, E> extends CommonOptions<Args, A> {
  readonly _tag: "Failover"
  readonly timeout: Duration.DurationInput
  readonly timeToLive?: Duration.DurationInput | undefined
  readonly onTimeout?: "continue" | "interrupt" | undefined
  /** How long a late call may run once nobody waits for it. Default 30 seconds. */
  readonly backgroundTimeout?: Duration.DurationInput | undefined
  /** A call whose every waiter was interrupted: finish and store it (default), or interrupt it. */
  readonly onAbandon?: "complete" | "interrupt" | undefined
  readonly fallbackOn?: ((error: E) => boolean) | undefined
  readonly fallbackOnDefect?: boolean | undefined
  readonly singleFlight?: boolean | undefined
}

/**
 * Cache-first for one method: see `CacheFirst.make` in `@stalewise/core`. With `persisted`,
 * values also live in the `CacheStore`, so processes sharing it (Redis) serve each other.
 *
 * @since 0.1.0
 * @category models
 */
export interface CacheFirstStrategy<Args extends ReadonlyArray<any>, A, E = any>
  extends
    CommonOptions<Args, A>,
    Pick<CacheFirst.Options<Args, A, E, never>, "onAbandon" | "backgroundTimeout" | "negative" | "traceHits">
{
  readonly _tag: "CacheFirst"
  readonly timeToLive: Duration.DurationInput
  readonly capacity?: number | undefined
  readonly persisted?: boolean | undefined
}

/**
 * A strategy for one method.
 *
 * @since 0.1.0
 * @category models
 */
export type Strategy<Args extends ReadonlyArray<any>, A, E> =
  | FailoverStrategy<Args, A, E>
  | CacheFirstStrategy<Args, A, E>

/**
 * Failover:  always ask, serve the last good value on failure or after `timeout`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const failover = <Args extends ReadonlyArray<any> = any, A = any, E = any>(
  options: Omit<FailoverStrategy<Args, A, E>, "_tag">
): FailoverStrategy<Args, A, E> => ({ ...options, _tag: "Failover" })

/**
 * Cache-first:  serve the cached value without asking, for `timeToLive`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const cacheFirst = <Args extends ReadonlyArray<any> = any, A = any, E = any>(
  options: Omit<CacheFirstStrategy<Args, A, E>, "_tag">
): CacheFirstStrategy<Args, A, E> => ({ ...options, _tag: "CacheFirst" })
