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
 * The options of a policy; every option is optional and defaults as cacheback does, or to the
 * safe choice where cacheback had no such option.
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
  /**
   * Whether a failed synchronous refresh of a stale value (past `syncRefreshAfter`) serves the
   * stale value (outcome `failover`) instead of failing. Default true. A failed background
   * refresh always keeps the last good value.
   */
  readonly staleIfError?: boolean | undefined
  /**
   * Spreads expiries: each write shortens `lifetime` by a random fraction in `[0, jitter)`, so
   * values fetched together do not all go stale together. In `[0, 1)`. Default 0.
   */
  readonly jitter?: number | undefined
  /**
   * Fails a fetch that takes longer than this with `JobError` (reason `Timeout`), whoever waits
   * for it. Default: no limit for a fetch callers wait for (see `backgroundTimeout` for the rest).
   */
  readonly timeout?: Duration.DurationInput | undefined
  /**
   * The longest a fetch nobody waits for may run, from its start: a background refresh, or a
   * synchronous fetch whose callers all left (`onAbandon: "complete"`). Then it is interrupted —
   * a background refresh counts as failed with `JobError` reason `Timeout` and backs off — and
   * the next read starts a fresh one, so a hung upstream never pins a key. Positive and finite.
   * Default 30 seconds (a shorter `timeout` ends the fetch first).
   */
  readonly backgroundTimeout?: Duration.DurationInput | undefined
  /**
   * Refresh-ahead: a read after this fraction of `lifetime` is still a hit, and requests one
   * background refresh (through the refresh lease, as a stale read does), so a key read often
   * never goes stale. In `(0, 1)`, e.g. `0.8`. Default: off.
   */
  readonly refreshAhead?: number | undefined
  /**
   * The wait budget of a synchronous fetch (a miss, a refresh past `syncRefreshAfter`,
   * `refresh`) that finds the key's lease held by another process: it waits up to this long for
   * that process's value to land (woken by the `InvalidationBus` when there is one), then
   * fetches itself. Counted in `CacheMetrics.leaseWaits`. Positive and finite. Default 5 seconds.
   */
  readonly leaseWait?: Duration.DurationInput | undefined
  /**
   * After a refresh of a key fails, no refresh of it is tried for `initial`, doubling with each
   * further failure up to `max`; a success resets it. Default 5 seconds, up to 5 minutes.
   */
  readonly refreshBackoff?: {
    readonly initial?: Duration.DurationInput | undefined
    readonly max?: Duration.DurationInput | undefined
  } | undefined
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
  readonly staleIfError: boolean
  readonly jitter: number
  readonly timeout: Duration.Duration | undefined
  readonly backgroundTimeout: Duration.Duration
  /** The fraction of `lifetime` after which a hit requests a refresh; `undefined`: off. */
  readonly refreshAhead: number | undefined
  readonly leaseWait: Duration.Duration
  readonly refreshBackoff: {
    readonly initial: Duration.Duration
    readonly max: Duration.Duration
  }
}

/**
 * Validates options into a policy. Fails with `PolicyError` when a duration is not positive,
 * when `lifetime > timeToLive`, when `syncRefreshAfter` falls outside `[lifetime, timeToLive)`,
 * when `refreshLease`, `leaseWait` or `backgroundTimeout` is infinite, when `jitter` is outside `[0, 1)`
 * or `refreshAhead` outside `(0, 1)`, or when the back-off's
 * `initial` exceeds its `max`.
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
    // finite: a lease that never runs out would lock the key for good
    const refreshLease = yield* TimePolicy.finiteDuration("refreshLease", options.refreshLease ?? Duration.seconds(60))
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
    const jitter = options.jitter ?? 0
    if (!(jitter >= 0 && jitter < 1)) {
      return yield* Either.left(
        new PolicyError.PolicyError({
          reason: "InvalidValue",
          option: "jitter",
          detail: `${jitter} is not in [0, 1)`
        })
      )
    }
    const timeout = options.timeout === undefined
      ? undefined
      : yield* TimePolicy.finiteDuration("timeout", options.timeout)
    const backgroundTimeout = yield* TimePolicy.finiteDuration(
      "backgroundTimeout",
      options.backgroundTimeout ?? Duration.seconds(30)
    )
    const refreshAhead = options.refreshAhead === undefined
      ? undefined
      : yield* TimePolicy.fraction("refreshAhead", options.refreshAhead)
    const leaseWait = yield* TimePolicy.finiteDuration("leaseWait", options.leaseWait ?? Duration.seconds(5))
    const initial = yield* TimePolicy.positiveDuration(
      "refreshBackoff.initial",
      options.refreshBackoff?.initial ?? Duration.seconds(5)
    )
    const max = yield* TimePolicy.positiveDuration(
      "refreshBackoff.max",
      options.refreshBackoff?.max ?? Duration.minutes(5)
    )
    if (Duration.greaterThan(initial, max) || !Duration.isFinite(max)) {
      return yield* Either.left(invalid("refreshBackoff", "initial must be at most max, and max finite"))
    }
    return {
      time,
      refreshLease,
      syncRefreshAfter,
      fetchOnMiss: options.fetchOnMiss ?? true,
      staleIfError: options.staleIfError ?? true,
      jitter,
      timeout,
      backgroundTimeout,
      refreshAhead,
      leaseWait,
      refreshBackoff: { initial, max }
    }
  })

/**
 * The back-off after `failures` consecutive failed refreshes: `initial × 2^(failures − 1)`,
 * capped at `max`.
 *
 * @since 0.1.0
 * @category utils
 */
export const backoffMillis = (policy: RefreshPolicy, failures: number): number =>
  Math.min(
    Duration.toMillis(policy.refreshBackoff.max),
    Duration.toMillis(policy.refreshBackoff.initial) * 2 ** Math.max(0, failures - 1)
  )

const invalid = (option: string, detail: string) =>
  new PolicyError.PolicyError({ reason: "InvalidCombination", option, detail })
