/**
 * A cached value with the timestamps that decide its freshness. Every timestamp is absolute
 * (epoch milliseconds from `Clock`) and measured from one origin, the moment the value was
 * fetched, so a refresh attempt never resets a value's age.
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import { dual } from "effect/Function"

/**
 * A stored value and its time stamps: `createdAt` (fetched), `staleAt` (`createdAt + lifetime`)
 * and `expiresAt` (`createdAt + timeToLive`, `Infinity` for never).
 *
 * @since 0.1.0
 * @category models
 */
export interface CacheEntry<out A> {
  readonly value: A
  readonly createdAt: number
  readonly staleAt: number
  readonly expiresAt: number
  /**
   * The entry's tags (`CacheTags`): invalidating one of them invalidates the entry. Absent on
   * untagged entries.
   */
  readonly tags?: ReadonlyArray<string> | undefined
}

/**
 * How usable an entry is at a given time:
 * - `Fresh`: `now < staleAt` (age below `lifetime`);
 * - `Stale`: `staleAt ≤ now < expiresAt`;
 * - `Expired`: `now ≥ expiresAt` (age at or past `timeToLive`), a miss.
 *
 * @since 0.1.0
 * @category models
 */
export type Freshness = "Fresh" | "Stale" | "Expired"

/**
 * Builds an entry. Prefer `TimePolicy.entry`, which reads the clock and applies a policy.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = <A>(options: {
  readonly value: A
  readonly createdAt: number
  readonly staleAt: number
  readonly expiresAt: number
  readonly tags?: ReadonlyArray<string> | undefined
}): CacheEntry<A> =>
  // untagged entries carry no `tags` property at all
  options.tags === undefined ?
    {
      value: options.value,
      createdAt: options.createdAt,
      staleAt: options.staleAt,
      expiresAt: options.expiresAt
    } :
    {
      value: options.value,
      createdAt: options.createdAt,
      staleAt: options.staleAt,
      expiresAt: options.expiresAt,
      tags: options.tags
    }

/**
 * Classifies an entry at `now` (epoch milliseconds). This is the one place freshness is decided.
 *
 * @example
 * ```ts
 * import { CacheEntry } from "@stalewise/core"
 *
 * const entry = CacheEntry.make({ value: 1, createdAt: 0, staleAt: 10_000, expiresAt: 60_000 })
 * CacheEntry.freshness(entry, 9_999) // "Fresh"
 * CacheEntry.freshness(entry, 10_000) // "Stale"
 * CacheEntry.freshness(entry, 60_000) // "Expired"
 * ```
 *
 * @since 0.1.0
 * @category combinators
 */
export const freshness: {
  /**
   * Classifies an entry at `now` (epoch milliseconds), data-last.
   *
   * @since 0.1.0
   * @category combinators
   */
  (now: number): <A>(self: CacheEntry<A>) => Freshness
  /**
   * Classifies an entry at `now` (epoch milliseconds), data-first.
   *
   * @since 0.1.0
   * @category combinators
   */
  <A>(self: CacheEntry<A>, now: number): Freshness
} = dual(
  2,
  <A>(self: CacheEntry<A>, now: number): Freshness =>
    now >= self.expiresAt ? "Expired" : now >= self.staleAt ? "Stale" : "Fresh"
)

/**
 * Whether the entry is past its `timeToLive` at `now`.
 *
 * @since 0.1.0
 * @category combinators
 */
export const isExpired: {
  /**
   * Whether the entry is past its `timeToLive` at `now`, data-last.
   *
   * @since 0.1.0
   * @category combinators
   */
  (now: number): <A>(self: CacheEntry<A>) => boolean
  /**
   * Whether the entry is past its `timeToLive` at `now`, data-first.
   *
   * @since 0.1.0
   * @category combinators
   */
  <A>(self: CacheEntry<A>, now: number): boolean
} = dual(2, <A>(self: CacheEntry<A>, now: number): boolean => now >= self.expiresAt)

/**
 * The age of the entry at `now`: the time since its value was fetched (never negative).
 *
 * @since 0.1.0
 * @category combinators
 */
export const age: {
  /**
   * The age of the entry at `now`, data-last.
   *
   * @since 0.1.0
   * @category combinators
   */
  (now: number): <A>(self: CacheEntry<A>) => Duration.Duration
  /**
   * The age of the entry at `now`, data-first.
   *
   * @since 0.1.0
   * @category combinators
   */
  <A>(self: CacheEntry<A>, now: number): Duration.Duration
} = dual(
  2,
  <A>(self: CacheEntry<A>, now: number): Duration.Duration => Duration.millis(Math.max(0, now - self.createdAt))
)

/**
 * The time left before the entry expires at `now`, or `undefined` when it never expires. Stores
 * use it as the native time-to-live.
 *
 * @since 0.1.0
 * @category combinators
 */
export const remainingMillis = <A>(self: CacheEntry<A>, now: number): number | undefined =>
  self.expiresAt === Infinity ? undefined : self.expiresAt - now

/**
 * Returns the same timestamps around another value (e.g. after decoding).
 *
 * @since 0.1.0
 * @category combinators
 */
export const withValue = <A, B>(self: CacheEntry<A>, value: B): CacheEntry<B> =>
  make({ value, createdAt: self.createdAt, staleAt: self.staleAt, expiresAt: self.expiresAt, tags: self.tags })

/**
 * The same entry carrying `tags` (none when `tags` is empty).
 *
 * @since 0.1.0
 * @category combinators
 */
export const withTags = <A>(self: CacheEntry<A>, tags: ReadonlyArray<string> | undefined): CacheEntry<A> =>
  make({
    value: self.value,
    createdAt: self.createdAt,
    staleAt: self.staleAt,
    expiresAt: self.expiresAt,
    tags: tags === undefined || tags.length === 0 ? undefined : tags
  })
