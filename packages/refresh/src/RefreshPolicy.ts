/**
 * The policy of a stale-while-revalidate job, with django-cacheback's defaults: `lifetime`
 * 10 minutes, `timeToLive` 30 days, `refreshLease` 60 seconds, fetch on miss. Validated once,
 * when the job is defined.
 *
 * @since 0.1.0
 */
import { PolicyError, TimePolicy } from "@stalewise/core"
import * as Duration from "effect/Duration"
import * as Either from "effect/Either"

/**
 * The options of a policy; every duration is optional and defaults as cacheback does.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Age until a value is stale (cacheback `lifetime`). Default 10 minutes. */
  readonly lifetime?: Duration.DurationInput | undefined
  /** Age until a value is gone, at least `lifetime` (cacheback `cache_ttl`). Default 30 days. */
  readonly timeToLive?: Duration.DurationInput | undefined
  /** How long one refresh owns a key before another may start (cacheback `refresh_timeout`). Default 60 s. */
  readonly refreshLease?: Duration.DurationInput | undefined
  /**
   * Age past which a stale read refreshes synchronously (cacheback `fetch_on_stale_threshold`);
   * between `lifetime` and `timeToLive`. Default: never.
   */
  readonly syncRefreshAfter?: Duration.DurationInput | undefined
  /** Fetch synchronously on a miss (cacheback `fetch_on_miss`). Default true. */
  readonly fetchOnMiss?: boolean | undefined
}

/**
 * A validated policy.
 *
 * @since 0.1.0
 * @category models
 */
export interface RefreshPolicy {
  readonly time: TimePolicy.TimePolicy
  readonly refreshLease: Duration.Duration
  readonly syncRefreshAfter: Duration.Duration | undefined
  readonly fetchOnMiss: boolean
}

/**
 * Validates options into a policy. Fails with `PolicyError` when a duration is not positive,
 * when `lifetime > timeToLive`, when `syncRefreshAfter` falls outside `[lifetime, timeToLive)`,
 * or when `refreshLease` is infinite.
 *
 * @example
 * ```ts
 * import { RefreshPolicy } from "@stalewise/refresh"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const policy = yield* RefreshPolicy.make({ lifetime: "5 minutes", syncRefreshAfter: "1 hour" })
 *   return policy.fetchOnMiss // true
 * })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options = {}): Either.Either<RefreshPolicy, PolicyError.PolicyError> =>
  Either.gen(function*() {
    const time = yield* TimePolicy.make({
      lifetime: options.lifetime ?? Duration.minutes(10),
      timeToLive: options.timeToLive ?? Duration.days(30)
    })
    const refreshLease = yield* TimePolicy.positiveDuration(
      "refreshLease",
      options.refreshLease ?? Duration.seconds(60)
    )
    if (!Duration.isFinite(refreshLease)) {
      return yield* Either.left(invalid("refreshLease", "must be finite: a lease that never runs out locks the key"))
    }
    const syncRefreshAfter = options.syncRefreshAfter === undefined
      ? undefined
      : yield* TimePolicy.positiveDuration("syncRefreshAfter", options.syncRefreshAfter)
    if (
      syncRefreshAfter !== undefined &&
      (Duration.lessThan(syncRefreshAfter, time.lifetime) ||
        Duration.greaterThanOrEqualTo(syncRefreshAfter, time.timeToLive))
    ) {
      return yield* Either.left(invalid(
        "syncRefreshAfter",
        `must be at least lifetime (${Duration.format(time.lifetime)}) and less than timeToLive (${
          Duration.format(time.timeToLive)
        })`
      ))
    }
    return { time, refreshLease, syncRefreshAfter, fetchOnMiss: options.fetchOnMiss ?? true }
  })

const invalid = (option: string, detail: string) =>
  new PolicyError.PolicyError({ reason: "InvalidCombination", option, detail })
