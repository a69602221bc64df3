/** @internal */
import * as Diagnostics from "@stalewise/core/Diagnostics"
import * as PolicyError from "@stalewise/core/PolicyError"
import * as TimePolicy from "@stalewise/core/TimePolicy"
import { JobError } from "@stalewise/refresh/JobError"
import * as JobRegistry from "@stalewise/refresh/JobRegistry"
import * as RefreshQueue from "@stalewise/refresh/RefreshQueue"
import type * as BullMQModule from "bullmq"
import type { Job as BullJob, Queue as BullQueue, Worker as BullWorker } from "bullmq"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import * as Exit from "effect/Exit"
import * as FiberSet from "effect/FiberSet"
import * as Option from "effect/Option"
import * as Runtime from "effect/Runtime"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import type { Cluster, Redis } from "ioredis"
import * as Crypto from "node:crypto"
import type * as BullRefreshQueue from "../BullRefreshQueue.js"
import * as RedisClient from "../RedisClient.js"

/** @internal */
export const defaultQueueName = "stalewise-refresh"

type BullMQ = typeof BullMQModule

// bullmq is an optional peer dependency: loaded when a layer is built, never by importing this
// package. Its absence is a deployment mistake, not a runtime condition to handle: a defect.
const loadBullMQ: Effect.Effect<BullMQ> = Effect.tryPromise({
  try: () => import("bullmq"),
  catch: (cause) =>
    new Error(
      "@stalewise/redis: BullRefreshQueue needs the optional peer dependency bullmq (npm install bullmq)",
      { cause }
    )
}).pipe(Effect.orDie)

// --- Options ---------------------------------------------------------------------------------------

const invalid = (option: string, detail: string) =>
  new PolicyError.PolicyError({ reason: "InvalidValue", option, detail })

const segment = (option: string, value: string): Either.Either<string, PolicyError.PolicyError> =>
  value === "" || value.includes(":")
    ? Either.left(invalid(option, `${JSON.stringify(value)} must be non-empty, without ":"`))
    : Either.right(value)

/**
 * BullMQ's key prefix on the given connection. On a Redis Cluster every key of a queue must share
 * one hash slot (BullMQ's scripts touch several of them): a prefix without a hash tag is wrapped
 * in one (`bull` becomes `{bull}`), the same way in the app and its workers.
 *
 * @internal
 */
export const clusterPrefix = (prefix: string, cluster: boolean): string =>
  cluster && !/\{[^}]+\}/.test(prefix) ? `{${prefix}}` : prefix

const resolveQueue = Effect.fnUntraced(
  function*(options: BullRefreshQueue.QueueOptions, client: RedisClient.Connection) {
    const queueName = yield* segment("queueName", options.queueName ?? defaultQueueName)
    const prefix = clusterPrefix(yield* segment("prefix", options.prefix ?? "bull"), RedisClient.isCluster(client))
    const maxPayloadBytes = yield* PolicyError.positiveInteger("maxPayloadBytes", options.maxPayloadBytes ?? 64 * 1024)
    return { queueName, prefix, maxPayloadBytes }
  }
)

const millis = (option: string, input: Duration.DurationInput) =>
  Either.map(TimePolicy.finiteDuration(option, input), Duration.toMillis)

// --- Ids -------------------------------------------------------------------------------------------

const escapeId = (segment: string): string =>
  segment.replace(/[%/:]/g, (c) => c === "%" ? "%25" : c === "/" ? "%2F" : "%3A")

/** @internal */
export const deduplicationId = (request: { readonly job: string; readonly key: string }): string =>
  `${escapeId(request.job)}/${escapeId(request.key)}`

// --- Logging from BullMQ's callbacks ---------------------------------------------------------------

const logger = (runtime: Runtime.Runtime<never>) => (effect: Effect.Effect<void>): void => {
  Runtime.runFork(runtime)(effect)
}

// BullMQ reports connection trouble as "error" events (an EventEmitter without a listener would
// throw them); like RedisClient's, they go to the Effect logger at debug level.
const describeError = (error: unknown): string => error instanceof Error ? error.message : String(error)

// --- The app side ----------------------------------------------------------------------------------

const encodeRequest = Schema.encodeEither(RefreshQueue.RefreshRequest)

/** @internal */
export const make = Effect.fnUntraced(function*(
  options: BullRefreshQueue.Options = {}
): Effect.fn.Return<
  RefreshQueue.RefreshQueue.Service,
  PolicyError.PolicyError | RedisClient.RedisError,
  RedisClient.RedisClient | JobRegistry.JobRegistry | Scope.Scope
> {
  const redis = yield* RedisClient.RedisClient
  const { maxPayloadBytes, prefix, queueName } = yield* resolveQueue(options, redis.client)
  const overflow = options.overflow ?? "skip"
  const attempts = yield* PolicyError.positiveInteger("attempts", options.attempts ?? 3)
  const backoffDelay = yield* millis("backoff.initial", options.backoff?.initial ?? "1 second")
  const jitter = options.backoff?.jitter ?? 0
  if (!(jitter >= 0 && jitter <= 1)) return yield* invalid("backoff.jitter", `${jitter} is not in [0, 1]`)
  const keepFailed = yield* PolicyError.positiveInteger("keepFailed", options.keepFailed ?? 1_000)

  const registry = yield* JobRegistry.JobRegistry
  const bullmq = yield* loadBullMQ
  const log = logger(yield* Effect.runtime<never>())

  const queue: BullQueue = yield* Effect.acquireRelease(
    Effect.sync(() => {
      const queue = new bullmq.Queue(queueName, {
        // Shared: BullMQ uses the caller's connection as it is and never closes it.
        connection: redis.client,
        prefix,
        defaultJobOptions: {
          attempts,
          backoff: { type: "exponential", delay: backoffDelay, jitter },
          // Completed jobs are of no further use (deduplication does not need them); failed ones
          // are kept, a bounded number, for inspection.
          removeOnComplete: true,
          removeOnFail: { count: keepFailed }
        }
      })
      queue.on("error", (error) =>
        log(
          Effect.logDebug("stalewise: BullMQ queue error", describeError(error)).pipe(
            Effect.annotateLogs({ queue: queueName })
          )
        ))
      return queue
    }),
    // The connection is not BullMQ's to close, so this has nothing to wait for; bounded all the same.
    (queue) => Effect.ignore(Effect.timeout(Effect.interruptible(closeQuietly(queue.close())), "5 seconds"))
  )
  // BullMQ loads its scripts and checks the server's version on the shared connection once it is
  // ready. While Redis is down that waits for it (BullMQ's own `add` would wait too): the layer
  // builds at once and `offer` answers with the fallback until the queue is ready.
  let ready = false
  const becomeReady = redis.use("bullmq.connect", () => queue.waitUntilReady()).pipe(
    Effect.tap(() => Effect.sync(() => ready = true))
  )
  if (redis.client.status === "ready") {
    yield* becomeReady
  } else {
    yield* Effect.forkScoped(
      becomeReady.pipe(
        Effect.catchAll((error) =>
          Effect.logWarning("stalewise: BullMQ could not use the Redis connection", error.message).pipe(
            Effect.annotateLogs({ queue: queueName })
          )
        )
      )
    )
  }

  let open = true
  yield* Effect.addFinalizer(() => Effect.sync(() => open = false))
  // Redis down: every stale read falls back; one line per job per interval says so
  const notEnqueued = Diagnostics.makeWarnings()

  const unavailable = (request: RefreshQueue.RefreshRequest, reason: string): Effect.Effect<RefreshQueue.Offered> =>
    overflow === "skip"
      ? RefreshQueue.fallback(request, overflow, reason)
      : Effect.zipRight(
        notEnqueued.warn(
          `not-enqueued/${request.job}`,
          `stalewise: refresh not enqueued (${reason}), the caller refreshes`,
          { job: request.job, key: request.key }
        ),
        RefreshQueue.fallback(request, overflow, reason)
      )

  const add = (request: RefreshQueue.RefreshRequest): Effect.Effect<RefreshQueue.Offered> => {
    const data = encodeRequest(request)
    if (Either.isLeft(data)) return unavailable(request, "the request does not encode")
    if (payloadBytes(data.right) > maxPayloadBytes) {
      return unavailable(request, `the request is larger than maxPayloadBytes (${maxPayloadBytes})`)
    }
    const deduplication = deduplicationId(request)
    // A fresh id per offer: when BullMQ answers with another id, a job for the key was there.
    const jobId = `${deduplication}/${Crypto.randomUUID()}`
    const added = redis.use(
      "bullmq.add",
      () => queue.add(request.job, data.right, { jobId, deduplication: { id: deduplication } })
    )
    return added.pipe(
      Effect.map((job): RefreshQueue.Offered => job.id === jobId ? "enqueued" : "duplicate"),
      Effect.catchAll((error) => unavailable(request, error.message)),
      Effect.withSpan("stalewise.bullmq.add", {
        kind: "producer",
        attributes: { "stalewise.job": request.job, "messaging.destination.name": queueName }
      })
    )
  }

  return RefreshQueue.make({
    offer: (request) =>
      Effect.suspend(() => {
        if (!open) return unavailable(request, "refresh queue is shutting down")
        // Not ready yet, or the connection is down: BullMQ would hold the request until it is.
        if (!ready || redis.client.status !== "ready") return unavailable(request, "Redis is not connected")
        return registry.lookup(request.job).pipe(
          Effect.map((entry) => entry.serializable),
          // A job this process does not know may be known to the workers: send it.
          Effect.orElseSucceed(() => true),
          Effect.flatMap((serializable) =>
            serializable
              ? add(request)
              : unavailable(request, "the job has no argsSchema: its requests cannot cross a process boundary")
          )
        )
      })
  })
})

// --- The worker side -------------------------------------------------------------------------------

type Processed =
  | { readonly _tag: "Done"; readonly result: "succeeded" | "skipped" }
  | { readonly _tag: "Failed" }
  | { readonly _tag: "Unrecoverable"; readonly error: JobError }
  | { readonly _tag: "NotConnected" }

/**
 * Waits, up to `timeout`, for `client` to be ready; `false` when it is not. A refresh reads and
 * writes the cache through the process's `RedisClient`, which fails fast while it is down (its
 * store must answer now) and reconnects on its own jittered timer, apart from BullMQ's
 * connections: after an outage those may be back first and hand over a job whose fetched value
 * the store would drop (and BullMQ would count the job done).
 */
const awaitReady = (client: RedisClient.Connection, timeout: Duration.Duration): Effect.Effect<boolean> =>
  Effect.suspend(() =>
    client.status === "ready"
      ? Effect.succeed(true)
      : whenReady(client).pipe(Effect.timeoutTo({ duration: timeout, onTimeout: () => false, onSuccess: () => true }))
  )

/** Completes once `client` is ready, however long that takes; interruptible. */
const whenReady = (client: RedisClient.Connection): Effect.Effect<void> =>
  Effect.suspend(() =>
    client.status === "ready"
      ? Effect.void
      : Effect.async<void>((resume) => {
        const onReady = () => resume(Effect.void)
        client.once("ready", onReady)
        return Effect.sync(() => client.off("ready", onReady))
      })
  )

const decodeRequest = Schema.decodeUnknown(RefreshQueue.RefreshRequest)

// JSON's length in UTF-16 code units is within a factor of 3 of its UTF-8 bytes: a bound, not a
// measurement, that costs no encoding.
const payloadBytes = (data: unknown): number => {
  try {
    return (JSON.stringify(data) ?? "").length
  } catch {
    return Infinity
  }
}

/**
 * What a worker accepts: a job whose BullMQ name and `data.job` agree, whose payload is at most
 * `maxPayloadBytes`, that decodes as a refresh request for a registered job that owns its key
 * (see `JobRegistry`). Anything else is rejected: unrecoverable (never retried), counted and
 * logged without its payload.
 */
const processJob = (
  job: BullJob,
  maxPayloadBytes: number
): Effect.Effect<Processed, never, JobRegistry.JobRegistry> =>
  Effect.gen(function*() {
    const registry = yield* JobRegistry.JobRegistry
    // the job's label in metrics and logs: a registered name, never a made-up one
    const entry = yield* Effect.option(registry.lookup(job.name))
    const known = Option.isSome(entry) ? job.name : undefined
    const rejected = (reason: JobError["reason"], detail: string) =>
      Effect.as(
        RefreshQueue.reject(known, detail),
        { _tag: "Unrecoverable", error: new JobError({ reason, job: known ?? "<unknown>", detail }) } as const
      )
    const data: unknown = job.data
    if (typeof data !== "object" || data === null || (data as { job?: unknown }).job !== job.name) {
      return yield* rejected("Rejected", "the BullMQ job's name and its data.job differ")
    }
    if (payloadBytes(data) > maxPayloadBytes) {
      return yield* rejected("Rejected", `the request is larger than maxPayloadBytes (${maxPayloadBytes})`)
    }
    const request = yield* Effect.either(decodeRequest(data))
    if (Either.isLeft(request)) {
      return yield* rejected(
        "InvalidArgs",
        `the BullMQ job's data is not a refresh request: ${Diagnostics.summarizeParseError(request.left)}`
      )
    }
    if (Option.isNone(entry)) return yield* rejected("UnknownJob", "no job of that name is registered")
    if (!entry.value.serializable) {
      return yield* rejected("Rejected", "the job has no argsSchema: it takes no requests from other processes")
    }
    return yield* entry.value.run(request.right).pipe(
      Effect.map((result): Processed => result === "failed" ? { _tag: "Failed" } : { _tag: "Done", result }),
      Effect.catchAll((error) => rejected(error.reason, error.detail))
    )
  }).pipe(
    Effect.withSpan("stalewise.bullmq.process", {
      kind: "consumer",
      attributes: { "messaging.message.id": job.id ?? "" }
    })
  )

// The connection BullMQ's worker duplicates for its own: offline queue on, no per-request retry
// limit and no command timeout (on a cluster, for every node).
const workerTemplate = (client: RedisClient.Connection): RedisClient.Connection => {
  if (RedisClient.isCluster(client)) {
    const { commandTimeout: _commandTimeout, ...redisOptions } = client.options.redisOptions ?? {}
    return (client as Cluster).duplicate([], {
      ...client.options,
      lazyConnect: true,
      enableOfflineQueue: true,
      redisOptions: { ...redisOptions, maxRetriesPerRequest: null }
    })
  }
  const template = (client as Redis).duplicate({
    lazyConnect: true,
    enableOfflineQueue: true,
    maxRetriesPerRequest: null
  })
  delete template.options.commandTimeout
  return template
}

// Awaits a BullMQ close, whatever it says: closing must not fail a finalizer.
const closeQuietly = (closing: Promise<void>): Effect.Effect<void> => Effect.ignore(Effect.tryPromise(() => closing))

/** @internal */
export const makeWorker = Effect.fnUntraced(function*(
  options: BullRefreshQueue.WorkerOptions = {}
): Effect.fn.Return<
  void,
  PolicyError.PolicyError | RedisClient.RedisError,
  RedisClient.RedisClient | JobRegistry.JobRegistry | Scope.Scope
> {
  const redis = yield* RedisClient.RedisClient
  const { maxPayloadBytes, prefix, queueName } = yield* resolveQueue(options, redis.client)
  const concurrency = yield* PolicyError.positiveInteger("concurrency", options.concurrency ?? 4)
  const lockDuration = yield* millis("lockDuration", options.lockDuration ?? "30 seconds")
  const stalledInterval = yield* millis("stalledInterval", options.stalledInterval ?? "30 seconds")
  const maxStalledCount = options.maxStalledCount ?? 1
  if (!(Number.isSafeInteger(maxStalledCount) && maxStalledCount >= 0)) {
    return yield* invalid("maxStalledCount", `${maxStalledCount} is not a non-negative integer`)
  }
  const connectTimeout = Duration.decode(options.connectTimeout ?? "10 seconds")
  const shutdownTimeout = Duration.decode(options.shutdownTimeout ?? "10 seconds")

  const bullmq = yield* loadBullMQ
  const log = logger(yield* Effect.runtime<never>())
  const annotate = Effect.annotateLogs({ queue: queueName })

  // Refreshes run as fibers of this scope, so that shutdown can interrupt what will not finish.
  const fibers = yield* FiberSet.make<Processed>()
  const run = yield* FiberSet.runtimePromise(fibers)<JobRegistry.JobRegistry>()

  const processor = async (job: BullJob): Promise<string> => {
    const processed = await run(
      Effect.flatMap(
        awaitReady(redis.client, connectTimeout),
        (ready): Effect.Effect<Processed, never, JobRegistry.JobRegistry> =>
          ready ? processJob(job, maxPayloadBytes) : Effect.succeed({ _tag: "NotConnected" })
      )
    )
    switch (processed._tag) {
      case "Done":
        return processed.result
      case "Unrecoverable":
        throw new bullmq.UnrecoverableError(processed.error.message)
      case "Failed": {
        const attempts = job.opts.attempts ?? 1
        const last = job.attemptsMade + 1 >= attempts
        log(
          (last
            ? Effect.logWarning(`stalewise: refresh failed ${attempts} times, given up`)
            : Effect.logDebug(`stalewise: refresh failed (attempt ${job.attemptsMade + 1} of ${attempts}), will retry`))
            .pipe(Effect.annotateLogs({ job: job.name, bullmqJob: job.id ?? "" }), annotate)
        )
        throw new Error(`refresh of ${job.name} failed`)
      }
      case "NotConnected": {
        // Not run: BullMQ retries it after its back-off, like a failed refresh.
        log(
          Effect.logWarning(
            `stalewise: this process's Redis connection was not ready within ${
              Duration.format(connectTimeout)
            }, the refresh is retried`
          ).pipe(Effect.annotateLogs({ job: job.name, bullmqJob: job.id ?? "" }), annotate)
        )
        throw new Error(`refresh of ${job.name} not run: Redis is not connected`)
      }
    }
  }

  // Creates and runs the BullMQ worker in the scope in context. BullMQ sets its connections up once,
  // lazily: if the first connect is refused, that setup fails for good. So it is done only once
  // this process's connection is ready (see below).
  const start = Effect.gen(function*() {
    // BullMQ makes its two connections (commands, and the blocking fetch) by duplicating this one.
    // No command timeout on them: the blocking fetch waits by design (ioredis applies
    // `commandTimeout` only when it is a number).
    // Worker connections wait through outages instead of failing: nobody is waiting on a worker.
    const template: RedisClient.Connection = yield* Effect.acquireRelease(
      Effect.sync(() => workerTemplate(redis.client)),
      (client) => Effect.sync(() => client.disconnect())
    )

    const worker: BullWorker = yield* Effect.acquireRelease(
      Effect.sync(() => {
        const worker = new bullmq.Worker(queueName, processor, {
          connection: template,
          prefix,
          autorun: false,
          concurrency,
          lockDuration,
          stalledInterval,
          maxStalledCount,
          ...(options.workerName === undefined ? {} : { name: options.workerName })
        })
        worker.on(
          "error",
          (error) => log(Effect.logDebug("stalewise: BullMQ worker error", describeError(error)).pipe(annotate))
        )
        worker.on("stalled", (jobId) =>
          log(
            Effect.logWarning("stalewise: a refresh's worker stopped renewing its hold (it died?); the job runs again")
              .pipe(Effect.annotateLogs({ bullmqJob: jobId }), annotate)
          ))
        return worker
      }),
      (worker) =>
        Effect.gen(function*() {
          // Stop taking jobs and wait for the running ones; past the timeout, interrupt them (their
          // jobs fail and are retried, their leases released), then let the close finish.
          const closing = worker.close()
          const closed = yield* Effect.interruptible(closeQuietly(closing)).pipe(
            Effect.timeout(shutdownTimeout),
            Effect.option
          )
          if (closed._tag === "Some") return
          yield* Effect.logWarning(
            `stalewise: refreshes still running after ${Duration.format(shutdownTimeout)}, interrupting them`
          ).pipe(annotate)
          yield* FiberSet.clear(fibers)
          const forced = yield* Effect.interruptible(closeQuietly(closing)).pipe(
            Effect.timeout(connectTimeout),
            Effect.option
          )
          if (forced._tag === "None") yield* closeQuietly(worker.disconnect())
        })
    )

    yield* Effect.tryPromise({
      try: () => worker.waitUntilReady(),
      catch: (cause) => new RedisClient.RedisError({ reason: "Connection", method: "bullmq.worker", cause })
    }).pipe(
      Effect.interruptible,
      Effect.timeoutFail({
        duration: connectTimeout,
        onTimeout: () => new RedisClient.RedisError({ reason: "Timeout", method: "bullmq.worker" })
      })
    )
    // `run` settles when the worker closes; its failures are reported as "error" events too.
    worker.run().catch((error) =>
      log(Effect.logWarning("stalewise: BullMQ worker stopped", describeError(error)).pipe(annotate))
    )
    yield* Effect.logDebug("stalewise: BullMQ refresh worker started").pipe(annotate)
  })

  if (redis.client.status === "ready") return yield* start
  // Redis is not reachable yet: the layer builds now, and the worker starts once this process's
  // `RedisClient` (which keeps trying) is ready. An attempt that fails (Redis gone again) is
  // undone and tried again; closing the scope interrupts the wait.
  yield* Effect.logWarning("stalewise: Redis is not reachable, the BullMQ refresh worker starts once it is").pipe(
    annotate
  )
  const scope = yield* Effect.scope
  const attempt = Effect.gen(function*() {
    yield* whenReady(redis.client)
    const attemptScope = yield* Scope.fork(scope, ExecutionStrategy.sequential)
    yield* Scope.extend(start, attemptScope).pipe(
      Effect.onError((cause) => Scope.close(attemptScope, Exit.failCause(cause)))
    )
  })
  yield* Effect.forkScoped(
    attempt.pipe(
      Effect.tapError((error) =>
        Effect.logWarning("stalewise: the BullMQ refresh worker could not start, trying again", error.message).pipe(
          annotate
        )
      ),
      Effect.retry(Schedule.spaced("1 second"))
    )
  )
})
