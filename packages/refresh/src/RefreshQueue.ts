/**
 * `RefreshQueue`: where stale-while-revalidate jobs send their background refreshes. One service,
 * several layers: `layerFibers` forks a fiber per key, `layerQueue` feeds a bounded queue to
 * worker fibers, and a BullMQ layer (later) runs them in another process.
 *
 * A refresh request is plain data — the job's name, the key the caller computed, the arguments
 * (Schema-encoded when the job has an `argsSchema`) and the refresh lease — so it can be
 * serialised; whoever runs it finds the job by name in the `JobRegistry` and writes under the
 * key in the request, never one recomputed from decoded arguments.
 *
 * When a queue cannot take the work it says so, and the stated fallback applies — the caller
 * refreshes synchronously, or the request is dropped, counted (`refreshes{result=dropped}`) and
 * logged. Nothing is lost silently.
 *
 * @since 0.1.0
 */
import { Diagnostics, PolicyError } from "@stalewise/core"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as FiberMap from "effect/FiberMap"
import * as Layer from "effect/Layer"
import * as Queue from "effect/Queue"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as internalMetrics from "./internal/metrics.js"
import * as JobRegistry from "./JobRegistry.js"

/**
 * @since 0.1.0
 * @category type ids
 */
export const TypeId: TypeId = "~@stalewise/refresh/RefreshQueue"

/**
 * @since 0.1.0
 * @category type ids
 */
export type TypeId = "~@stalewise/refresh/RefreshQueue"

/**
 * The schema of a refresh request, for queues that serialise them.
 *
 * @since 0.1.0
 * @category schemas
 */
export const RefreshRequest = Schema.Struct({
  /** The job's name in the `JobRegistry`. */
  job: Schema.String,
  /** The key the caller computed; the refresh writes here. */
  key: Schema.String,
  /** The arguments: encoded with the job's `argsSchema` if it has one, else the live values. */
  args: Schema.Unknown,
  /** When the request was made (epoch milliseconds); a refresh that finds a value fetched later skips. */
  requestedAt: Schema.Number,
  /** The `CacheStore` lease taken for this refresh, released when it lands or fails. */
  lease: Schema.optional(Schema.Struct({ key: Schema.String, token: Schema.String, expiresAt: Schema.Number }))
})

/**
 * A request to refresh one key.
 *
 * @since 0.1.0
 * @category models
 */
export interface RefreshRequest extends Schema.Schema.Type<typeof RefreshRequest> {}

/**
 * What became of an offered request:
 * - `enqueued`: the queue will run it (and release its lease);
 * - `duplicate`: a refresh of that key is already queued or running; this one is not needed;
 * - `dropped`: the queue could not take it and its fallback is to skip (already counted and logged);
 * - `run-synchronously`: the queue could not take it and its fallback is for the caller to
 *   refresh now.
 *
 * @since 0.1.0
 * @category models
 */
export type Offered = "enqueued" | "duplicate" | "dropped" | "run-synchronously"

/**
 * What to do when a queue cannot take a request (full, or shutting down): have the caller
 * refresh synchronously (`refresh-synchronously`), or drop it (`skip`), counted and logged.
 *
 * @since 0.1.0
 * @category models
 */
export type Overflow = "refresh-synchronously" | "skip"

/**
 * How a refresh run ended: the value was fetched and stored (`succeeded`), the fetch failed and
 * the last good value was kept (`failed`), or no fetch was needed (`skipped`: a fresher value
 * had landed meanwhile).
 *
 * @since 0.1.0
 * @category models
 */
export type RefreshResult = "succeeded" | "failed" | "skipped"

/**
 * The `RefreshQueue` service tag.
 *
 * @since 0.1.0
 * @category tags
 */
export class RefreshQueue extends Context.Tag("@stalewise/refresh/RefreshQueue")<
  RefreshQueue,
  RefreshQueue.Service
>() {}

/**
 * @since 0.1.0
 * @category models
 */
export declare namespace RefreshQueue {
  /**
   * The queue contract: take a request, or say why not. `offer` never fails and never waits for
   * the refresh itself, except under the `refresh-synchronously` fallback, which the caller runs.
   *
   * @since 0.1.0
   * @category models
   */
  export interface Service {
    readonly [TypeId]: TypeId
    readonly offer: (request: RefreshRequest) => Effect.Effect<Offered>
  }
}

/**
 * Builds a queue service from its `offer`, e.g. for a custom backend or a test.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  options: { readonly offer: (request: RefreshRequest) => Effect.Effect<Offered> }
): RefreshQueue.Service => ({
  [TypeId]: TypeId,
  offer: options.offer
})

/**
 * What happens to refreshes when the layer's scope closes: `interrupt` them (default; their
 * leases run out and the next read retries) or `drain` — take no new work and wait for what is
 * queued and running to finish.
 *
 * @since 0.1.0
 * @category models
 */
export type Shutdown = "interrupt" | "drain"

/**
 * Options of the fibers layer.
 *
 * @since 0.1.0
 * @category models
 */
export interface FibersOptions {
  /** How many refreshes run at once; the rest wait for a slot. Default 4. */
  readonly concurrency?: number | undefined
  /** The most refreshes held at once (running and waiting). Default: no bound beyond one per key. */
  readonly capacity?: number | undefined
  /** What happens to a request beyond `capacity`. Default `skip`. */
  readonly overflow?: Overflow | undefined
  /** Default `interrupt`. */
  readonly shutdown?: Shutdown | undefined
}

/**
 * Options of the in-process queue layer.
 *
 * @since 0.1.0
 * @category models
 */
export interface QueueOptions {
  /** The most requests waiting in the queue (not counting those running). Default 1,000. */
  readonly capacity?: number | undefined
  /** Worker fibers taking requests from the queue. Default 4. */
  readonly workers?: number | undefined
  /** What happens to a request when the queue is full. Default `skip`. */
  readonly overflow?: Overflow | undefined
  /** Default `interrupt`; requests still queued when the workers stop are counted as dropped and logged. */
  readonly shutdown?: Shutdown | undefined
  /** The `queue` label of `CacheMetrics.refreshQueueDepth`. Default `refresh`. */
  readonly name?: string | undefined
}

const positiveInteger = (option: string, n: number): Effect.Effect<number, PolicyError.PolicyError> =>
  PolicyError.positiveInteger(option, n)

/** Counts and logs a request that will not run. */
// Every drop is counted; the warnings are rate-limited per job (a queue that is down drops
// every request: one line per interval says so, with how many).
const dropWarnings = Diagnostics.makeWarnings()

const drop = (request: RefreshRequest, why: string): Effect.Effect<void> =>
  Effect.suspend(() => {
    internalMetrics.countRefresh(request.job, "dropped")
    return dropWarnings.warn(`refresh-dropped/${request.job}`, `stalewise: refresh dropped (${why})`, {
      job: request.job,
      key: request.key
    })
  })

const rejected = (request: RefreshRequest, overflow: Overflow, why: string): Effect.Effect<Offered> =>
  overflow === "skip" ? Effect.as(drop(request, why), "dropped" as const) : Effect.succeed("run-synchronously" as const)

const rejectWarnings = Diagnostics.makeWarnings()

/**
 * Counts and logs a refresh request that must never run (a forged key, a job name that does not
 * match, a payload too large or malformed): `CacheMetrics.refreshes{result=rejected}` under the
 * job's name when the registry knows it (`<unknown>` otherwise, so that made-up names cannot
 * multiply metric series), and one rate-limited warning naming the job and `why`. The request's
 * key and arguments are never logged. For queues whose requests come from outside the process.
 *
 * @example
 * ```ts
 * import { RefreshQueue } from "@stalewise/refresh"
 *
 * const onForgedRequest = RefreshQueue.reject("price", "its key is not one the job derives")
 * ```
 *
 * @since 0.1.0
 * @category combinators
 */
export const reject = (job: string | undefined, why: string): Effect.Effect<void> =>
  Effect.suspend(() => {
    const label = job ?? "<unknown>"
    internalMetrics.countRefresh(label, "rejected")
    return rejectWarnings.warn(`refresh-rejected/${label}/${why}`, `stalewise: refresh request rejected (${why})`, {
      job: label
    })
  })

/**
 * The answer of a queue that cannot take a request (full, shutting down, its backend
 * unreachable), by its `overflow` fallback: `skip` counts the request in
 * `CacheMetrics.refreshes{result=dropped}`, logs `reason` at warning level and answers `dropped`;
 * `refresh-synchronously` answers `run-synchronously` (the caller refreshes and does its own
 * accounting). For custom queues, so that every queue loses nothing silently in the same way.
 *
 * @example
 * ```ts
 * import { RefreshQueue } from "@stalewise/refresh"
 *
 * // A queue that is always full.
 * const Full = RefreshQueue.make({ offer: (request) => RefreshQueue.fallback(request, "skip", "always full") })
 * ```
 *
 * @since 0.1.0
 * @category combinators
 */
export const fallback = (request: RefreshRequest, overflow: Overflow, reason: string): Effect.Effect<Offered> =>
  rejected(request, overflow, reason)

/** Runs a request through the registry; a request that cannot run is dropped, counted and logged. */
const runRequest = (registry: JobRegistry.JobRegistry.Service, request: RefreshRequest): Effect.Effect<void> =>
  registry.lookup(request.job).pipe(
    Effect.flatMap((entry) => entry.run(request)),
    Effect.catchAll((error) => drop(request, error.message)),
    Effect.asVoid
  )

/**
 * Builds the fibers queue: each request runs in a fiber of its own, forked in the scope,
 * deduplicated by key, at most `concurrency` at once.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeFibers = (
  options: FibersOptions = {}
): Effect.Effect<RefreshQueue.Service, PolicyError.PolicyError, JobRegistry.JobRegistry | Scope.Scope> =>
  Effect.gen(function*() {
    const concurrency = yield* positiveInteger("concurrency", options.concurrency ?? 4)
    const capacity = options.capacity === undefined ? undefined : yield* positiveInteger("capacity", options.capacity)
    const overflow = options.overflow ?? "skip"
    const registry = yield* JobRegistry.JobRegistry
    const fibers = yield* FiberMap.make<string>()
    const slots = yield* Effect.makeSemaphore(concurrency)
    let open = true
    // Added after the FiberMap, so it runs before the FiberMap interrupts what is left.
    yield* Effect.addFinalizer(() =>
      Effect.suspend(() => {
        open = false
        return options.shutdown === "drain" ? Effect.ignore(FiberMap.awaitEmpty(fibers)) : Effect.void
      })
    )
    return make({
      offer: (request) =>
        Effect.suspend((): Effect.Effect<Offered> => {
          if (!open) return rejected(request, overflow, "refresh queue is shutting down")
          if (FiberMap.unsafeHas(fibers, request.key)) return Effect.succeed("duplicate")
          return Effect.flatMap(FiberMap.size(fibers), (size) =>
            capacity !== undefined && size >= capacity
              ? rejected(request, overflow, `refresh queue full (${capacity})`)
              : Effect.as(
                FiberMap.run(fibers, request.key, slots.withPermits(1)(runRequest(registry, request))),
                "enqueued"
              ))
        })
    })
  })

/**
 * Builds the in-process queue: a bounded queue of requests and `workers` fibers taking from it,
 * deduplicated by key, its depth published in `CacheMetrics.refreshQueueDepth`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeQueue = (
  options: QueueOptions = {}
): Effect.Effect<RefreshQueue.Service, PolicyError.PolicyError, JobRegistry.JobRegistry | Scope.Scope> =>
  Effect.gen(function*() {
    const capacity = yield* positiveInteger("capacity", options.capacity ?? 1_000)
    const workers = yield* positiveInteger("workers", options.workers ?? 4)
    const overflow = options.overflow ?? "skip"
    const setDepth = internalMetrics.depthGauge(options.name ?? "refresh")
    const registry = yield* JobRegistry.JobRegistry
    const queue = yield* Queue.dropping<RefreshRequest>(capacity)
    // Keys queued or running, for deduplication; `idle` is open when there are none.
    const pending = new Set<string>()
    const idle = yield* Effect.makeLatch(true)
    let open = true
    const publishDepth = Effect.map(Queue.size(queue), (size) => setDepth(Math.max(0, size)))

    // Finalizers run last-added first: stop taking work (and drain), then stop the workers, then
    // account for whatever is still queued.
    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        const left = yield* Queue.takeAll(queue)
        for (const request of left) yield* drop(request, "refresh queue shut down before it ran")
        yield* Queue.shutdown(queue)
        setDepth(0)
      })
    )
    const settle = (key: string) =>
      Effect.sync(() => {
        pending.delete(key)
        if (pending.size === 0) idle.unsafeOpen()
      })
    const worker = Queue.take(queue).pipe(
      Effect.tap(() => publishDepth),
      Effect.flatMap((request) => Effect.ensuring(runRequest(registry, request), settle(request.key))),
      Effect.forever
    )
    for (let i = 0; i < workers; i++) yield* Effect.forkScoped(worker)
    yield* Effect.addFinalizer(() =>
      Effect.suspend(() => {
        open = false
        return options.shutdown === "drain" ? idle.await : Effect.void
      })
    )

    return make({
      offer: (request) =>
        Effect.suspend((): Effect.Effect<Offered> => {
          if (!open) return rejected(request, overflow, "refresh queue is shutting down")
          if (pending.has(request.key)) return Effect.succeed("duplicate")
          pending.add(request.key)
          idle.unsafeClose()
          return Effect.flatMap(Queue.offer(queue, request), (taken) =>
            taken
              ? Effect.as(publishDepth, "enqueued" as const)
              : Effect.zipRight(settle(request.key), rejected(request, overflow, `refresh queue full (${capacity})`)))
        })
    })
  })

/**
 * The fibers layer, with a `JobRegistry` of its own: a refresh per key forked in the layer's
 * scope, deduplicated by key, at most `concurrency` at once; interrupted (or drained, with
 * `shutdown: "drain"`) when the scope closes.
 *
 * @example
 * ```ts
 * import { CacheStore } from "@stalewise/core"
 * import { RefreshQueue } from "@stalewise/refresh"
 * import { Layer } from "effect"
 *
 * const Live = Layer.merge(CacheStore.layerMemory, RefreshQueue.layerFibers({ concurrency: 8 }))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerFibers = (
  options?: FibersOptions
): Layer.Layer<RefreshQueue | JobRegistry.JobRegistry, PolicyError.PolicyError> =>
  Layer.scoped(RefreshQueue, makeFibers(options)).pipe(Layer.provideMerge(JobRegistry.layer))

/**
 * The in-process queue layer, with a `JobRegistry` of its own: a bounded queue and worker
 * fibers; beyond `capacity` the `overflow` fallback applies. Workers stop when the scope closes
 * (after draining, with `shutdown: "drain"`).
 *
 * @example
 * ```ts
 * import { CacheStore } from "@stalewise/core"
 * import { RefreshQueue } from "@stalewise/refresh"
 * import { Layer } from "effect"
 *
 * const Live = Layer.merge(
 *   CacheStore.layerMemory,
 *   RefreshQueue.layerQueue({ capacity: 10_000, workers: 4, overflow: "refresh-synchronously" })
 * )
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerQueue = (
  options?: QueueOptions
): Layer.Layer<RefreshQueue | JobRegistry.JobRegistry, PolicyError.PolicyError> =>
  Layer.scoped(RefreshQueue, makeQueue(options)).pipe(Layer.provideMerge(JobRegistry.layer))
