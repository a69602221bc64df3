/**
 * `BullRefreshQueue`: a `RefreshQueue` whose refreshes run in other processes, through BullMQ.
 * The app side (`layer`) turns each refresh request into a BullMQ job, named after the Stalewise
 * job, carrying the request as plain data; a request for a key that is already waiting, retrying
 * or running collapses into that job (BullMQ deduplication). The worker side (`layerWorker`)
 * takes jobs from the queue, finds each Stalewise job by name in its `JobRegistry`, decodes the
 * arguments with the job's `argsSchema`, refreshes and writes under the key the caller computed.
 * A failed refresh is retried with exponential back-off; a request that can never run (unknown
 * job, arguments that do not decode) fails at once. A worker that dies mid-job leaves a job that
 * BullMQ's stalled-job check hands to another worker.
 *
 * When Redis cannot take a request, `offer` answers with the queue's `overflow` fallback within
 * the client's `commandTimeout` — the caller refreshes, or the request is dropped, counted and
 * logged — never a silent loss and never a hang.
 *
 * `bullmq` is an optional peer dependency, loaded only when one of these layers is built:
 * importing `RedisStore` or the package's main entry never loads it.
 *
 * @since 0.1.0
 */
import type * as PolicyError from "@stalewise/core/PolicyError"
import * as JobRegistry from "@stalewise/refresh/JobRegistry"
import * as RefreshQueue from "@stalewise/refresh/RefreshQueue"
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import * as internal from "./internal/bullRefreshQueue.js"
import type * as RedisClient from "./RedisClient.js"

/**
 * The BullMQ queue both sides use unless told otherwise: `"stalewise-refresh"`.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultQueueName: string = internal.defaultQueueName

/**
 * Which BullMQ queue to use; the app and its workers must agree on both.
 *
 * @since 0.1.0
 * @category models
 */
export interface QueueOptions {
  /** The BullMQ queue's name: non-empty, without `:`. Default {@link defaultQueueName}. */
  readonly queueName?: string | undefined
  /**
   * BullMQ's own Redis key prefix (its keys are `${prefix}:${queueName}:…`): without `:`. Default
   * `"bull"`. On a Redis Cluster a prefix without a hash tag is wrapped in one (`{bull}`), as
   * BullMQ needs every key of a queue in one slot; the app and its workers do the same.
   */
  readonly prefix?: string | undefined
  /**
   * The largest refresh request, in bytes of JSON: the app does not enqueue a larger one (the
   * queue's `overflow` fallback applies) and a worker rejects one. Default 64 KiB.
   */
  readonly maxPayloadBytes?: number | undefined
}

/**
 * Options of the app side, {@link layer}.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options extends QueueOptions {
  /**
   * What `offer` answers when Redis cannot take a request (down, too slow, refused), or when the
   * job has no `argsSchema`: `skip` (default: counted as `dropped`, logged) or
   * `refresh-synchronously` (the reader refreshes itself).
   */
  readonly overflow?: RefreshQueue.Overflow | undefined
  /** How many times a refresh runs before it is given up: the first run and the retries. Default 3. */
  readonly attempts?: number | undefined
  /** The exponential back-off between attempts: `initial` (default 1 second) doubles at each retry. */
  readonly backoff?: {
    readonly initial?: Duration.DurationInput | undefined
    /** A random share of each delay, in `[0, 1]`, taken off it so that retries spread. Default 0. */
    readonly jitter?: number | undefined
  } | undefined
  /** How many failed jobs BullMQ keeps for inspection (completed ones are removed at once). Default 1,000. */
  readonly keepFailed?: number | undefined
}

/**
 * Options of the worker side, {@link layerWorker}.
 *
 * @since 0.1.0
 * @category models
 */
export interface WorkerOptions extends QueueOptions {
  /** How many refreshes this worker runs at once. Default 4. */
  readonly concurrency?: number | undefined
  /**
   * How long a worker's hold on a running job lasts without being renewed (it is renewed every
   * half of it while the job runs). A worker that dies loses its jobs once this has passed.
   * Default 30 seconds.
   */
  readonly lockDuration?: Duration.DurationInput | undefined
  /**
   * How often this worker looks for jobs whose worker died (their hold ran out) and puts them
   * back in the queue. Default 30 seconds.
   */
  readonly stalledInterval?: Duration.DurationInput | undefined
  /** How many times one job may be recovered from a dead worker before it fails. Default 1. */
  readonly maxStalledCount?: number | undefined
  /**
   * How long starting the BullMQ worker may take to reach Redis, and how long a job waits for the
   * `RedisClient`'s connection (the one its refresh reads and writes the cache through) when it
   * is down, e.g. still reconnecting after an outage. Default 10 seconds.
   */
  readonly connectTimeout?: Duration.DurationInput | undefined
  /**
   * When the layer is released: how long to wait for running refreshes to finish before they are
   * interrupted (their jobs then fail and are retried, or recovered as stalled). Default 10 seconds.
   */
  readonly shutdownTimeout?: Duration.DurationInput | undefined
  /** This worker's name, shown by BullMQ on the jobs it processes. */
  readonly workerName?: string | undefined
}

/**
 * The BullMQ deduplication id of a request: its job name and key, with `%`, `/` and `:` escaped
 * (BullMQ rejects `:` in ids). While a job with this id is waiting, delayed (retrying) or
 * running, another request for the same key is a `duplicate`; once it has completed or failed
 * for good, the next request is enqueued again. Useful to look a refresh up in BullMQ.
 *
 * @example
 * ```ts
 * import { BullRefreshQueue } from "@stalewise/redis"
 *
 * BullRefreshQueue.deduplicationId({ job: "price", key: "refresh:price:A-1" }) // "price/refresh%3Aprice%3AA-1"
 * ```
 *
 * @since 0.1.0
 * @category utils
 */
export const deduplicationId: (request: { readonly job: string; readonly key: string }) => string =
  internal.deduplicationId

/**
 * Builds the app side over the `RedisClient` in context (its `commandTimeout` bounds every
 * `offer`): `offer` adds a BullMQ job named after the Stalewise job, whose data is the
 * Schema-encoded request and whose deduplication id is {@link deduplicationId}. It answers
 * `enqueued`, `duplicate` (a job for that key is waiting, retrying or running), or — when Redis
 * fails, times out, or the job has no `argsSchema` (its live arguments cannot cross a process
 * boundary) — the `overflow` fallback. The queue is closed with the scope; the connection stays
 * its owner's.
 *
 * Fails with `PolicyError` for invalid options and `RedisError` when BullMQ cannot use the
 * connection. Dies when `bullmq` is not installed.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: (
  options?: Options
) => Effect.Effect<
  RefreshQueue.RefreshQueue.Service,
  PolicyError.PolicyError | RedisClient.RedisError,
  RedisClient.RedisClient | JobRegistry.JobRegistry | Scope.Scope
> = internal.make

/**
 * The app side, with a `JobRegistry` of its own where jobs register as they are defined: every
 * background refresh becomes a BullMQ job for a worker process (see {@link layerWorker}).
 * Give the `RedisClient` `RedisStore.clientDefaults`, so that `offer` fails fast while Redis is
 * down; it may be the store's own client, or one for a separate Redis kept for queues.
 *
 * @example
 * ```ts
 * import { Job } from "@stalewise/refresh"
 * import { BullRefreshQueue, RedisClient, RedisStore } from "@stalewise/redis"
 * import { Effect, Layer, Schema } from "effect"
 *
 * const RedisLive = RedisClient.layer({ host: "127.0.0.1", port: 6379, ...RedisStore.clientDefaults })
 * const AppLive = Layer.mergeAll(
 *   RedisStore.layerFromClient({ keyPrefix: "myapp:" }),
 *   BullRefreshQueue.layer({ queueName: "myapp-refresh", overflow: "refresh-synchronously" })
 * ).pipe(Layer.provide(RedisLive))
 *
 * const program = Effect.gen(function*() {
 *   const price = yield* Job.make({
 *     name: "price",
 *     argsSchema: Schema.Tuple(Schema.String), // requests cross a process boundary
 *     fetch: (sku: string) => Effect.succeed(sku.length * 1.5),
 *     lifetime: "1 minute"
 *   })
 *   return yield* price.get("A-1") // stale values are refreshed by a worker process
 * }).pipe(Effect.scoped, Effect.provide(AppLive))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options?: Options
): Layer.Layer<
  RefreshQueue.RefreshQueue | JobRegistry.JobRegistry,
  PolicyError.PolicyError | RedisClient.RedisError,
  RedisClient.RedisClient
> => Layer.scoped(RefreshQueue.RefreshQueue, make(options)).pipe(Layer.provideMerge(JobRegistry.layer))

/**
 * Starts a BullMQ worker in the scope, on two connections of its own made with the options of
 * the `RedisClient` in context (BullMQ's worker connections wait through outages: offline queue
 * on, `maxRetriesPerRequest: null`). Each job is decoded as a `RefreshRequest` and run with
 * `JobRegistry.run` in this scope's runtime, once the `RedisClient`'s own connection is ready
 * (after an outage BullMQ's connections may be back before it: a refresh run then would fetch
 * and lose its value, as the store's writes fail fast while its connection is down):
 *
 * - `succeeded`, `skipped`: the job completes;
 * - the `RedisClient` not ready within `connectTimeout`: the job fails without running and BullMQ
 *   retries it with its back-off;
 * - `failed` (the fetch failed; the job kept the last good value): the job fails and BullMQ
 *   retries it with the back-off it was enqueued with, until its attempts are spent;
 * - `JobError` `UnknownJob` or `InvalidArgs`, or data that is not a request: the job fails at
 *   once, without retries, counted as `dropped` and logged.
 *
 * When the `RedisClient`'s connection is not ready yet (Redis down at startup, with its default
 * `whenUnreachable: "keep-trying"`), this does not wait: it logs one warning and starts the
 * BullMQ worker in the background once that connection is ready, without a restart (BullMQ sets
 * its connections up once: a first connect that is refused would break them for good). A start
 * that fails then (Redis gone again) is undone and tried again a second later.
 *
 * Closing the scope stops taking jobs and waits up to `shutdownTimeout` for running ones, then
 * interrupts them; before the worker started, it just stops waiting. Fails with `PolicyError`
 * for invalid options, and with `RedisError` when the `RedisClient` is ready but BullMQ's
 * connections are not within `connectTimeout`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeWorker: (
  options?: WorkerOptions
) => Effect.Effect<
  void,
  PolicyError.PolicyError | RedisClient.RedisError,
  RedisClient.RedisClient | JobRegistry.JobRegistry | Scope.Scope
> = internal.makeWorker

/**
 * The worker side: a BullMQ worker that runs refresh requests with the jobs in the
 * `JobRegistry` in context (see {@link makeWorker}). Build it **after** the jobs are defined —
 * provide the layer that defines them to it — so that no request arrives before its job is
 * registered, and the worker stops before the jobs go away.
 *
 * @example
 * ```ts
 * import { NodeRuntime } from "@effect/platform-node"
 * import { Job } from "@stalewise/refresh"
 * import { BullRefreshQueue, RedisClient, RedisStore } from "@stalewise/redis"
 * import { Effect, Layer, Schema } from "effect"
 *
 * // The jobs, defined as in the app (same names, same argsSchema).
 * const JobsLive = Layer.scopedDiscard(Job.make({
 *   name: "price",
 *   argsSchema: Schema.Tuple(Schema.String),
 *   fetch: (sku: string) => Effect.succeed(sku.length * 1.5),
 *   lifetime: "1 minute"
 * }))
 *
 * const RedisLive = RedisClient.layer({ host: "127.0.0.1", port: 6379, ...RedisStore.clientDefaults })
 * const Shared = Layer.mergeAll(
 *   RedisStore.layerFromClient({ keyPrefix: "myapp:" }),
 *   BullRefreshQueue.layer({ queueName: "myapp-refresh" })
 * ).pipe(Layer.provideMerge(RedisLive))
 *
 * const WorkerLive = BullRefreshQueue.layerWorker({ queueName: "myapp-refresh", concurrency: 8 }).pipe(
 *   Layer.provide(JobsLive),
 *   Layer.provide(Shared)
 * )
 *
 * // The worker process's entry point: runs until SIGINT/SIGTERM, then closes the worker gracefully.
 * export const main = () => NodeRuntime.runMain(Layer.launch(WorkerLive))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerWorker = (
  options?: WorkerOptions
): Layer.Layer<
  never,
  PolicyError.PolicyError | RedisClient.RedisError,
  RedisClient.RedisClient | JobRegistry.JobRegistry
> => Layer.scopedDiscard(makeWorker(options))
