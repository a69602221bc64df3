/**
 * Test helpers: unique names (tests run concurrently), a scriptable upstream, queues that lose
 * or count requests, metric readers and `eventually` for work done by forked fibers.
 */
import type { CacheEntry } from "@stalewise/core"
import { CacheMetrics, CacheStore } from "@stalewise/core"
import type { Job } from "@stalewise/refresh"
import { JobRegistry, RefreshQueue } from "@stalewise/refresh"
import { Data, Duration, Effect, Layer, Logger, Metric, MetricLabel, Option } from "effect"

let counter = 0

/** A name no other test uses. */
export const unique = (prefix = "job"): string =>
  `${prefix}${Date.now().toString(36)}${(counter++).toString(36)}${Math.random().toString(36).slice(2, 6)}`

/** The upstream's own error: jobs must pass it through unchanged. */
export class UpstreamError extends Data.TaggedError("UpstreamError")<{ readonly call: number }> {}

/**
 * A scriptable upstream: `fetch(id)` answers `${id}#${call}` after `delay` (on the TestClock),
 * or fails with `UpstreamError` while `failing`. `calls` counts every call; `interrupted` counts
 * calls that were interrupted.
 */
export const makeUpstream = () => {
  const state = { calls: 0, interrupted: 0, failing: false, delay: Duration.zero as Duration.DurationInput }
  const fetch = (id: string): Effect.Effect<string, UpstreamError> =>
    Effect.suspend(() => {
      const call = ++state.calls
      const failing = state.failing
      const answer: Effect.Effect<string, UpstreamError> = failing
        ? Effect.fail(new UpstreamError({ call }))
        : Effect.succeed(`${id}#${call}`)
      return Duration.isZero(Duration.decode(state.delay)) ? answer : Effect.zipRight(Effect.sleep(state.delay), answer)
    }).pipe(Effect.onInterrupt(() => Effect.sync(() => state.interrupted++)))
  return { state, fetch }
}

/**
 * A `RefreshQueue` that accepts every request and never runs it — a worker that died — and
 * records what it was offered.
 */
export const makeLostQueue = () => {
  const offered: Array<RefreshQueue.RefreshRequest> = []
  const layer = Layer.merge(
    Layer.succeed(
      RefreshQueue.RefreshQueue,
      RefreshQueue.make({
        offer: (request) => Effect.sync(() => offered.push(request)).pipe(Effect.as("enqueued" as const))
      })
    ),
    JobRegistry.layer
  )
  return { offered, layer }
}

/**
 * A store that keeps entries past their expiry (as a backend with coarse TTLs may, for a
 * moment): the job must classify entries itself, not trust the store to drop expired ones.
 */
export const layerLaxStore: Layer.Layer<CacheStore.CacheStore> = Layer.effect(
  CacheStore.CacheStore,
  Effect.map(CacheStore.makeMemory(), (memory) => {
    const entries = new Map<string, CacheEntry.CacheEntry<unknown>>()
    const store: CacheStore.CacheStore.Service = {
      ...memory,
      backend: "lax",
      get: <A>(key: string) =>
        Effect.sync(() => Option.fromNullable(entries.get(key) as CacheEntry.CacheEntry<A> | undefined)),
      set: (key, entry) => Effect.sync(() => void entries.set(key, entry)),
      delete: (key) => Effect.sync(() => void entries.delete(key))
    }
    return store
  }).pipe(Effect.orDie)
)

/** The memory store and the fibers queue: the embedded default. */
export const FibersEnv = Layer.merge(CacheStore.layerMemory, RefreshQueue.layerFibers())

/** Runs a test body that defines jobs: its scope closes before the layer's, as in an application. */
export const withEnv = <A, E, LE>(
  layer: Layer.Layer<CacheStore.CacheStore | RefreshQueue.RefreshQueue | JobRegistry.JobRegistry, LE>,
  body: Effect.Effect<A, E, Job.Requirements>
): Effect.Effect<A, E | LE> => body.pipe(Effect.scoped, Effect.provide(layer))

/** Retries `check` (yielding to other fibers in between) until it holds; fails the test otherwise. */
export const eventually = <E = never, R = never>(
  check: Effect.Effect<boolean, E, R> | (() => boolean),
  message = "condition never held"
): Effect.Effect<void, E, R> => {
  const test: Effect.Effect<boolean, E, R> = typeof check === "function" ? Effect.sync(check) : check
  const loop = (n: number): Effect.Effect<void, E, R> =>
    Effect.flatMap(
      test,
      (ok) =>
        ok ? Effect.void : n <= 0 ? Effect.die(new Error(message)) : Effect.zipRight(Effect.yieldNow(), loop(n - 1))
    )
  return loop(2_000)
}

/** Lets forked fibers run for a while (when asserting that something did *not* happen). */
export const settle: Effect.Effect<void> = Effect.repeatN(Effect.yieldNow(), 200)

/** `CacheMetrics.refreshes{result, job}`. */
export const refreshes = (
  job: string,
  result: "started" | "succeeded" | "failed" | "skipped" | "dropped" | "rejected"
) =>
  Effect.map(
    Metric.value(
      Metric.taggedWithLabels(CacheMetrics.refreshes, [
        MetricLabel.make("result", result),
        MetricLabel.make("job", job)
      ])
    ),
    (state) => state.count
  )

/** `CacheMetrics.outcomes{strategy, status, job}`. */
export const outcomes = (job: string, status: string) =>
  Effect.map(
    Metric.value(
      Metric.taggedWithLabels(CacheMetrics.outcomes, [
        MetricLabel.make("strategy", "stale-while-revalidate"),
        MetricLabel.make("status", status),
        MetricLabel.make("job", job)
      ])
    ),
    (state) => state.count
  )

/** `CacheMetrics.refreshQueueDepth{queue}`. */
export const queueDepth = (queue: string) =>
  Effect.map(
    Metric.value(Metric.taggedWithLabels(CacheMetrics.refreshQueueDepth, [MetricLabel.make("queue", queue)])),
    (state) => state.value
  )

/** A logger layer that records each message, for asserting that something was logged. */
export const captureLogs = () => {
  const messages: Array<string> = []
  const layer = Logger.add(
    Logger.make(({ annotations, message }) => {
      const text = Array.isArray(message) ? message.join(" ") : String(message)
      const notes = [...annotations].map(([k, v]) => `${k}=${String(v)}`).join(" ")
      messages.push(`${text} ${notes}`)
    })
  )
  return { messages, layer }
}

/** The value stored for a job's arguments, or undefined. */
export const stored = <Args extends ReadonlyArray<any>, A, E>(job: Job.Job<Args, A, E>, ...args: Args) =>
  Effect.map(Effect.orDie(job.peek(...args)), Option.getOrUndefined)
