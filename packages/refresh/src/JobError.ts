/**
 * The errors of stale-while-revalidate jobs and refresh queues: a fetch that ran out of time, a
 * refresh request naming a job nobody registered, or carrying arguments that do not decode. The
 * upstream's own error type passes through jobs unchanged; these are the toolkit's few additions.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"

/**
 * A job or refresh queue failed. `Timeout`: the fetch took longer than the job's `timeout`.
 * `UnknownJob`: a refresh request names a job that is not in the `JobRegistry`. `InvalidArgs`:
 * a refresh request's arguments could not be encoded or decoded with the job's `argsSchema`.
 * `Rejected`: a refresh request the job does not own — its key is not the one the job derives
 * from its arguments, or (from a queue) its envelope is malformed or too large. A rejected
 * request never runs, and its key and arguments are not part of the error.
 *
 * @example
 * ```ts
 * import { Job, JobError, RefreshQueue } from "@stalewise/refresh"
 * import { CacheStore } from "@stalewise/core"
 * import { Effect, Layer } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const job = yield* Job.make({
 *     name: "slow",
 *     fetch: () => Effect.never,
 *     timeout: "1 second"
 *   })
 *   return yield* job.get()
 * }).pipe(
 *   Effect.catchTag("JobError", (error: JobError.JobError) => Effect.succeed(`gave up: ${error.reason}`)),
 *   Effect.scoped,
 *   Effect.provide(Layer.merge(CacheStore.layerMemory, RefreshQueue.layerFibers()))
 * )
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class JobError extends Schema.TaggedError<JobError>("@stalewise/refresh/JobError")("JobError", {
  reason: Schema.Literal("Timeout", "UnknownJob", "InvalidArgs", "Rejected"),
  /** The job's name. */
  job: Schema.String,
  /** The cache key concerned, when there is one. */
  key: Schema.optional(Schema.String),
  /** What happened, in words. */
  detail: Schema.String,
  cause: Schema.optional(Schema.Defect)
}) {
  /**
   * @since 0.1.0
   */
  override get message(): string {
    return `Job ${this.job}${this.key === undefined ? "" : ` (${this.key})`}: ${this.detail}`
  }
}

/**
 * @since 0.1.0
 * @category guards
 */
export const isJobError = (u: unknown): u is JobError => u instanceof JobError
