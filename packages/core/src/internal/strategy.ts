/** @internal */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import type * as Fiber from "effect/Fiber"
import * as MetricLabel from "effect/MetricLabel"
import * as Option from "effect/Option"
import * as Runtime from "effect/Runtime"
import type * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import type { CacheEntry } from "../CacheEntry.js"
import * as CacheKey from "../CacheKey.js"
import * as CacheMetrics from "../CacheMetrics.js"
import type * as CacheStore from "../CacheStore.js"
import * as Outcome from "../Outcome.js"
import { PolicyError } from "../PolicyError.js"

/**
 * How a strategy derives the key of a call: a user `key` function (its result is the id), or
 * the canonical encoding of the arguments. The namespace and name are checked once, here: an
 * invalid one is a `PolicyError` when the strategy is built.
 *
 * @internal
 */
export const keyDeriver = <Args extends ReadonlyArray<unknown>>(
  namespace: string,
  name: string,
  key: ((...args: Args) => string) | undefined
): Either.Either<(args: Args) => Either.Either<string, CacheKey.CacheKeyError>, PolicyError> => {
  const invalid = (error: CacheKey.CacheKeyError) =>
    new PolicyError({ reason: "InvalidValue", option: error.path, detail: error.message })
  if (key === undefined) return Either.mapLeft(CacheKey.deriver(namespace, name), invalid)
  return Either.map(
    Either.mapLeft(CacheKey.idDeriver(namespace, name), invalid),
    (fromId) => (args: Args) => fromId(key(...args))
  )
}

/**
 * Reads the store, degrading a store failure to a miss (already counted by the store; logged here).
 *
 * @internal
 */
export const readDegraded = <A, I>(
  store: CacheStore.CacheStore.Service,
  key: string,
  schema: Schema.Schema<A, I> | undefined,
  strategy: string
): Effect.Effect<Option.Option<CacheEntry<A>>> =>
  store.get(key, schema).pipe(
    Effect.catchAll((error) =>
      Effect.as(
        Effect.logWarning("stalewise: store read failed, treated as a miss").pipe(
          Effect.annotateLogs({ strategy, key, error: error.message })
        ),
        Option.none()
      )
    )
  )

/**
 * Writes the store, degrading a store failure to a logged warning: the caller has its value.
 *
 * @internal
 */
export const writeDegraded = <A, I>(
  store: CacheStore.CacheStore.Service,
  key: string,
  entry: CacheEntry<A>,
  schema: Schema.Schema<A, I> | undefined,
  strategy: string
): Effect.Effect<void> =>
  store.set(key, entry, schema).pipe(
    Effect.catchAll((error) =>
      Effect.logWarning("stalewise: store write failed, value not cached").pipe(
        Effect.annotateLogs({ strategy, key, error: error.message })
      )
    )
  )

/**
 * Counts outcomes of one strategy; label arrays are built once so each count is a cached hook
 * lookup.
 *
 * @internal
 */
export const outcomeCounter = (strategy: string) => {
  const labels = new Map<string, ReadonlyArray<MetricLabel.MetricLabel>>()
  return (status: Outcome.Status, reason?: Outcome.FailoverReason | undefined): void => {
    const id = reason === undefined ? status : `${status}/${reason}`
    let tags = labels.get(id)
    if (tags === undefined) {
      tags = [
        MetricLabel.make("strategy", strategy),
        MetricLabel.make("status", status),
        ...(reason === undefined ? [] : [MetricLabel.make("reason", reason)])
      ]
      labels.set(id, tags)
    }
    CacheMetrics.outcomes.unsafeUpdate(1, tags)
  }
}

/**
 * Times an upstream call into `CacheMetrics.upstreamDuration` and wraps it in a span.
 *
 * @internal
 */
export const upstream = <A, E, R>(
  strategy: string,
  key: string,
  effect: Effect.Effect<A, E, R>
): Effect.Effect<A, E, R> =>
  effect.pipe(
    Effect.withSpan("stalewise.upstream", { attributes: { "stalewise.strategy": strategy, "stalewise.key": key } }),
    Effect.timed,
    Effect.map(([duration, value]) => {
      upstreamDurations(strategy)(duration)
      return value
    })
  )

const durationLabels = new Map<string, ReadonlyArray<MetricLabel.MetricLabel>>()
const upstreamDurations = (strategy: string) => (duration: Duration.Duration) => {
  let tags = durationLabels.get(strategy)
  if (tags === undefined) {
    tags = [MetricLabel.make("strategy", strategy)]
    durationLabels.set(strategy, tags)
  }
  CacheMetrics.upstreamDuration.unsafeUpdate(duration, tags)
}

/**
 * The outcome of serving a cached entry at `now`.
 *
 * @internal
 */
export const fromEntry = <A>(
  entry: CacheEntry<A>,
  now: number,
  status: Outcome.Status,
  options?: { readonly reason?: Outcome.FailoverReason | undefined; readonly fetchedSynchronously?: boolean }
): Outcome.Outcome<A> =>
  Outcome.make({
    value: entry.value,
    status,
    reason: options?.reason,
    age: Duration.millis(Math.max(0, now - entry.createdAt)),
    fetchedSynchronously: options?.fetchedSynchronously ?? false
  })

/**
 * Forks `effect` into `scope` and starts it at once, on the current fiber's runtime (so it keeps
 * the caller's services, clock and span), instead of queueing it behind the fibers already
 * scheduled: in a stampede of N callers the upstream call starts before the other N - 1 run.
 *
 * @internal
 */
export const forkNow = <A, E, R>(
  effect: Effect.Effect<A, E, R>,
  scope: Scope.Scope
): Effect.Effect<Fiber.RuntimeFiber<A, E>, never, R> =>
  Effect.flatMap(Effect.runtime<R>(), (runtime) => Effect.sync(() => Runtime.runFork(runtime, effect, { scope })))
