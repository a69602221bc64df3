/**
 * The toolkit's Effect `Metric`s. Store metrics carry a `backend` tag (`memory`,
 * `key-value-store`, `redis`, …); read them with `Metric.value` or export them with any Effect
 * metrics exporter.
 *
 * @since 0.1.0
 */
import * as Metric from "effect/Metric"
import * as MetricLabel from "effect/MetricLabel"

/**
 * Reads that found a live entry.
 *
 * @since 0.1.0
 * @category metrics
 */
export const storeHits = Metric.counter("stalewise_store_hits", {
  description: "CacheStore reads that found a live entry",
  incremental: true
})

/**
 * Reads that found nothing, an expired entry, or an entry that failed to decode.
 *
 * @since 0.1.0
 * @category metrics
 */
export const storeMisses = Metric.counter("stalewise_store_misses", {
  description: "CacheStore reads that found no live entry",
  incremental: true
})

/**
 * Store operations that failed (backend unavailable, encode failure, timeout).
 *
 * @since 0.1.0
 * @category metrics
 */
export const storeErrors = Metric.counter("stalewise_store_errors", {
  description: "CacheStore operations that failed",
  incremental: true
})

/**
 * Entries dropped to respect a capacity (entry count or bytes), or refused because a single
 * entry is larger than the byte budget.
 *
 * @since 0.1.0
 * @category metrics
 */
export const storeEvictions = Metric.counter("stalewise_store_evictions", {
  description: "CacheStore entries evicted for capacity",
  incremental: true
})

/**
 * Stored entries that could not be decoded (corrupt data, or a value schema that changed); each
 * one is treated as a miss and deleted.
 *
 * @since 0.1.0
 * @category metrics
 */
export const storeDecodeFailures = Metric.counter("stalewise_store_decode_failures", {
  description: "CacheStore entries that failed to decode and were deleted",
  incremental: true
})

/**
 * The labels a store backend tags its metrics with. Build them once per store: metric hooks
 * are cached per label array, which keeps updates cheap on hot paths.
 *
 * @since 0.1.0
 * @category metrics
 */
export const backendLabels = (backend: string): ReadonlyArray<MetricLabel.MetricLabel> => [
  MetricLabel.make("backend", backend)
]
