/**
 * The HTTP cache's metrics: outcomes on core's `stalewise_outcomes` counter (with the HTTP
 * statuses `revalidated` and `bypass` besides core's), refreshes on core's `stalewise_refreshes`,
 * and conditional revalidations on their own counter.
 *
 * @internal
 */
import { CacheMetrics } from "@stalewise/core"
import * as Metric from "effect/Metric"
import * as MetricLabel from "effect/MetricLabel"

/** The `strategy` tag of an HTTP strategy. */
export const strategyName = (tag: "Failover" | "CacheFirst" | "StaleWhileRevalidate"): string =>
  tag === "Failover" ? "http-failover" : tag === "CacheFirst" ? "http-cache-first" : "http-stale-while-revalidate"

/**
 * Conditional requests sent for a stored response, tagged `strategy` and `result`:
 * `not-modified` (a 304 renewed the entry, no body transferred) or `modified` (a full response
 * replaced it).
 */
export const revalidations = Metric.counter("stalewise_http_revalidations", {
  description: "Conditional requests for stored HTTP responses, by result",
  incremental: true
})

const tagsCache = new Map<string, ReadonlyArray<MetricLabel.MetricLabel>>()

const tags = (annotations: CacheMetrics.Annotations, pairs: ReadonlyArray<readonly [string, string]>) => {
  const id = `${annotations.strategy}|${pairs.map(([k, v]) => `${k}=${v}`).join("|")}`
  let labels = tagsCache.get(id)
  if (labels === undefined) {
    labels = [
      MetricLabel.make("strategy", annotations.strategy),
      ...pairs.map(([label, value]) => MetricLabel.make(label, value))
    ]
    tagsCache.set(id, labels)
  }
  return labels
}

/** Counts an answer: `stalewise_outcomes{strategy, status, reason?}`. */
export const makeOutcomeCounter =
  (annotations: CacheMetrics.Annotations) => (status: string, reason?: string | undefined): void =>
    CacheMetrics.outcomes.unsafeUpdate(
      1,
      tags(annotations, reason === undefined ? [["status", status]] : [["status", status], ["reason", reason]])
    )

/** Counts a conditional revalidation. */
export const countRevalidation = (annotations: CacheMetrics.Annotations, result: "not-modified" | "modified"): void =>
  revalidations.unsafeUpdate(1, tags(annotations, [["result", result]]))

/** Counts a background refresh step on core's `stalewise_refreshes`. */
export const countRefresh = (
  annotations: CacheMetrics.Annotations,
  result: "started" | "succeeded" | "failed" | "skipped"
): void => CacheMetrics.refreshes.unsafeUpdate(1, tags(annotations, [["result", result]]))
