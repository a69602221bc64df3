/**
 * Stale-while-revalidate jobs: django-cacheback's `Job`, defined once — a name, a `fetch` and a
 * policy — and used through `get`, `getWithOutcome`, `invalidate`, `delete`, `peek`, `set`,
 * `refresh` and `refreshInBackground`.
 *
 * A read younger than `lifetime` is a hit. A stale read (`lifetime ≤ age < timeToLive`) is
 * served at once while one refresh is requested from the `RefreshQueue` — at most one per key per
 * `refreshLease`, across processes when the `CacheStore` is shared; past `syncRefreshAfter` the
 * read refreshes synchronously instead. A miss fetches synchronously (one fetch for all
 * concurrent callers), or returns `empty` and requests a refresh. A failed refresh keeps the last
 * good value and backs off; no refresh attempt ever resets a value's age.
 *
 * @since 0.1.0
 */
import type { CacheEntry, CacheKey, CacheStore, CacheTags, Outcome, PolicyError } from "@stalewise/core"
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import type { LazyArg } from "effect/Function"
import type * as Option from "effect/Option"
import type * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as internal from "./internal/job.js"
import type { JobError } from "./JobError.js"
import type * as JobRegistry from "./JobRegistry.js"
import type * as RefreshPolicy from "./RefreshPolicy.js"
import type * as RefreshQueue from "./RefreshQueue.js"

/**
 * @since 0.1.0
 * @category type ids
 */
export const TypeId: TypeId = internal.TypeId

/**
 * @since 0.1.0
 * @category type ids
 */
export type TypeId = "~@stalewise/refresh/Job"

/**
 * The options of a job besides its `fetch` and what a miss does: its identity, its policy (see
 * `RefreshPolicy.Options`) and how its keys and values are derived and stored.
 *
 * @since 0.1.0
 * @category models
 */
export interface CommonOptions<Args extends ReadonlyArray<any>, A, E = never>
  extends Omit<RefreshPolicy.Options, "fetchOnMiss">
{
  /**
   * The job's name: part of every key, and how refresh requests find the job in the
   * `JobRegistry` (unique there). Non-empty, without `:`.
   */
  readonly name: string
  /** The key namespace (`namespace:name:digest`); `deletePrefix` of it drops it whole. Default `refresh`. */
  readonly namespace?: string | undefined
  /**
   * The key's id, replacing the digest of the arguments (cacheback `key()`); two different ids
   * never collide. Exclusive with `prepareArgs`.
   */
  readonly key?: ((...args: Args) => string) | undefined
  /**
   * Maps the arguments to what the key digests (cacheback `prepare_args`), e.g. an entity to its
   * id, or dropping a request-scoped argument. `fetch` still receives the arguments as given.
   */
  readonly prepareArgs?: ((...args: Args) => unknown) | undefined
  /**
   * The value schema, for stores that serialise (`layerKeyValueStore`, Redis). The memory store
   * keeps live values and ignores it.
   */
  readonly schema?: Schema.Schema<NoInfer<A>, any> | undefined
  /**
   * The arguments' schema: with it, refresh requests carry Schema-encoded arguments and can cross
   * a process boundary (a distributed `RefreshQueue`); without it they carry the live values.
   * A request that left the process runs only if its key is exactly the key this job derives
   * from the decoded arguments (a forged or mismatched request is rejected), so the schema must
   * keep what the key is derived from; in-process requests run under the key the caller computed.
   */
  readonly argsSchema?: Schema.Schema<Readonly<NoInfer<Args>>, any> | undefined
  /**
   * What happens to a synchronous fetch (a miss, a refresh past `syncRefreshAfter`, `refresh`)
   * when every caller waiting for it was interrupted before it answered: `"complete"` (default)
   * lets it finish — bounded by `backgroundTimeout` from its start — and stores its value, so
   * the work is rarely wasted; `"interrupt"` interrupts it once its last waiter leaves. Waiters
   * are counted: one leaving never cancels the fetch the others wait for. Background refreshes
   * have no waiters: `backgroundTimeout` and the queue's shutdown govern them.
   */
  readonly onAbandon?: "complete" | "interrupt" | undefined
  /**
   * Whether hits and stale reads served at once run in a `stalewise.get` span too. Default false:
   * reads that wait for the upstream always do, but a span costs a hit several times its own
   * time (docs/observability.md).
   */
  readonly traceHits?: boolean | undefined
  /**
   * Negative caching, off by default: failures of a miss's fetch for which `when` holds (e.g.
   * "not found") are kept in this process for their own `timeToLive` (keep it short) and
   * returned to later reads of the key without asking the store or the upstream, counted with
   * status `negative`. Other failures are never cached; `set`, `delete`, `invalidate`,
   * `refresh`, `clear`, `CacheControl.forceRefresh` and invalidations heard on the bus forget
   * them. Cached failures are not written to the `CacheStore`.
   */
  readonly negative?: {
    readonly when: (error: NoInfer<E>) => boolean
    readonly timeToLive: Duration.DurationInput
  } | undefined
  /**
   * The tags of each value: fixed (`["users"]`) or computed from the arguments and the value.
   * `invalidateTag` of one of them makes the value stale (`soft`) or a miss (`hard`) — see
   * `CacheTags`.
   */
  readonly tags?: CacheTags.Tags<NoInfer<Args>, NoInfer<A>> | undefined
}

/**
 * What a miss does: fetch synchronously (`fetchOnMiss`, default true), or return `empty()` with
 * status `empty` and request a refresh. `empty` may have its own type — the job's value becomes
 * `A | Empty` — and it is required, by the type, whenever `fetchOnMiss` may be false.
 *
 * @since 0.1.0
 * @category models
 */
export type MissOptions<Empty> =
  | {
    /** Fetch synchronously on a miss (cacheback `fetch_on_miss`). Default true. */
    readonly fetchOnMiss?: true | undefined
    /** What a miss returns without fetching (cacheback `empty()`); unused while `fetchOnMiss` is true. */
    readonly empty?: LazyArg<Empty> | undefined
  }
  | {
    /** Fetch synchronously on a miss (cacheback `fetch_on_miss`). */
    readonly fetchOnMiss: boolean
    /**
     * What a miss returns without fetching (cacheback `empty()`); the outcome's status `empty`
     * tells it apart from data.
     */
    readonly empty: LazyArg<Empty>
  }

/**
 * The options of a job besides its `fetch`.
 *
 * @since 0.1.0
 * @category models
 */
export type BaseOptions<Args extends ReadonlyArray<any>, A, Empty = never, E = never> =
  & CommonOptions<Args, A, E>
  & MissOptions<Empty>

/**
 * The options of a job.
 *
 * @since 0.1.0
 * @category models
 */
export type Options<Args extends ReadonlyArray<any>, A, E, R, Empty = never> = BaseOptions<Args, A, Empty, E> & {
  /** Fetches the value from the upstream (cacheback `fetch`); its error `E` passes through unchanged. */
  readonly fetch: (...args: Args) => Effect.Effect<A, E, R>
  /**
   * Fetches many values in one upstream call, for `getMany`: one value per argument list, in
   * order. Without it, `getMany` fetches its misses one `fetch` per key (all at once).
   */
  readonly fetchMany?: ((argsList: ReadonlyArray<Args>) => Effect.Effect<ReadonlyArray<A>, E, R>) | undefined
}

/**
 * A stale-while-revalidate job. Every method derives the key from the arguments first and fails
 * with `CacheKeyError` for arguments that cannot be keyed, before any I/O.
 *
 * Reads honour `CacheControl.bypass` (fetch, read and store nothing) and
 * `CacheControl.forceRefresh` (as `refresh`). Reads (`get`, `getWithOutcome`, `refresh`,
 * `refreshInBackground`) degrade store failures:
 * they are logged (and counted by the store) and the upstream answers. The explicit store
 * operations (`invalidate`, `delete`, `peek`, `set`, `clear`) report them as `CacheStoreError`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Job<in out Args extends ReadonlyArray<any>, in out A, in out E> {
  readonly [TypeId]: TypeId
  readonly name: string
  readonly namespace: string
  readonly policy: RefreshPolicy.RefreshPolicy
  /** The key of these arguments, as every method derives it. */
  readonly key: (...args: Args) => Effect.Effect<string, CacheKey.CacheKeyError>
  /** The value: cached, stale (a refresh requested), or fetched. */
  readonly get: (...args: Args) => Effect.Effect<A, E | JobError | CacheKey.CacheKeyError>
  /**
   * The value with its story (the role of cacheback's `process_result`): `hit`; `stale` (served
   * from the cache, a refresh requested); `miss` (fetched in this call — a miss, or a stale value
   * past `syncRefreshAfter`); `failover` (a synchronous refresh failed, the stale value is served,
   * `reason` `error` or `timeout`); `empty` (the `empty` value, a refresh requested). A failure
   * kept by `negative` caching fails the call again as it did (counted with status `negative`).
   */
  readonly getWithOutcome: (...args: Args) => Effect.Effect<Outcome.Outcome<A>, E | JobError | CacheKey.CacheKeyError>
  /**
   * The values of many argument lists, in order: one store round trip for all their keys
   * (`CacheStore.getMany`), and the misses loaded through one `fetchMany` call (one `fetch` per
   * key without it). A key already loading — here, by a `get` or another batch — is joined, not
   * fetched twice; a batch's keys are joined the same way by concurrent reads. Hits, stale
   * reads and tags follow the rules of `get`. If `fetchMany` fails, every key it was loading
   * fails with its error.
   */
  readonly getMany: (
    argsList: ReadonlyArray<Args>
  ) => Effect.Effect<ReadonlyArray<A>, E | JobError | CacheKey.CacheKeyError>
  /** `getMany` with each value's outcome. */
  readonly getManyWithOutcome: (
    argsList: ReadonlyArray<Args>
  ) => Effect.Effect<ReadonlyArray<Outcome.Outcome<A>>, E | JobError | CacheKey.CacheKeyError>
  /**
   * Marks the entry stale (its age and expiry untouched, its value still served while the
   * refresh runs, and kept if it fails) and requests a refresh. Does nothing when nothing is
   * cached. When a fetch of the key is already running, that fetch's result is what lands: use
   * `refresh` to be sure of a fetch that started after the call.
   */
  readonly invalidate: (
    ...args: Args
  ) => Effect.Effect<void, CacheKey.CacheKeyError | CacheStore.CacheStoreError>
  /**
   * Removes the entry: the next read is a miss. A fetch of the key already running does not
   * write its value back (it still answers its own callers).
   */
  readonly delete: (...args: Args) => Effect.Effect<void, CacheKey.CacheKeyError | CacheStore.CacheStoreError>
  /** The stored entry with its timestamps, without any side effect (cacheback `raw_get`). */
  readonly peek: (
    ...args: Args
  ) => Effect.Effect<Option.Option<CacheEntry.CacheEntry<A>>, CacheKey.CacheKeyError | CacheStore.CacheStoreError>
  /**
   * Stores `value` for `args` as if just fetched. A fetch of the key already running — here, or
   * in another process that hears it on the `InvalidationBus` — does not overwrite it.
   */
  readonly set: (args: Args, value: A) => Effect.Effect<void, CacheKey.CacheKeyError | CacheStore.CacheStoreError>
  /**
   * Fetches now, stores and returns the value; fails as `fetch` does. The value comes from a
   * fetch that started after the call (read-your-writes after changing the source): a fetch of
   * the key already running is waited for first, so concurrent calls cost at most two fetches.
   */
  readonly refresh: (...args: Args) => Effect.Effect<A, E | JobError | CacheKey.CacheKeyError>
  /**
   * Requests a background refresh (cacheback `async_refresh`), through the refresh lease: when a
   * refresh of the key is already under way, nothing more is requested. Ignores the back-off.
   */
  readonly refreshInBackground: (...args: Args) => Effect.Effect<void, CacheKey.CacheKeyError>
  /**
   * Invalidates every entry tagged `tag` — this job's and any other strategy's sharing the
   * store — in one store write (`CacheTags.invalidate`): `soft` (default) makes them stale,
   * `hard` makes them misses.
   */
  readonly invalidateTag: (
    tag: string,
    options?: { readonly mode?: CacheTags.Mode | undefined }
  ) => Effect.Effect<void, CacheStore.CacheStoreError>
  /** Removes every entry of this job; returns how many. */
  readonly clear: Effect.Effect<number, CacheStore.CacheStoreError>
}

/**
 * What a job needs from its context, besides what its `fetch` needs.
 *
 * @since 0.1.0
 * @category models
 */
export type Requirements = CacheStore.CacheStore | RefreshQueue.RefreshQueue | JobRegistry.JobRegistry | Scope.Scope

/**
 * Defines a job: validates its policy (failing with `PolicyError` for invalid durations or
 * combinations), captures the services its `fetch` needs — so its methods need none — and
 * registers it in the `JobRegistry` for the lifetime of the scope. Fetches run in that scope:
 * interrupting a caller never cancels a fetch other callers wait on.
 *
 * @example
 * ```ts
 * import { CacheStore } from "@stalewise/core"
 * import { Job, RefreshQueue } from "@stalewise/refresh"
 * import { Effect, Layer } from "effect"
 *
 * const fetchTweets = (user: string) => Effect.succeed([`${user}: hello`])
 *
 * const program = Effect.gen(function*() {
 *   const tweets = yield* Job.make({ name: "tweets", fetch: fetchTweets, lifetime: "20 minutes" })
 *   const first = yield* tweets.getWithOutcome("ada") // miss: fetched synchronously
 *   const second = yield* tweets.getWithOutcome("ada") // hit
 *   return [first.status, second.status]
 * }).pipe(
 *   Effect.scoped,
 *   Effect.provide(Layer.merge(CacheStore.layerMemory, RefreshQueue.layerFibers()))
 * )
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: <Args extends ReadonlyArray<any>, A, E = never, R = never, Empty = never>(
  options: Options<Args, A, E, R, Empty>
) => Effect.Effect<Job<Args, A | Empty, E>, PolicyError.PolicyError, R | Requirements> = internal.make

/**
 * A cached function: call it as the original, with the job attached for the rest.
 *
 * @since 0.1.0
 * @category models
 */
export interface Cached<in out Args extends ReadonlyArray<any>, in out A, in out E> {
  (...args: Args): Effect.Effect<A, E | JobError | CacheKey.CacheKeyError>
  readonly job: Job<Args, A, E>
}

/**
 * Wraps a function in a job (the role of cacheback's `@cacheback` decorator): the result is
 * called like `fetch` and answers from the cache, and exposes the job as `.job` for
 * `invalidate`, `set`, `peek`, `delete` and the rest. Unlike the decorator, every policy
 * option is available.
 *
 * @example
 * ```ts
 * import { CacheStore } from "@stalewise/core"
 * import { Job, RefreshQueue } from "@stalewise/refresh"
 * import { Effect, Layer } from "effect"
 *
 * const fetchUser = (id: number) => Effect.succeed({ id, name: "Ada" })
 *
 * const program = Effect.gen(function*() {
 *   const getUser = yield* Job.cached(fetchUser, { name: "users", lifetime: "5 minutes" })
 *   const user = yield* getUser(1)
 *   yield* getUser.job.invalidate(1)
 *   return user
 * }).pipe(
 *   Effect.scoped,
 *   Effect.provide(Layer.merge(CacheStore.layerMemory, RefreshQueue.layerFibers()))
 * )
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const cached: <Args extends ReadonlyArray<any>, A, E = never, R = never, Empty = never>(
  fetch: (...args: Args) => Effect.Effect<A, E, R>,
  options: BaseOptions<Args, A, Empty, E>
) => Effect.Effect<Cached<Args, A | Empty, E>, PolicyError.PolicyError, R | Requirements> = internal.cached

/**
 * @since 0.1.0
 * @category guards
 */
export const isJob = (u: unknown): u is Job<ReadonlyArray<unknown>, unknown, unknown> =>
  typeof u === "object" && u !== null && TypeId in u
