/**
 * `JobRegistry`: jobs by name. A refresh request names its job rather than carrying code, so
 * whoever runs the request — a fiber in this process or a worker in another one — finds the job
 * here (never by import path, as cacheback's workers did). A job runs a request only for a key it
 * owns: one it derives from the request's decoded arguments (a request from another process is
 * untrusted input), or one its own caller computed in this process.
 *
 * @since 0.1.0
 */
import { PolicyError } from "@stalewise/core"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import { JobError } from "./JobError.js"
import type { RefreshRequest, RefreshResult } from "./RefreshQueue.js"

/**
 * @since 0.1.0
 * @category type ids
 */
export const TypeId: TypeId = "~@stalewise/refresh/JobRegistry"

/**
 * @since 0.1.0
 * @category type ids
 */
export type TypeId = "~@stalewise/refresh/JobRegistry"

/**
 * What the registry knows of a job: how to run a refresh request for it.
 *
 * @since 0.1.0
 * @category models
 */
export interface Entry {
  /** The job's name, unique in a registry. */
  readonly name: string
  /**
   * Whether the job's requests carry Schema-encoded arguments (it has an `argsSchema`) and so
   * can cross a process boundary. Without one, arguments travel as live values, in-process only.
   */
  readonly serializable: boolean
  /**
   * Runs a refresh request: decodes its arguments, checks that the job owns `request.key` (the
   * key it derives from the decoded arguments, unless the job issued the request in this
   * process), fetches, stores under `request.key` and releases `request.lease` (only the lease
   * of that key). Refresh failures are handled (logged, counted, backed off) and reported as
   * `"failed"`; only a request that cannot run fails: `InvalidArgs`, or `Rejected` for a key the
   * job does not own.
   */
  readonly run: (request: RefreshRequest) => Effect.Effect<RefreshResult, JobError>
}

/**
 * The `JobRegistry` service tag. The `RefreshQueue` layers provide one along with the queue.
 *
 * @since 0.1.0
 * @category tags
 */
export class JobRegistry extends Context.Tag("@stalewise/refresh/JobRegistry")<JobRegistry, JobRegistry.Service>() {}

/**
 * @since 0.1.0
 * @category models
 */
export declare namespace JobRegistry {
  /**
   * The registry contract.
   *
   * @since 0.1.0
   * @category models
   */
  export interface Service {
    readonly [TypeId]: TypeId
    /**
     * Adds a job for the lifetime of the scope. Fails with `PolicyError` (option `name`) when a
     * job of that name is already registered: two jobs answering to one name would refresh each
     * other's keys.
     */
    readonly register: (entry: Entry) => Effect.Effect<void, PolicyError.PolicyError, Scope.Scope>
    /** The job registered under `name`, or `JobError` (reason `UnknownJob`). */
    readonly lookup: (name: string) => Effect.Effect<Entry, JobError>
    /** The names registered now, sorted. */
    readonly names: Effect.Effect<ReadonlyArray<string>>
  }
}

/**
 * Builds an in-memory registry.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: Effect.Effect<JobRegistry.Service> = Effect.sync(() => {
  const entries = new Map<string, Entry>()
  const registry: JobRegistry.Service = {
    [TypeId]: TypeId,
    register: (entry) =>
      Effect.suspend(() => {
        if (entries.has(entry.name)) {
          return Effect.fail(
            new PolicyError.PolicyError({
              reason: "InvalidCombination",
              option: "name",
              detail: `a job named ${JSON.stringify(entry.name)} is already registered`
            })
          )
        }
        entries.set(entry.name, entry)
        return Effect.addFinalizer(() =>
          Effect.sync(() => {
            if (entries.get(entry.name) === entry) entries.delete(entry.name)
          })
        )
      }),
    lookup: (name) =>
      Effect.suspend(() => {
        const entry = entries.get(name)
        return entry === undefined
          ? Effect.fail(new JobError({ reason: "UnknownJob", job: name, detail: "no job of that name is registered" }))
          : Effect.succeed(entry)
      }),
    names: Effect.sync(() => [...entries.keys()].sort())
  }
  return registry
})

/**
 * An in-memory registry. The `RefreshQueue` layers include one; use this one with a custom
 * `RefreshQueue`.
 *
 * @example
 * ```ts
 * import { JobRegistry, RefreshQueue } from "@stalewise/refresh"
 * import { Effect, Layer } from "effect"
 *
 * // A queue that runs nothing: every request is accepted and forgotten.
 * const Forgetful = Layer.succeed(RefreshQueue.RefreshQueue, RefreshQueue.make({ offer: () => Effect.succeed("enqueued") }))
 * const Live = Layer.merge(Forgetful, JobRegistry.layer)
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<JobRegistry> = Layer.effect(JobRegistry, make)

/**
 * Runs a refresh request with the job it names.
 *
 * @since 0.1.0
 * @category combinators
 */
export const run = (request: RefreshRequest): Effect.Effect<RefreshResult, JobError, JobRegistry> =>
  Effect.flatMap(JobRegistry, (registry) => Effect.flatMap(registry.lookup(request.job), (entry) => entry.run(request)))
