/**
 * The time policy shared by every strategy: `lifetime` (age until a value is stale) and
 * `timeToLive` (age until it is gone), both measured from the moment the value was fetched and
 * read from `Clock`, so `TestClock` drives every rule.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Predicate from "effect/Predicate"
import * as CacheEntry from "./CacheEntry.js"
import { PolicyError } from "./PolicyError.js"

/**
 * @since 0.1.0
 * @category type ids
 */
export const TypeId: TypeId = "~@stalewise/core/TimePolicy"

/**
 * @since 0.1.0
 * @category type ids
 */
export type TypeId = "~@stalewise/core/TimePolicy"

/**
 * A validated pair: `0 < lifetime ≤ timeToLive`. `timeToLive` may be infinite (never expires).
 *
 * @since 0.1.0
 * @category models
 */
export interface TimePolicy {
  readonly [TypeId]: TypeId
  readonly lifetime: Duration.Duration
  readonly timeToLive: Duration.Duration
}

/**
 * @since 0.1.0
 * @category guards
 */
export const isTimePolicy = (u: unknown): u is TimePolicy => Predicate.hasProperty(u, TypeId)

/**
 * Reads a strictly positive duration for the option named `option`, failing with a
 * `PolicyError` (reason `InvalidDuration`) for zero, negative, `NaN` or unparseable input.
 * `Duration.infinity` is accepted.
 *
 * @since 0.1.0
 * @category constructors
 */
export const positiveDuration = (
  option: string,
  input: Duration.DurationInput
): Either.Either<Duration.Duration, PolicyError> => {
  // Duration.decode silently turns negative and NaN numbers into zero, so check the input first.
  if (typeof input === "number" && !(input > 0)) {
    return Either.left(new PolicyError({ reason: "InvalidDuration", option, detail: `${input} is not positive` }))
  }
  let duration: Duration.Duration
  try {
    duration = Duration.decode(input)
  } catch {
    return Either.left(
      new PolicyError({
        reason: "InvalidDuration",
        option,
        detail: `${JSON.stringify(String(input))} is not a duration`
      })
    )
  }
  // Duration.decode reads "-5 seconds" as zero too: report what was written, not the zero.
  const written = typeof input === "string" ? JSON.stringify(input) : Duration.format(duration)
  return Duration.isZero(duration)
    ? Either.left(new PolicyError({ reason: "InvalidDuration", option, detail: `${written} is not positive` }))
    : Either.right(duration)
}

/**
 * Reads a strictly positive, finite duration (a lease, a timeout that must run out) for the
 * option named `option`; `PolicyError` (reason `InvalidDuration`) otherwise.
 *
 * @since 0.1.0
 * @category constructors
 */
export const finiteDuration = (
  option: string,
  input: Duration.DurationInput
): Either.Either<Duration.Duration, PolicyError> =>
  Either.flatMap(positiveDuration(option, input), (duration) =>
    Duration.isFinite(duration)
      ? Either.right(duration)
      : Either.left(
        new PolicyError({
          reason: "InvalidDuration",
          option,
          detail: `${String(input)} is not finite: it must run out`
        })
      ))

/**
 * Reads a fraction strictly between 0 and 1 (e.g. `refreshAhead`) for the option named `option`;
 * `PolicyError` (reason `InvalidValue`) otherwise.
 *
 * @since 0.1.0
 * @category constructors
 */
export const fraction = (option: string, input: number): Either.Either<number, PolicyError> =>
  typeof input === "number" && input > 0 && input < 1
    ? Either.right(input)
    : Either.left(new PolicyError({ reason: "InvalidValue", option, detail: `${String(input)} is not in (0, 1)` }))

/**
 * The moment a hit of `entry` requests a refresh ahead of time: `fraction` of its lifetime
 * (`staleAt - createdAt`) after it was fetched.
 *
 * @since 0.1.0
 * @category combinators
 */
export const refreshAheadAt = (entry: CacheEntry.CacheEntry<unknown>, fraction: number): number =>
  entry.createdAt + (entry.staleAt - entry.createdAt) * fraction

/**
 * Validates and builds a policy. `timeToLive` defaults to `lifetime` (no stale window). Fails
 * with `PolicyError` when a duration is not positive or when `lifetime > timeToLive`.
 *
 * @example
 * ```ts
 * import { TimePolicy } from "@stalewise/core"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const policy = yield* TimePolicy.make({ lifetime: "10 minutes", timeToLive: "30 days" })
 *   const entry = yield* TimePolicy.entry(policy, { name: "Ada" })
 *   return entry.staleAt - entry.createdAt // 600_000
 * })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: {
  readonly lifetime: Duration.DurationInput
  readonly timeToLive?: Duration.DurationInput | undefined
}): Either.Either<TimePolicy, PolicyError> =>
  Either.gen(function*() {
    const lifetime = yield* positiveDuration("lifetime", options.lifetime)
    const timeToLive = options.timeToLive === undefined
      ? lifetime
      : yield* positiveDuration("timeToLive", options.timeToLive)
    if (Duration.greaterThan(lifetime, timeToLive)) {
      return yield* Either.left(
        new PolicyError({
          reason: "InvalidCombination",
          option: "timeToLive",
          detail: `timeToLive (${Duration.format(timeToLive)}) must be at least lifetime (${Duration.format(lifetime)})`
        })
      )
    }
    return { [TypeId]: TypeId, lifetime, timeToLive } as const
  })

/**
 * The entry a value fetched at `now` gets under `policy`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const entryAt = <A>(policy: TimePolicy, value: A, now: number): CacheEntry.CacheEntry<A> =>
  CacheEntry.make({
    value,
    createdAt: now,
    staleAt: now + Duration.toMillis(policy.lifetime),
    expiresAt: now + Duration.toMillis(policy.timeToLive)
  })

/**
 * The entry a value fetched now (per `Clock`) gets under `policy`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const entry = <A>(policy: TimePolicy, value: A): Effect.Effect<CacheEntry.CacheEntry<A>> =>
  Effect.map(Clock.currentTimeMillis, (now) => entryAt(policy, value, now))

/**
 * Classifies an entry against the current time from `Clock`.
 *
 * @since 0.1.0
 * @category combinators
 */
export const classify = <A>(entry: CacheEntry.CacheEntry<A>): Effect.Effect<CacheEntry.Freshness> =>
  Effect.map(Clock.currentTimeMillis, (now) => CacheEntry.freshness(entry, now))
