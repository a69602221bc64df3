/**
 * The story of a cached call: what came back and why. Every strategy can return a value alone or
 * a value with its outcome, so callers can tell a fresh value from a stale one or a fallback.
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"

/**
 * Where the value came from:
 * - `hit`: the cache, fresh (no upstream call);
 * - `miss`: the upstream, in this call (nothing usable was cached, or the strategy always asks);
 * - `stale`: the cache, past its `lifetime` (a refresh may have been requested);
 * - `failover`: the cache, because the upstream failed or was too slow (see `reason`);
 * - `empty`: nothing cached and nothing fetched: the strategy's `empty` value.
 *
 * @since 0.1.0
 * @category models
 */
export type Status = "hit" | "miss" | "stale" | "failover" | "empty"

/**
 * Why a fallback value was served: the upstream failed (`error`) or did not answer within the
 * timeout (`timeout`).
 *
 * @since 0.1.0
 * @category models
 */
export type FailoverReason = "error" | "timeout"

/**
 * A value with its story.
 *
 * @since 0.1.0
 * @category models
 */
export interface Outcome<out A> {
  readonly value: A
  readonly status: Status
  /** Set when `status` is `failover`. */
  readonly reason?: FailoverReason | undefined
  /** The age of the value served: zero for a value fetched in this call. */
  readonly age: Duration.Duration
  /** Whether this call waited for the upstream. */
  readonly fetchedSynchronously: boolean
}

/**
 * Builds an outcome.
 *
 * @example
 * ```ts
 * import { Outcome } from "@stalewise/core"
 * import { Duration } from "effect"
 *
 * const served = Outcome.make({ value: 42, status: "failover", reason: "timeout", age: Duration.seconds(30) })
 * Outcome.isFromCache(served) // true
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = <A>(options: {
  readonly value: A
  readonly status: Status
  readonly reason?: FailoverReason | undefined
  readonly age?: Duration.Duration | undefined
  readonly fetchedSynchronously?: boolean | undefined
}): Outcome<A> => ({
  value: options.value,
  status: options.status,
  reason: options.reason,
  age: options.age ?? Duration.zero,
  fetchedSynchronously: options.fetchedSynchronously ?? options.status === "miss"
})

/**
 * Whether the value came from the cache (`hit`, `stale` or `failover`).
 *
 * @since 0.1.0
 * @category guards
 */
export const isFromCache = <A>(self: Outcome<A>): boolean =>
  self.status === "hit" || self.status === "stale" || self.status === "failover"

/**
 * What a `preload` did: how many keys were fetched and stored, and how many failed (their
 * failures are logged with the key's digest, never its arguments).
 *
 * @since 0.1.0
 * @category models
 */
export interface Preloaded {
  readonly loaded: number
  readonly failed: number
}
