/** @internal */
import { CacheMetrics, type Outcome } from "@stalewise/core"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as MetricLabel from "effect/MetricLabel"

/** @internal */
export const strategy = "stale-while-revalidate"

/** @internal */
export type RefreshMetricResult = "started" | "succeeded" | "failed" | "skipped" | "dropped"

// Label arrays are built once per (job, value) so each update is a cached hook lookup (effect
// caches a metric's hooks by label-array identity).
const refreshLabels = new Map<string, ReadonlyArray<MetricLabel.MetricLabel>>()

/**
 * Counts one refresh of `job` in `CacheMetrics.refreshes` (labels `result`, `job`).
 *
 * @internal
 */
export const countRefresh = (job: string, result: RefreshMetricResult): void => {
  const id = `${job}\u0000${result}`
  let labels = refreshLabels.get(id)
  if (labels === undefined) {
    labels = [MetricLabel.make("result", result), MetricLabel.make("job", job)]
    refreshLabels.set(id, labels)
  }
  CacheMetrics.refreshes.unsafeUpdate(1, labels)
}

/**
 * The labels `countRefresh` uses, for reading the counter back.
 *
 * @internal
 */
export const refreshMetricLabels = (
  job: string,
  result: RefreshMetricResult
): ReadonlyArray<MetricLabel.MetricLabel> => [
  MetricLabel.make("result", result),
  MetricLabel.make("job", job)
]

/**
 * Counts the outcomes of one job in `CacheMetrics.outcomes` (labels `strategy`, `status`,
 * `reason` for failovers, `job`).
 *
 * @internal
 */
export const outcomeCounter = (job: string) => {
  const labels = new Map<string, ReadonlyArray<MetricLabel.MetricLabel>>()
  return (status: Outcome.Status, reason?: Outcome.FailoverReason | undefined): void => {
    const id = reason === undefined ? status : `${status}/${reason}`
    let tags = labels.get(id)
    if (tags === undefined) {
      tags = outcomeMetricLabels(job, status, reason)
      labels.set(id, tags)
    }
    CacheMetrics.outcomes.unsafeUpdate(1, tags)
  }
}

/**
 * The labels `outcomeCounter` uses, for reading the counter back.
 *
 * @internal
 */
export const outcomeMetricLabels = (
  job: string,
  status: Outcome.Status,
  reason?: Outcome.FailoverReason | undefined
): ReadonlyArray<MetricLabel.MetricLabel> => [
  MetricLabel.make("strategy", strategy),
  MetricLabel.make("status", status),
  ...(reason === undefined ? [] : [MetricLabel.make("reason", reason)]),
  MetricLabel.make("job", job)
]

/**
 * Sets `CacheMetrics.refreshQueueDepth` for the queue named `queue` (label `queue`).
 *
 * @internal
 */
export const depthGauge = (queue: string): (depth: number) => void => {
  const labels = [MetricLabel.make("queue", queue)]
  return (depth) => CacheMetrics.refreshQueueDepth.unsafeUpdate(depth, labels)
}

const upstreamLabels = [MetricLabel.make("strategy", strategy)]

/**
 * Times an upstream call into `CacheMetrics.upstreamDuration` and wraps it in a span.
 *
 * @internal
 */
export const upstream = <A, E, R>(job: string, key: string, effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  effect.pipe(
    Effect.timed,
    Effect.map(([duration, value]: [Duration.Duration, A]) => {
      CacheMetrics.upstreamDuration.unsafeUpdate(duration, upstreamLabels)
      return value
    }),
    Effect.withSpan("stalewise.upstream", {
      attributes: { "stalewise.strategy": strategy, "stalewise.job": job, "stalewise.key": key }
    })
  )
