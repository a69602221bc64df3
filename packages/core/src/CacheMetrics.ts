/**
 * The toolkit's Effect `Metric`s. Store metrics carry a `backend` tag (`memory`,
 * `key-value-store`, `redis`, …); read them with `Metric.value` or export them with any Effect
 * metrics exporter.
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Hash from "effect/Hash"
import * as Metric from "effect/Metric"
import * as MetricKey from "effect/MetricKey"
import * as MetricLabel from "effect/MetricLabel"
import * as Option from "effect/Option"
import type * as Outcome from "./Outcome.js"

const storeHitsKey = MetricKey.counter("stalewise_store_hits", {
  description: "CacheStore reads that found a live entry",
  incremental: true
})

/**
 * Reads that found a live entry.
 *
 * @since 0.1.0
 * @category metrics
 */
export const storeHits: Metric.Metric.Counter<number> = Metric.fromMetricKey(storeHitsKey)

const storeMissesKey = MetricKey.counter("stalewise_store_misses", {
  description: "CacheStore reads that found no live entry",
  incremental: true
})

/**
 * Reads that found nothing, an expired entry, or an entry that failed to decode.
 *
 * @since 0.1.0
 * @category metrics
 */
export const storeMisses: Metric.Metric.Counter<number> = Metric.fromMetricKey(storeMissesKey)

const storeErrorsKey = MetricKey.counter("stalewise_store_errors", {
  description: "CacheStore operations that failed",
  incremental: true
})

/**
 * Store operations that failed (backend unavailable, encode failure, timeout).
 *
 * @since 0.1.0
 * @category metrics
 */
export const storeErrors: Metric.Metric.Counter<number> = Metric.fromMetricKey(storeErrorsKey)

const storeEvictionsKey = MetricKey.counter("stalewise_store_evictions", {
  description: "CacheStore entries evicted for capacity",
  incremental: true
})

/**
 * Entries dropped to respect a capacity (entry count or bytes), or refused because a single
 * entry is larger than the byte budget.
 *
 * @since 0.1.0
 * @category metrics
 */
export const storeEvictions: Metric.Metric.Counter<number> = Metric.fromMetricKey(storeEvictionsKey)

const storeDecodeFailuresKey = MetricKey.counter("stalewise_store_decode_failures", {
  description: "CacheStore entries that failed to decode and were deleted",
  incremental: true
})

/**
 * Stored entries that could not be decoded (corrupt data, or a value schema that changed); each
 * one is treated as a miss and deleted.
 *
 * @since 0.1.0
 * @category metrics
 */
export const storeDecodeFailures: Metric.Metric.Counter<number> = Metric.fromMetricKey(storeDecodeFailuresKey)

const storeWritesDroppedKey = MetricKey.counter("stalewise_store_writes_dropped", {
  description: "CacheStore background writes dropped because too many were in flight",
  incremental: true
})

/**
 * Background writes (`CacheStore.setInBackground`, the writes after upstream calls) a store did
 * not send because its bound of writes in flight was reached — a backend that stopped answering.
 * The value was served, just not cached.
 *
 * @since 0.1.0
 * @category metrics
 */
export const storeWritesDropped: Metric.Metric.Counter<number> = Metric.fromMetricKey(storeWritesDroppedKey)

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

/**
 * The counters of one store backend, resolved once: each call updates the tagged counter
 * directly, without a registry lookup, so stores can count on their hot paths.
 *
 * @since 0.1.0
 * @category models
 */
export interface StoreCounters {
  readonly hit: () => void
  readonly miss: () => void
  readonly error: () => void
  readonly eviction: () => void
  readonly decodeFailure: () => void
  readonly writeDropped: () => void
}

/**
 * Resolves the store counters for `backend` (the value of their `backend` tag).
 *
 * @example
 * ```ts
 * import { CacheMetrics } from "@stalewise/core"
 *
 * const counters = CacheMetrics.makeStoreCounters("my-backend")
 * counters.hit() // stalewise_store_hits{backend="my-backend"} += 1
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeStoreCounters = (backend: string): StoreCounters => {
  const labels = backendLabels(backend)
  const resolve = (key: MetricKey.MetricKey.Counter<number>) => {
    const hook = Metric.globalMetricRegistry.get(MetricKey.taggedWithLabels(key, labels))
    return () => hook.update(1)
  }
  return {
    hit: resolve(storeHitsKey),
    miss: resolve(storeMissesKey),
    error: resolve(storeErrorsKey),
    eviction: resolve(storeEvictionsKey),
    decodeFailure: resolve(storeDecodeFailuresKey),
    writeDropped: resolve(storeWritesDroppedKey)
  }
}

const outcomesKey = MetricKey.counter("stalewise_outcomes", {
  description: "Calls answered by a strategy, by strategy and outcome status",
  incremental: true
})

/**
 * Calls answered by a strategy, tagged `strategy` (`failover`, `cache-first`,
 * `stale-while-revalidate`), the cache's `namespace` and `name` (a job's name is its `job` tag)
 * and `status` (a {@link CountedStatus}), plus `reason` for failovers.
 *
 * @since 0.1.0
 * @category metrics
 */
export const outcomes: Metric.Metric.Counter<number> = Metric.fromMetricKey(outcomesKey)

/**
 * How long upstream calls took, tagged `strategy`; recorded for every call that ended, in success
 * or failure (a slow failure is what a dashboard must see), not for interrupted ones.
 *
 * @since 0.1.0
 * @category metrics
 */
export const upstreamDuration = Metric.timerWithBoundaries(
  "stalewise_upstream_duration",
  [1, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000],
  "Duration of upstream calls in milliseconds"
)

/**
 * Refreshes, tagged `result`: `started`, `succeeded`, `failed`, `skipped` (lease held elsewhere or
 * backing off) and `dropped` (a queue could not take the work and the fallback is to skip).
 *
 * @since 0.1.0
 * @category metrics
 */
export const refreshes = Metric.counter("stalewise_refreshes", {
  description: "Refreshes by result",
  incremental: true
})

/**
 * Refresh requests waiting in an in-process refresh queue.
 *
 * @since 0.1.0
 * @category metrics
 */
export const refreshQueueDepth = Metric.gauge("stalewise_refresh_queue_depth", {
  description: "Refresh requests waiting in the queue"
})

/**
 * What a strategy's metrics, spans and logs are tagged with: `strategy` (e.g. `failover`) and any
 * further labels (e.g. `job`).
 *
 * @since 0.1.0
 * @category models
 */
export interface Annotations {
  readonly strategy: string
  readonly [label: string]: string
}

/**
 * The statuses counted in `outcomes`: every `Outcome.Status`, plus `negative` (a failure served
 * from the negative cache) and `bypass` (a call that skipped the cache, `CacheControl.bypass`).
 *
 * @since 0.1.0
 * @category models
 */
export type CountedStatus = Outcome.Status | "negative" | "bypass"

const extraLabels = (annotations: Annotations): ReadonlyArray<MetricLabel.MetricLabel> =>
  Object.entries(annotations)
    .filter(([label]) => label !== "strategy")
    .map(([label, value]) => MetricLabel.make(label, value))

/**
 * A counter of a strategy's outcomes (`outcomes{strategy, status, reason?, …}`). Label arrays are
 * built once per status and reason, so each count is a cached hook lookup on the hot path.
 *
 * @example
 * ```ts
 * import { CacheMetrics } from "@stalewise/core"
 *
 * const count = CacheMetrics.makeOutcomeCounter({ strategy: "my-strategy" })
 * count("hit")
 * count("failover", "timeout")
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeOutcomeCounter = (
  annotations: Annotations
): (status: CountedStatus, reason?: Outcome.FailoverReason | undefined) => void => {
  const strategy = MetricLabel.make("strategy", annotations.strategy)
  const extra = extraLabels(annotations)
  // each (status, reason)'s counter resolved once: a hit's count is one update, no lookup by tags
  const counters = new Map<string, { readonly update: (input: number) => void }>()
  const counterOf = (status: CountedStatus, reason: Outcome.FailoverReason | undefined) => {
    const id = reason === undefined ? status : `${status}/${reason}`
    let counter = counters.get(id)
    if (counter === undefined) {
      const tags = [
        strategy,
        MetricLabel.make("status", status),
        ...(reason === undefined ? [] : [MetricLabel.make("reason", reason)]),
        ...extra
      ]
      counter = Metric.globalMetricRegistry.get(MetricKey.taggedWithLabels(outcomesKey, tags))
      counters.set(id, counter)
    }
    return counter
  }
  // hits are most counts: theirs is kept at hand once resolved (on the first hit, so that a
  // strategy that never hit reports no hit counter)
  let hits: { readonly update: (input: number) => void } | undefined
  return (status, reason) => {
    if (status === "hit" && reason === undefined) (hits ??= counterOf("hit", undefined)).update(1)
    else counterOf(status, reason).update(1)
  }
}

const upstreamLabels = new Map<string, ReadonlyArray<MetricLabel.MetricLabel>>()

/**
 * Runs an upstream call in a `stalewise.upstream` span (attributes: every annotation as
 * `stalewise.<label>` and `stalewise.key_digest`)
 * and records its duration in `upstreamDuration{strategy}` when it ends — succeeded, failed or
 * died; an interrupted call is not recorded.
 *
 * @since 0.1.0
 * @category combinators
 */
export const timeUpstream = <A, E, R>(
  annotations: Annotations,
  key: string,
  effect: Effect.Effect<A, E, R>
): Effect.Effect<A, E, R> => {
  let labels = upstreamLabels.get(annotations.strategy)
  if (labels === undefined) {
    labels = [MetricLabel.make("strategy", annotations.strategy)]
    upstreamLabels.set(annotations.strategy, labels)
  }
  const tags = labels
  const attributes: Record<string, unknown> = { "stalewise.key_digest": keyDigest(key) }
  for (const [label, value] of Object.entries(annotations)) attributes[`stalewise.${label}`] = value
  return Effect.clockWith((clock) => {
    const start = clock.unsafeCurrentTimeNanos()
    return effect.pipe(
      Effect.withSpan("stalewise.upstream", { attributes }),
      Effect.onExit((exit) => {
        if (!Exit.isInterrupted(exit)) {
          upstreamDuration.unsafeUpdate(Duration.nanos(clock.unsafeCurrentTimeNanos() - start), tags)
        }
        return Effect.void
      })
    )
  })
}

/**
 * A short digest of a cache key for spans and logs: it tells calls of one key apart without
 * carrying the key's id, which a user `key` function may build from the arguments.
 *
 * @since 0.1.0
 * @category tracing
 */
export const keyDigest = (key: string): string => (Hash.string(key) >>> 0).toString(16).padStart(8, "0")

/**
 * Runs one cached call in a `stalewise.get` span. Attributes: `stalewise.strategy`,
 * `stalewise.namespace`, `stalewise.name` (and any other annotation, as `stalewise.<label>`),
 * `stalewise.key_digest` ({@link keyDigest}), and once answered `stalewise.status` (a
 * {@link CountedStatus}: `status` when given, the outcome's otherwise) and `stalewise.reason` for
 * failovers. Never values or arguments.
 *
 * A strategy decides hits before calling it: hits skip the span unless `traceHits`, because a
 * span costs a hit more than it costs anything else (see docs/observability.md).
 *
 * @example
 * ```ts
 * import { CacheMetrics, Outcome } from "@stalewise/core"
 * import { Effect } from "effect"
 *
 * const annotations = { strategy: "my-strategy", namespace: "app", name: "rates" }
 * const call = CacheMetrics.traceCall(
 *   annotations,
 *   "app:rates:EUR",
 *   Effect.succeed(Outcome.make({ value: 1.08, status: "miss" }))
 * ) // a stalewise.get span with stalewise.status = "miss"
 * ```
 *
 * @since 0.1.0
 * @category tracing
 */
export const traceCall = <A, E, R>(
  annotations: Annotations,
  key: string,
  effect: Effect.Effect<Outcome.Outcome<A>, E, R>,
  status?: CountedStatus | undefined
): Effect.Effect<Outcome.Outcome<A>, E, R> => {
  const attributes: Record<string, unknown> = { "stalewise.key_digest": keyDigest(key) }
  for (const [label, value] of Object.entries(annotations)) attributes[`stalewise.${label}`] = value
  return effect.pipe(
    Effect.tap((outcome) => annotateStatus(status ?? outcome.status, outcome.reason)),
    Effect.withSpan("stalewise.get", { attributes })
  )
}

/**
 * Sets `stalewise.status` (and `stalewise.reason`) on the current span, e.g. `negative` before a
 * cached failure is returned.
 *
 * @since 0.1.0
 * @category tracing
 */
export const annotateStatus = (
  status: CountedStatus,
  reason?: Outcome.FailoverReason | undefined
): Effect.Effect<void> =>
  reason === undefined
    ? Effect.annotateCurrentSpan("stalewise.status", status)
    : Effect.annotateCurrentSpan({ "stalewise.status": status, "stalewise.reason": reason })

/**
 * Counts of `outcomes` by status for the caches matching `filter` (every label given must match;
 * e.g. `{ name: "rate" }` or `{ strategy: "cache-first", namespace: "users" }`), summed over the
 * other labels.
 *
 * @example
 * ```ts
 * import { CacheMetrics } from "@stalewise/core"
 * import { Effect } from "effect"
 *
 * const program = Effect.map(CacheMetrics.outcomeCounts({ name: "rate" }), (counts) => counts["failover"] ?? 0)
 * ```
 *
 * @since 0.1.0
 * @category metrics
 */
export const outcomeCounts = (
  filter: Readonly<Record<string, string>>
): Effect.Effect<Readonly<Partial<Record<CountedStatus, number>>>> =>
  Effect.sync(() => {
    const counts: Partial<Record<CountedStatus, number>> = {}
    const wanted = Object.entries(filter)
    for (const pair of Metric.unsafeSnapshot()) {
      if (pair.metricKey.name !== "stalewise_outcomes") continue
      const tags = new Map(pair.metricKey.tags.map((tag) => [tag.key, tag.value]))
      if (!wanted.every(([key, value]) => tags.get(key) === value)) continue
      const status = tags.get("status") as CountedStatus | undefined
      const state = pair.metricState as { readonly count?: unknown }
      if (status !== undefined && typeof state.count === "number") counts[status] = (counts[status] ?? 0) + state.count
    }
    return counts
  })

/**
 * The hit ratio of the caches matching `filter` (see {@link outcomeCounts}): calls answered from
 * the cache (`hit`, `stale`, `failover`, `negative`) over all calls, bypasses excluded; `None`
 * before the first call.
 *
 * @example
 * ```ts
 * import { CacheMetrics } from "@stalewise/core"
 * import { Effect, Option } from "effect"
 *
 * const program = Effect.map(
 *   CacheMetrics.hitRatio({ strategy: "cache-first", name: "countries" }),
 *   Option.getOrElse(() => 0)
 * )
 * ```
 *
 * @since 0.1.0
 * @category metrics
 */
export const hitRatio = (filter: Readonly<Record<string, string>>): Effect.Effect<Option.Option<number>> =>
  Effect.map(outcomeCounts(filter), (counts) => {
    const fromCache = (counts.hit ?? 0) + (counts.stale ?? 0) + (counts.failover ?? 0) + (counts.negative ?? 0)
    const total = fromCache + (counts.miss ?? 0) + (counts.empty ?? 0)
    return total === 0 ? Option.none() : Option.some(fromCache / total)
  })

/**
 * Fetches (`SingleFlight`: a job's misses, refreshes past `syncRefreshAfter` and `refresh`, a
 * persisted CacheFirst's misses) that found another process holding the key's lease and waited
 * for its value, tagged `result`: `landed` (the value arrived and was served: no fetch here),
 * `took-over` (the holder gave the lease up without a value; this process took it and fetched)
 * and `budget` (the wait budget ran out; this process fetched without the lease), plus the
 * strategy's labels (`strategy`, `namespace` and `name`, or `job`).
 *
 * @since 0.1.0
 * @category metrics
 */
export const leaseWaits = Metric.counter("stalewise_lease_waits", {
  description: "Synchronous fetches that waited on another process's lease, by result",
  incremental: true
})

/**
 * Flushes an `InvalidationBus` delivered to its listeners, tagged `reason`: `Disconnected` (the
 * subscription was lost) or `Resubscribed` (it is back). Each one empties every in-process tier.
 *
 * @since 0.1.0
 * @category metrics
 */
export const busFlushes = Metric.counter("stalewise_bus_flushes", {
  description: "Invalidation bus flushes (subscription lost or restored), by reason",
  incremental: true
})

/**
 * Invalidations an `InvalidationBus` could not send (its backend failed or timed out). The
 * receivers' bounds cover them: a flush when their subscription is lost, the memory time-to-live.
 *
 * @since 0.1.0
 * @category metrics
 */
export const busPublishFailures = Metric.counter("stalewise_bus_publish_failures", {
  description: "Invalidations the bus could not send",
  incremental: true
})
