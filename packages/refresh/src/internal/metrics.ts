/** @internal */
import { CacheMetrics } from "@stalewise/core"
import * as MetricLabel from "effect/MetricLabel"

/** @internal */
export const strategy = "stale-while-revalidate"

/** @internal */
export type RefreshMetricResult = "started" | "succeeded" | "failed" | "skipped" | "dropped" | "rejected"

// Label arrays are built once per (job, result) so each update is a cached hook lookup (effect
// caches a metric's hooks by label-array identity); found by job, then result: nothing is
// allocated per count (a burst of stale reads counts one "skipped" each).
const refreshLabels = new Map<string, Map<RefreshMetricResult, ReadonlyArray<MetricLabel.MetricLabel>>>()

/**
 * Counts one refresh of `job` in `CacheMetrics.refreshes` (labels `result`, `job`).
 *
 * @internal
 */
export const countRefresh = (job: string, result: RefreshMetricResult): void => {
  let byResult = refreshLabels.get(job)
  if (byResult === undefined) {
    byResult = new Map()
    refreshLabels.set(job, byResult)
  }
  let labels = byResult.get(result)
  if (labels === undefined) {
    labels = [MetricLabel.make("result", result), MetricLabel.make("job", job)]
    byResult.set(result, labels)
  }
  CacheMetrics.refreshes.unsafeUpdate(1, labels)
}

/**
 * Sets `CacheMetrics.refreshQueueDepth` for the queue named `queue` (label `queue`).
 *
 * @internal
 */
export const depthGauge = (queue: string): (depth: number) => void => {
  const labels = [MetricLabel.make("queue", queue)]
  return (depth) => CacheMetrics.refreshQueueDepth.unsafeUpdate(depth, labels)
}
