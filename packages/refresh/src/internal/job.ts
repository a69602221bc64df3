/** @internal */
import type { InvalidationBus } from "@stalewise/core"
import {
  CacheControl,
  CacheEntry,
  CacheKey,
  CacheMetrics,
  CacheStore,
  CacheTags,
  Coherence,
  Diagnostics,
  Facade,
  Outcome,
  PolicyError,
  ScopeGuard,
  SingleFlight,
  TimePolicy
} from "@stalewise/core"
import * as Cause from "effect/Cause"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as FiberMap from "effect/FiberMap"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type * as Job from "../Job.js"
import { JobError } from "../JobError.js"
import * as JobRegistry from "../JobRegistry.js"
import * as RefreshPolicy from "../RefreshPolicy.js"
import * as RefreshQueue from "../RefreshQueue.js"
import * as metrics from "./metrics.js"

/** @internal */
export const TypeId: Job.TypeId = "~@stalewise/refresh/Job"

const defaultNamespace = "refresh"

/** What became of a refresh request, seen from the reader that made it. */
type Requested<A, E> =
  | { readonly _tag: "NotRequested" }
  | { readonly _tag: "Queued" }
  | { readonly _tag: "RanSynchronously"; readonly exit: Exit.Exit<CacheEntry.CacheEntry<A>, E | JobError> }

const notRequested = { _tag: "NotRequested" } as const
const queued = { _tag: "Queued" } as const

const invalid = (option: string, detail: string) =>
  new PolicyError.PolicyError({ reason: "InvalidCombination", option, detail })

const isTimeout = <E>(cause: Cause.Cause<E | JobError>): boolean =>
  Option.match(Cause.failureOption(cause), {
    onNone: () => false,
    onSome: (error) => error instanceof JobError && error.reason === "Timeout"
  })

/** A one-line account of a failure, for logs: the error's tag and message, without a stack. */
const describe = (cause: Cause.Cause<unknown>): string =>
  Option.match(Cause.failureOption(cause), {
    onNone: () => Cause.isInterruptedOnly(cause) ? "interrupted" : Cause.pretty(cause).split("\n")[0]!,
    onSome: (error) => {
      if (typeof error !== "object" || error === null) return String(error)
      const tag = "_tag" in error ? String(error._tag) : undefined
      const message = error instanceof Error && error.message !== "" && error.message !== "An error has occurred"
        ? error.message
        : undefined
      return [tag, message].filter((part) => part !== undefined).join(": ") || String(error)
    }
  })

/** @internal */
export const make = <Args extends ReadonlyArray<any>, A, E = never, R = never, Empty = never>(
  options: Job.Options<Args, A, E, R, Empty>
): Effect.Effect<Job.Job<Args, A | Empty, E>, PolicyError.PolicyError, R | Job.Requirements> =>
  // the value type of the job is `A | Empty`; `empty` is just one more value it can return
  makeJob(options as unknown as Job.Options<Args, A | Empty, E, R, A | Empty>)

const makeJob = <Args extends ReadonlyArray<any>, A, E, R>(
  options: Job.Options<Args, A, E, R, A>
): Effect.Effect<Job.Job<Args, A, E>, PolicyError.PolicyError, R | Job.Requirements> =>
  Effect.gen(function*() {
    const policy = yield* RefreshPolicy.make(options)
    const name = options.name
    const namespace = options.namespace ?? defaultNamespace
    const segmentError = (error: CacheKey.CacheKeyError) =>
      invalid(error.path, `${error.found} is not a key segment: it must be non-empty, without ":"`)
    // namespace and name are checked once, here; each call only encodes its arguments
    const fromArgs = yield* Effect.mapError(CacheKey.deriver(namespace, name), segmentError)
    const fromId = yield* Effect.mapError(CacheKey.idDeriver(namespace, name), segmentError)
    if (!policy.fetchOnMiss && options.empty === undefined) {
      return yield* invalid("empty", "fetchOnMiss: false needs an empty value for misses to return")
    }
    if (options.key !== undefined && options.prepareArgs !== undefined) {
      return yield* invalid(
        "prepareArgs",
        "key and prepareArgs are exclusive: key replaces the digest prepareArgs feeds"
      )
    }

    const negativeMillis = options.negative === undefined
      ? 0
      : Duration.toMillis(yield* TimePolicy.finiteDuration("negative.timeToLive", options.negative.timeToLive))
    const isNegative = options.negative?.when
    const interruptOnAbandon = options.onAbandon === "interrupt"
    const traceHits = options.traceHits ?? false

    const store = yield* CacheStore.CacheStore
    const queue = yield* RefreshQueue.RefreshQueue
    const registry = yield* JobRegistry.JobRegistry
    const context = yield* Effect.context<R>()
    // The job's time source, like the memory store's, is the Clock present when it is defined.
    const clock = yield* Effect.clock
    const random = yield* Effect.random
    const fetches = yield* FiberMap.make<string, CacheEntry.CacheEntry<A>, E | JobError>()
    const scope = yield* Effect.scope
    // Once the scope closes, the job requests and starts no more refreshes.
    let closed = false
    yield* Effect.addFinalizer(() => Effect.sync(() => closed = true))

    const schema = options.schema
    const argsSchema = options.argsSchema as Schema.Schema<Args, unknown> | undefined
    const empty = options.empty
    const lifetimeMillis = Duration.toMillis(policy.time.lifetime)
    const timeToLiveMillis = Duration.toMillis(policy.time.timeToLive)
    const syncRefreshAfterMillis = policy.syncRefreshAfter === undefined
      ? undefined
      : Duration.toMillis(policy.syncRefreshAfter)
    const timeout = policy.timeout === undefined || !Duration.isFinite(policy.timeout) ? undefined : policy.timeout
    const annotations: CacheMetrics.Annotations = { strategy: metrics.strategy, job: name }
    const countOutcome = CacheMetrics.makeOutcomeCounter(annotations)
    // refreshes failing in an upstream outage: one line per interval, with a count
    const warnings = Diagnostics.makeWarnings()
    // one synchronous fetch per key across processes; its bus messages announce landings
    const flight = yield* SingleFlight.make({ lease: policy.refreshLease, wait: policy.leaseWait, annotations })
    // A fetch that `set`, `delete` or `clear` (here, or heard on the bus) overtook returns its
    // value to its callers but does not write it over what they did. Jobs keep no copies to drop.
    // Jobs keep no copies of values; the failures kept by negative caching are dropped.
    const coherence = yield* Coherence.make({
      origin: flight.origin,
      echoes: [store.origin],
      drop: (target) => forgetNegatives(target)
    })
    const now = () => clock.unsafeCurrentTimeMillis()
    // the process's tag service, or this job's own
    const tags = yield* CacheTags.fromContextOr(store, { subscribe: options.tags !== undefined })

    // --- Keys, entries and the store ------------------------------------------------------------

    const keyId = options.key
    const prepareArgs = options.prepareArgs
    // Derived when the caller's Effect runs; a `key` or `prepareArgs` that throws is a CacheKeyError.
    const keyNow = (args: Args): Either.Either<string, CacheKey.CacheKeyError> =>
      keyId !== undefined
        ? Either.flatMap(CacheKey.attempt(() => keyId(...args)), fromId)
        : prepareArgs !== undefined
        ? Either.flatMap(CacheKey.attempt(() => prepareArgs(...args)), fromArgs)
        : fromArgs(args)
    const keyOf = (args: Args): Effect.Effect<string, CacheKey.CacheKeyError> => Effect.suspend(() => keyNow(args))
    // A key read as cached is offered to the deriver's memo of hot arguments (the default key
    // only: with `key` or `prepareArgs` the arguments are not what was digested).
    const memoised = keyId === undefined && prepareArgs === undefined
    // keyNow for the facade's hit path: the same key, without a closure per call; `undefined`
    // when the arguments cannot be keyed (the call then fails through the runtime, as keyOf)
    const keyFast = (args: Args): string | undefined => {
      let derived: Either.Either<string, CacheKey.CacheKeyError>
      try {
        derived = keyId !== undefined
          ? fromId(keyId(...args))
          : prepareArgs !== undefined
          ? fromArgs(prepareArgs(...args))
          : fromArgs(args)
      } catch {
        return undefined
      }
      return derived._tag === "Right" ? derived.right : undefined
    }

    const tagsOption = options.tags
    const entryOf = (value: A, args: Args): Effect.Effect<CacheEntry.CacheEntry<A>> => {
      const make = (lifetime: number) => {
        const createdAt = now()
        return CacheEntry.make({
          value,
          createdAt,
          staleAt: createdAt + lifetime,
          expiresAt: createdAt + timeToLiveMillis,
          tags: tagsOption === undefined ? undefined : CacheTags.tagsOf(tagsOption, args, value)
        })
      }
      return policy.jitter === 0
        ? Effect.sync(() => make(lifetimeMillis))
        : Effect.map(random.next, (u) => make(Math.max(1, Math.floor(lifetimeMillis * (1 - policy.jitter * u)))))
    }

    // through the flight: it notes whether the store answers
    const read = (key: string): Effect.Effect<Option.Option<CacheEntry.CacheEntry<A>>> => flight.read(key, schema)

    const write = (key: string, entry: CacheEntry.CacheEntry<A>): Effect.Effect<void> =>
      CacheStore.setOrWarn(store, key, entry, schema, annotations)

    const release = (lease: CacheStore.Lease | undefined): Effect.Effect<void> =>
      lease === undefined ? Effect.void : Effect.ignore(store.releaseLease(lease))

    // --- Back-off after failed refreshes (per key, in this process) ------------------------------

    const backoff = new Map<string, { readonly failures: number; readonly until: number }>()
    const backingOff = (key: string, at: number): boolean => {
      const state = backoff.get(key)
      return state !== undefined && at < state.until
    }
    const maxBackoffMillis = Duration.toMillis(policy.refreshBackoff.max)
    let sweepAt = 1_024
    const recordFailure = (key: string): void => {
      const at = now()
      // Keys that failed and were never read again would stay forever: forget those whose
      // back-off ended longer ago than the longest back-off.
      if (backoff.size >= sweepAt) {
        for (const [k, state] of backoff) if (state.until + maxBackoffMillis < at) backoff.delete(k)
        sweepAt = Math.max(1_024, backoff.size * 2)
      }
      const failures = (backoff.get(key)?.failures ?? 0) + 1
      backoff.set(key, { failures, until: at + RefreshPolicy.backoffMillis(policy, failures) })
    }

    // --- Negative caching: chosen failures of a miss's fetch, kept in process ---------------------

    const negatives = new Map<string, { readonly error: E; readonly expiresAt: number }>()
    let negativeSweepAt = 1_024
    const keepNegative = (key: string, cause: Cause.Cause<E | JobError>): void => {
      if (isNegative === undefined) return
      const error = Cause.failureOption(cause)
      if (Option.isNone(error) || error.value instanceof JobError || !isNegative(error.value as E)) return
      const at = now()
      if (negatives.size >= negativeSweepAt) {
        for (const [k, negative] of negatives) if (negative.expiresAt <= at) negatives.delete(k)
        negativeSweepAt = Math.max(1_024, negatives.size * 2)
      }
      negatives.set(key, { error: error.value as E, expiresAt: at + negativeMillis })
    }
    const negativeOf = (key: string): E | undefined => {
      if (negatives.size === 0) return undefined
      const negative = negatives.get(key)
      if (negative === undefined) return undefined
      if (now() < negative.expiresAt) return negative.error
      negatives.delete(key)
      return undefined
    }
    function forgetNegatives(target: InvalidationBus.Target): void {
      if (negatives.size === 0) return
      if (target._tag === "Key") return void negatives.delete(target.key)
      for (const key of negatives.keys()) if (key.startsWith(target.prefix)) negatives.delete(key)
    }

    // --- Fetching: one fetch per key at a time, in the job's scope -------------------------------

    const fetchValue = (key: string, args: Args): Effect.Effect<A, E | JobError> => {
      const fetched = Effect.provide(CacheControl.upstream(options.fetch(...args)), context)
      return CacheMetrics.timeUpstream(
        annotations,
        key,
        timeout === undefined ? fetched : Effect.timeoutFail(fetched, {
          duration: timeout,
          onTimeout: () =>
            new JobError({
              reason: "Timeout",
              job: name,
              key,
              detail: `fetch took longer than ${Duration.format(timeout)}`
            })
        })
      )
    }

    // Accounting happens here, once per upstream call, whoever waits on it.
    const fetchAndStore = (
      key: string,
      args: Args,
      kind: "miss" | "refresh",
      unattended = false
    ): Effect.Effect<CacheEntry.CacheEntry<A>, E | JobError> =>
      Effect.suspend(() => {
        if (kind === "refresh") metrics.countRefresh(name, "started")
        const load = coherence.begin(key)
        // nobody waits for a background refresh: it may run `backgroundTimeout`, then it failed
        const value = unattended
          ? Effect.timeoutFail(fetchValue(key, args), {
            duration: policy.backgroundTimeout,
            onTimeout: () =>
              new JobError({
                reason: "Timeout",
                job: name,
                key,
                detail: `background refresh ran longer than ${Duration.format(policy.backgroundTimeout)}`
              })
          })
          : fetchValue(key, args)
        return value.pipe(
          Effect.flatMap((value) =>
            Effect.flatMap(
              entryOf(value, args),
              (entry) => coherence.mayWrite(load) ? Effect.as(write(key, entry), entry) : Effect.succeed(entry)
            )
          ),
          Effect.ensuring(Effect.sync(() => coherence.end(load)))
        )
      }).pipe(
        Effect.onExit((exit) =>
          Effect.suspend(() => {
            if (Exit.isSuccess(exit)) {
              backoff.delete(key)
              negatives.delete(key)
              if (kind === "refresh") metrics.countRefresh(name, "succeeded")
              return Effect.void
            }
            if (kind === "miss") keepNegative(key, exit.cause)
            if (kind === "miss" || Cause.isInterruptedOnly(exit.cause)) return Effect.void
            recordFailure(key)
            metrics.countRefresh(name, "failed")
            return warnings.warn("refresh-failed", "stalewise: refresh failed, the last good value is kept", {
              job: name,
              key,
              error: describe(exit.cause)
            }).pipe(Effect.zipRight(Effect.logDebug("stalewise: refresh failure", exit.cause)))
          })
        )
      )

    // Synchronous fetches (misses, refreshes past syncRefreshAfter, `refresh`) run in fibers of the
    // job's scope; callers only await them, so interrupting one caller never cancels what others
    // wait on, and an interrupted caller leaves nothing half-done (the fiber stores or fails on
    // its own). Background refreshes run in the queue's fiber instead, so that the queue's
    // shutdown (interrupt or drain) governs them; they are published in `background` for
    // synchronous callers to join.
    const background = new Map<string, Deferred.Deferred<CacheEntry.CacheEntry<A>, E | JobError>>()

    const fetchShared = (
      key: string,
      args: Args,
      kind: "miss" | "refresh",
      accept: (landed: CacheEntry.CacheEntry<A>) => boolean = () => true
    ): Effect.Effect<CacheEntry.CacheEntry<A>, E | JobError> =>
      Effect.suspend(() => {
        const running = FiberMap.unsafeGet(fetches, key)
        if (Option.isSome(running)) return attend(running.value, Effect.succeed(running.value))
        const refreshing = background.get(key)
        if (refreshing !== undefined) {
          // If that refresh is interrupted (its queue shut down), fetch anew.
          return Effect.catchAllCause(
            Deferred.await(refreshing),
            (cause) => Cause.isInterruptedOnly(cause) ? fetchShared(key, args, kind, accept) : Effect.failCause(cause)
          )
        }
        return attend(undefined, FiberMap.run(fetches, key, fetchLeased(key, args, kind, accept)))
      })

    // --- Waiters: who still waits for a synchronous fetch, and what happens when nobody does ----

    interface Attendance {
      readonly startedAt: number
      waiters: number
      /** Interrupts the fetch at `startedAt + backgroundTimeout` if nobody waits for it then. */
      bounded: boolean
    }
    const attendance = new WeakMap<Fiber.RuntimeFiber<CacheEntry.CacheEntry<A>, E | JobError>, Attendance>()

    // Joining a fetch (or starting it) and counting the waiter happen together, uninterruptibly:
    // an interrupted caller is always counted out again.
    const attend = (
      known: Fiber.RuntimeFiber<CacheEntry.CacheEntry<A>, E | JobError> | undefined,
      start: Effect.Effect<Fiber.RuntimeFiber<CacheEntry.CacheEntry<A>, E | JobError>>
    ): Effect.Effect<CacheEntry.CacheEntry<A>, E | JobError> =>
      Effect.uninterruptibleMask((restore) =>
        Effect.flatMap(known === undefined ? start : Effect.succeed(known), (fiber) => {
          let seen = attendance.get(fiber)
          if (seen === undefined) {
            seen = { startedAt: now(), waiters: 0, bounded: false }
            attendance.set(fiber, seen)
          }
          const state = seen
          state.waiters++
          return restore(Effect.flatten(Fiber.await(fiber))).pipe(
            Effect.onExit((exit) => leave(fiber, state, exit))
          )
        })
      )

    const leave = (
      fiber: Fiber.RuntimeFiber<CacheEntry.CacheEntry<A>, E | JobError>,
      state: Attendance,
      exit: Exit.Exit<unknown, unknown>
    ): Effect.Effect<void> =>
      Effect.suspend(() => {
        state.waiters--
        if (state.waiters > 0 || fiber.unsafePoll() !== null) return Effect.void
        if (!(Exit.isFailure(exit) && Cause.isInterruptedOnly(exit.cause))) return Effect.void
        if (interruptOnAbandon) return Effect.asVoid(Fiber.interruptFork(fiber))
        return state.bounded ? Effect.void : bound(fiber, state)
      })

    // Nobody waits for the fetch any more: it may run until `startedAt + backgroundTimeout`. The
    // timer ends with the fetch; one that finds waiters again lets them re-arm it when they leave.
    const bound = (
      fiber: Fiber.RuntimeFiber<CacheEntry.CacheEntry<A>, E | JobError>,
      state: Attendance
    ): Effect.Effect<void> => {
      state.bounded = true
      const timer = Effect.timeoutOption(
        Fiber.await(fiber),
        Duration.millis(Math.max(0, state.startedAt + Duration.toMillis(policy.backgroundTimeout) - now()))
      ).pipe(
        Effect.flatMap((done) =>
          Effect.suspend(() => {
            state.bounded = false
            return Option.isNone(done) && state.waiters === 0 ? Fiber.interruptFork(fiber) : Effect.void
          })
        ),
        Effect.asVoid
      )
      // forked from a waiter's exit (uninterruptible): the timer itself must stay interruptible
      return Effect.asVoid(Effect.forkIn(Effect.interruptible(timer), scope))
    }

    // --- One synchronous fetch per key across processes: the lease holder fetches --------------

    // With the lease, fetch; when another process holds it, wait for its value (an entry `accept`
    // takes) for at most `leaseWait`, then fetch anyway. This process's own background request
    // holding the lease makes it the holder: it fetches.
    const fetchLeased = (
      key: string,
      args: Args,
      kind: "miss" | "refresh",
      accept: (landed: CacheEntry.CacheEntry<A>) => boolean
    ): Effect.Effect<CacheEntry.CacheEntry<A>, E | JobError> =>
      flight.run({
        key,
        read: read(key),
        accept,
        fetch: fetchAndStore(key, args, kind),
        heldHere: () => holdsHere(key)
      })

    /** Waits for the fetch of `key` running now, if any, whatever its result. */
    const awaitRunning = (key: string): Effect.Effect<void> =>
      Effect.suspend(() => {
        const running = FiberMap.unsafeGet(fetches, key)
        if (Option.isSome(running)) return Effect.asVoid(Fiber.await(running.value))
        const refreshing = background.get(key)
        return refreshing === undefined ? Effect.void : Effect.asVoid(Effect.exit(Deferred.await(refreshing)))
      })

    const fetchInBackground = (
      key: string,
      args: Args
    ): Effect.Effect<Exit.Exit<CacheEntry.CacheEntry<A>, E | JobError>> =>
      Effect.suspend(() => {
        if (FiberMap.unsafeHas(fetches, key) || background.has(key)) {
          return Effect.exit(fetchShared(key, args, "refresh"))
        }
        const deferred = Deferred.unsafeMake<CacheEntry.CacheEntry<A>, E | JobError>(FiberId.none)
        background.set(key, deferred)
        return Effect.exit(fetchAndStore(key, args, "refresh", true)).pipe(
          Effect.tap((exit) => Deferred.done(deferred, exit)),
          Effect.ensuring(Effect.sync(() => {
            background.delete(key)
            Deferred.unsafeDone(deferred, Exit.interrupt(FiberId.none))
          }))
        )
      })

    // --- Background refreshes --------------------------------------------------------------------

    const encodeArgs = (key: string, args: Args): Either.Either<unknown, JobError> =>
      argsSchema === undefined
        ? Either.right(args)
        : Either.mapLeft(
          Schema.encodeEither(argsSchema)(args),
          (error) =>
            new JobError({
              reason: "InvalidArgs",
              job: name,
              key,
              detail: `arguments do not encode: ${Diagnostics.summarizeParseError(error)}`
            })
        )

    const decodeArgs = (request: RefreshQueue.RefreshRequest): Effect.Effect<Args, JobError> =>
      argsSchema === undefined
        ? Effect.succeed(request.args as Args)
        : Effect.mapError(Schema.decodeUnknown(argsSchema)(request.args), (error) =>
          new JobError({
            reason: "InvalidArgs",
            job: name,
            detail: `arguments do not decode: ${Diagnostics.summarizeParseError(error)}`
          }))

    /** Runs a request: fetch and store under `request.key` (never a recomputed key), then release. */
    const runRefresh = (
      request: RefreshQueue.RefreshRequest,
      args: Args
    ): Effect.Effect<Exit.Exit<CacheEntry.CacheEntry<A>, E | JobError> | "skipped"> =>
      Effect.flatMap(
        read(request.key),
        (current): Effect.Effect<Exit.Exit<CacheEntry.CacheEntry<A>, E | JobError> | "skipped"> => {
          // A fresher value landed while the request waited (cacheback 4's `should_refresh`).
          if (
            Option.isSome(current) && current.value.createdAt > request.requestedAt && now() < current.value.staleAt
          ) {
            metrics.countRefresh(name, "skipped")
            return Effect.succeed("skipped")
          }
          return closed ? Effect.succeed("skipped") : fetchInBackground(request.key, args)
        }
      ).pipe(Effect.ensuring(Effect.zipRight(
        Effect.sync(() => {
          pending.delete(request.key)
          leasedHere.delete(request.key)
        }),
        Effect.zipRight(release(request.lease), flight.announce(request.key))
      )))

    // The leases of refresh requests this process enqueued, until the refresh runs here or the
    // lease runs out (a worker elsewhere runs it): a synchronous fetch of such a key is this
    // process's to make, not one to wait for.
    const leasedHere = new Map<string, number>()
    const holdsHere = (key: string): boolean => (leasedHere.get(key) ?? 0) > now()
    const holdHere = (lease: CacheStore.Lease): void => {
      if (leasedHere.size >= 1_024) {
        const at = now()
        for (const [k, until] of leasedHere) if (until <= at) leasedHere.delete(k)
      }
      leasedHere.set(lease.key, lease.expiresAt)
    }

    // --- Which refreshes are on their way ----------------------------------------------------------

    // A refresh of `key` is on its way — requested by this process, or its lease held by another —
    // for the entry that was stale when it was asked for (`seen`, its createdAt). The readers of
    // that entry skip the lease round trip (1,000 stale readers, 1 lease call). The memo is
    // forgotten as soon as a reader sees another entry (the refresh landed, whichever process ran
    // it: the next staleness asks again), and after `pendingMillis` in any case (a refresh that
    // never landed — lost, dropped, failed elsewhere — is asked for again).
    interface Pending {
      readonly seen: number | undefined
      readonly until: number
    }
    const pending = new Map<string, Pending>()
    const pendingMillis = Math.min(lifetimeMillis, Duration.toMillis(policy.refreshLease))
    let pendingSweepAt = 1_024
    const markPending = (key: string, seen: CacheEntry.CacheEntry<A> | undefined, at: number): void => {
      // Keys requested once and never read again would stay forever: forget the expired memos.
      if (pending.size >= pendingSweepAt) {
        for (const [k, memo] of pending) if (memo.until <= at) pending.delete(k)
        pendingSweepAt = Math.max(1_024, pending.size * 2)
      }
      pending.set(key, { seen: seen?.createdAt, until: at + pendingMillis })
    }
    const isPending = (key: string, seen: CacheEntry.CacheEntry<A> | undefined, at: number): boolean => {
      const memo = pending.get(key)
      if (memo === undefined) return false
      if (at < memo.until && memo.seen === seen?.createdAt) return true
      pending.delete(key)
      return false
    }

    // The requests this job issued, recognised by identity when an in-process queue runs them.
    const issuedHere = new WeakSet<RefreshQueue.RefreshRequest>()

    const requestRefresh = (
      key: string,
      args: Args,
      options: { readonly force: boolean; readonly seen?: CacheEntry.CacheEntry<A> | undefined }
    ): Effect.Effect<Requested<A, E>> =>
      Effect.suspend(() => {
        const requestedAt = now()
        if (needNoRequest(key, requestedAt, options.force, options.seen)) {
          metrics.countRefresh(name, "skipped")
          return Effect.succeed(notRequested)
        }
        // Claimed before the lease round trip, so that concurrent readers in this process skip it.
        markPending(key, options.seen, requestedAt)
        return takeLeaseAndOffer(key, args, options, requestedAt)
      })

    // closed, backing off, or a refresh of the key already running or on its way
    const needNoRequest = (
      key: string,
      at: number,
      force: boolean,
      seen: CacheEntry.CacheEntry<A> | undefined
    ): boolean =>
      closed || (!force && (backingOff(key, at) || isPending(key, seen, at))) ||
      FiberMap.unsafeHas(fetches, key) || background.has(key)

    const takeLeaseAndOffer = (
      key: string,
      args: Args,
      options: { readonly force: boolean; readonly seen?: CacheEntry.CacheEntry<A> | undefined },
      requestedAt: number
    ): Effect.Effect<Requested<A, E>> =>
      Effect.gen(function*() {
        const lease = yield* store.acquireLease(key, policy.refreshLease).pipe(
          Effect.map((lease) => Either.right(lease)),
          Effect.catchAll((error) =>
            Effect.as(
              Diagnostics.warningsOf(store).warn(
                "refresh-lease-unavailable",
                "stalewise: refresh lease unavailable, refresh skipped",
                { job: name, key, error: error.message }
              ),
              Either.left(error)
            )
          )
        )
        // No lease, no refresh on its way: the next reader tries again.
        if (Either.isLeft(lease)) {
          pending.delete(key)
          metrics.countRefresh(name, "skipped")
          return notRequested
        }
        // Held elsewhere: that refresh is on its way (the memo stays).
        if (Option.isNone(lease.right)) {
          metrics.countRefresh(name, "skipped")
          return notRequested
        }
        return yield* offerWithLease(key, args, options, requestedAt, lease.right.value)
      })

    const offerWithLease = (
      key: string,
      args: Args,
      options: { readonly force: boolean; readonly seen?: CacheEntry.CacheEntry<A> | undefined },
      requestedAt: number,
      lease: CacheStore.Lease
    ): Effect.Effect<Requested<A, E>> =>
      Effect.gen(function*() {
        // A refresh may have landed between the caller's read and taking the lease.
        if (options.seen !== undefined) {
          const current = yield* read(key)
          if (
            Option.isSome(current) && current.value.createdAt > options.seen.createdAt &&
            requestedAt < current.value.staleAt
          ) {
            pending.delete(key)
            yield* release(lease)
            metrics.countRefresh(name, "skipped")
            return notRequested
          }
        }
        const encoded = encodeArgs(key, args)
        // These arguments never encode: the memo stays, so the drop is logged once per pendingMillis.
        if (Either.isLeft(encoded)) {
          yield* release(lease)
          metrics.countRefresh(name, "dropped")
          yield* warnings.warn("refresh-dropped", "stalewise: refresh dropped", {
            job: name,
            key,
            error: encoded.left.message
          })
          return notRequested
        }
        const request: RefreshQueue.RefreshRequest = {
          job: name,
          key,
          args: encoded.right,
          requestedAt,
          lease
        }
        issuedHere.add(request)
        const offered = yield* queue.offer(request)
        switch (offered) {
          // the memo stays while the request waits or runs
          case "enqueued":
            holdHere(lease)
            return queued
          case "duplicate":
            metrics.countRefresh(name, "skipped")
            yield* release(lease)
            return notRequested
          // nothing on its way: the lease is freed and the next reader asks again
          case "dropped":
            pending.delete(key)
            yield* release(lease)
            return notRequested
          case "run-synchronously": {
            // runRefresh forgets the memo once it has run
            const ran = yield* runRefresh(request, args)
            return ran === "skipped" ? notRequested : { _tag: "RanSynchronously", exit: ran } as const
          }
        }
      })

    // A request writes only what this job owns. One this job issued in this process (the same
    // object, handed over by an in-process queue) runs under the key its caller computed, even
    // when the arguments' encoding is lossy. Any other request — decoded from a queue's backend,
    // built by someone else — must name the key the job derives from its decoded arguments, and
    // may release only that key's lease; otherwise it is rejected.
    const rejected = (detail: string) => new JobError({ reason: "Rejected", job: name, detail })
    const owned = (request: RefreshQueue.RefreshRequest, args: Args) =>
      issuedHere.has(request) ? Effect.succeed(request) : keyOf(args).pipe(
        Effect.mapError(() => rejected("its arguments cannot be keyed")),
        Effect.filterOrFail(
          (key) => key === request.key,
          () => rejected("its key is not the one this job derives from its arguments")
        ),
        Effect.map((key): RefreshQueue.RefreshRequest =>
          request.lease === undefined || request.lease.key === key ? request : { ...request, lease: undefined }
        )
      )

    yield* registry.register({
      name,
      serializable: argsSchema !== undefined,
      run: (request) =>
        Effect.flatMap(decodeArgs(request), (args) =>
          Effect.flatMap(owned(request, args), (request) =>
            Effect.map(
              runRefresh(request, args),
              (ran) => ran === "skipped" ? "skipped" : Exit.isSuccess(ran) ? "succeeded" : "failed"
            )))
    })

    // --- Reads -----------------------------------------------------------------------------------

    const served = (
      entry: CacheEntry.CacheEntry<A>,
      at: number,
      status: "hit" | "stale" | "failover",
      reason?: Outcome.FailoverReason | undefined
    ): Outcome.Outcome<A> => {
      countOutcome(status, reason)
      return Outcome.make({
        value: entry.value,
        status,
        reason,
        age: Duration.millis(Math.max(0, at - entry.createdAt)),
        fetchedSynchronously: status === "failover"
      })
    }

    const fetched = (entry: CacheEntry.CacheEntry<A>): Outcome.Outcome<A> => {
      countOutcome("miss")
      return Outcome.make({ value: entry.value, status: "miss", fetchedSynchronously: true })
    }

    const emptyOutcome = (fetchedSynchronously: boolean): Outcome.Outcome<A> => {
      countOutcome("empty")
      return Outcome.make({ value: empty!(), status: "empty", fetchedSynchronously })
    }

    const syncRefresh = (
      key: string,
      args: Args,
      entry: CacheEntry.CacheEntry<A>
    ): Effect.Effect<Outcome.Outcome<A>, E | JobError> =>
      // another process's refresh of the same stale value serves as well as ours
      Effect.flatMap(
        Effect.exit(fetchShared(key, args, "refresh", (landed) => landed.createdAt > entry.createdAt)),
        (exit) => {
          if (Exit.isSuccess(exit)) return Effect.succeed(fetched(exit.value))
          // the stale value is a fallback only until it expires, also while the refresh ran
          if (!policy.staleIfError || Cause.isInterruptedOnly(exit.cause) || now() >= entry.expiresAt) {
            return Effect.failCause(exit.cause)
          }
          return Effect.succeed(served(entry, now(), "failover", isTimeout(exit.cause) ? "timeout" : "error"))
        }
      )

    // a hit past the refresh-ahead point of its lifetime requests a refresh
    const aheadDue = (entry: CacheEntry.CacheEntry<A>, at: number): boolean =>
      refreshAhead !== undefined && at >= TimePolicy.refreshAheadAt(entry, refreshAhead)

    const syncRefreshDue = (key: string, entry: CacheEntry.CacheEntry<A>, at: number): boolean =>
      syncRefreshAfterMillis !== undefined && at - entry.createdAt >= syncRefreshAfterMillis &&
      !(policy.staleIfError && backingOff(key, at))

    const onStale = (
      key: string,
      args: Args,
      entry: CacheEntry.CacheEntry<A>,
      at: number
    ): Effect.Effect<Outcome.Outcome<A>, E | JobError> => {
      if (syncRefreshDue(key, entry, at)) return CacheMetrics.traceCall(annotations, key, syncRefresh(key, args, entry))
      // the common case under load: a refresh is already on its way, serve at once
      if (needNoRequest(key, at, false, entry)) {
        metrics.countRefresh(name, "skipped")
        return Effect.succeed(served(entry, at, "stale"))
      }
      return Effect.flatMap(
        requestRefresh(key, args, { force: false, seen: entry }),
        (requested): Effect.Effect<Outcome.Outcome<A>, E | JobError> => {
          if (requested._tag !== "RanSynchronously") return Effect.succeed(served(entry, at, "stale"))
          // The queue was full and its fallback is to refresh in the caller: the call waited, so it
          // answers with what it got, or with the stale value if the refresh failed (and it has not
          // expired meanwhile).
          const exit = requested.exit
          return Exit.isSuccess(exit)
            ? Effect.succeed(fetched(exit.value))
            : Cause.isInterruptedOnly(exit.cause)
            ? Effect.succeed(served(entry, at, "stale"))
            : now() >= entry.expiresAt
            ? Effect.failCause(exit.cause)
            : Effect.succeed(served(entry, now(), "failover", isTimeout(exit.cause) ? "timeout" : "error"))
        }
      )
    }

    // Refresh-ahead: a hit late in its lifetime requests one refresh (the lease and the memo keep
    // it to one per key) and is served at once, as a hit.
    const refreshAhead = policy.refreshAhead
    const onRefreshAhead = (
      key: string,
      args: Args,
      entry: CacheEntry.CacheEntry<A>,
      at: number
    ): Effect.Effect<Outcome.Outcome<A>> => {
      if (needNoRequest(key, at, false, entry)) return Effect.succeed(served(entry, at, "hit"))
      return Effect.map(
        requestRefresh(key, args, { force: false, seen: entry }),
        (requested) =>
          // the queue was full and the refresh ran in this call: answer with what it fetched
          requested._tag === "RanSynchronously" && Exit.isSuccess(requested.exit)
            ? fetched(requested.exit.value)
            : served(entry, at, "hit")
      )
    }

    const onMiss = (key: string, args: Args): Effect.Effect<Outcome.Outcome<A>, E | JobError> =>
      policy.fetchOnMiss
        ? Effect.map(fetchShared(key, args, "miss"), fetched)
        : Effect.map(requestRefresh(key, args, { force: false }), (requested) =>
          requested._tag === "RanSynchronously"
            ? Exit.isSuccess(requested.exit) ? fetched(requested.exit.value) : emptyOutcome(true)
            : emptyOutcome(false))

    // An entry whose tags were invalidated: `soft` reads as stale, `hard` as a miss (whose fetch
    // does not take the invalidated entry for another process's landing).
    const onInvalidated = (
      key: string,
      args: Args,
      entry: CacheEntry.CacheEntry<A>,
      verdict: CacheTags.Verdict
    ): Effect.Effect<Outcome.Outcome<A>, E | JobError> => {
      const at = now()
      if (verdict === "soft" && at < entry.expiresAt) return onStale(key, args, entry, at)
      if (!policy.fetchOnMiss) return onMiss(key, args)
      return CacheMetrics.traceCall(
        annotations,
        key,
        Effect.map(fetchShared(key, args, "miss", (landed) => landed.createdAt > entry.createdAt), fetched)
      )
    }

    const outcomeOf = (key: string, args: Args): Effect.Effect<Outcome.Outcome<A>, E | JobError> =>
      Effect.flatMap(read(key), (cached) => outcomeOfRead(key, args, cached))

    // what the store answered, checked against the tags' invalidations, then classified
    const outcomeOfRead = (
      key: string,
      args: Args,
      cached: Option.Option<CacheEntry.CacheEntry<A>>
    ): Effect.Effect<Outcome.Outcome<A>, E | JobError> => {
      if (Option.isSome(cached) && cached.value.tags !== undefined) {
        const entry = cached.value
        return Effect.flatMap(
          tags.check(entry),
          (verdict) => verdict === "valid" ? classify(key, args, cached) : onInvalidated(key, args, entry, verdict)
        )
      }
      return classify(key, args, cached)
    }

    const negativeOutcome = (key: string, error: E): Effect.Effect<Outcome.Outcome<A>, E> => {
      countOutcome("negative")
      return CacheMetrics.traceCall(
        annotations,
        key,
        Effect.zipRight(CacheMetrics.annotateStatus("negative"), Effect.fail(error)),
        "negative"
      )
    }

    const classify = (
      key: string,
      args: Args,
      cached: Option.Option<CacheEntry.CacheEntry<A>>
    ): Effect.Effect<Outcome.Outcome<A>, E | JobError> => {
      const at = now()
      if (Option.isSome(cached)) {
        const entry = cached.value
        if (memoised) fromArgs.remember(args, key)
        // hits and stale reads served at once are traced only with `traceHits` (a span would
        // cost them several times their time); reads that wait for the upstream always are
        if (at < entry.staleAt) {
          const hit = aheadDue(entry, at)
            ? onRefreshAhead(key, args, entry, at)
            : Effect.succeed(served(entry, at, "hit"))
          return traceHits ? CacheMetrics.traceCall(annotations, key, hit) : hit
        }
        if (at < entry.expiresAt) {
          const stale = onStale(key, args, entry, at)
          return traceHits && !syncRefreshDue(key, entry, at) ? CacheMetrics.traceCall(annotations, key, stale) : stale
        }
      }
      return CacheMetrics.traceCall(annotations, key, onMiss(key, args))
    }

    const getWithOutcome = (...args: Args) =>
      Effect.flatMap(keyOf(args), (key) => CacheControl.withCurrentMode((mode) => outcomeIn(mode, key, args)))

    // `get`: a fresh hit (most reads) is served without its Outcome, in three steps — the mode and
    // the key, the store's read, the value; anything else continues as `getWithOutcome` does
    const get = (...args: Args): Effect.Effect<A, E | JobError | CacheKey.CacheKeyError> =>
      Effect.withFiberRuntime((fiber) => {
        const known = memoised ? fromArgs.remembered(args) : undefined
        let key = known
        if (key === undefined) {
          const derived = keyNow(args)
          if (Either.isLeft(derived)) return Effect.fail(derived.left)
          key = derived.right
        }
        const mode = fiber.getFiberRef(CacheControl.currentMode)
        if (mode !== "default" || traceHits || (negatives.size > 0 && negativeOf(key) !== undefined)) {
          return Effect.map(outcomeIn(mode, key, args), valueOf)
        }
        return Effect.flatMap(read(key), (cached) => {
          if (Option.isSome(cached)) {
            const entry = cached.value
            const at = now()
            if (entry.tags === undefined && at < entry.staleAt && !aheadDue(entry, at)) {
              if (memoised && known === undefined) fromArgs.remember(args, key)
              countOutcome("hit")
              return Exit.succeed(entry.value)
            }
          }
          return Effect.map(outcomeOfRead(key, args, cached), valueOf)
        })
      })

    const outcomeIn = (
      mode: CacheControl.Mode,
      key: string,
      args: Args
    ): Effect.Effect<Outcome.Outcome<A>, E | JobError> => {
      switch (mode) {
        case "default": {
          const negative = negativeOf(key)
          return negative === undefined ? outcomeOf(key, args) : negativeOutcome(key, negative)
        }
        case "bypass":
          return CacheMetrics.traceCall(
            annotations,
            key,
            Effect.map(fetchValue(key, args), (value) => {
              countOutcome("bypass")
              return Outcome.make({ value, status: "miss", fetchedSynchronously: true })
            }),
            "bypass"
          )
        case "forceRefresh":
          negatives.delete(key)
          return CacheMetrics.traceCall(
            annotations,
            key,
            Effect.zipRight(awaitRunning(key), Effect.map(fetchShared(key, args, "refresh"), fetched))
          )
      }
    }

    const valueOf = (outcome: Outcome.Outcome<A>): A => outcome.value

    // Fetches in flight are overtaken before the store changes, and other processes told after.
    const overtaking = <X, Err>(target: InvalidationBus.Target, change: Effect.Effect<X, Err>) =>
      Effect.suspend(() => {
        coherence.overtake(target)
        forgetNegatives(target)
        return Effect.tap(change, () => coherence.invalidate(target))
      })

    // --- Batches: one store round trip, one upstream call for the misses ------------------------

    const fetchMany = options.fetchMany
    const jobScope = yield* Effect.scope

    // Loads `keys` through one `fetchMany` call in the job's scope. Each key is published in
    // `background` for the call's length, so a concurrent read of one of them joins it.
    const loadBatch = (
      keys: ReadonlyArray<string>,
      argsList: ReadonlyArray<Args>
    ): Effect.Effect<Fiber.RuntimeFiber<ReadonlyArray<CacheEntry.CacheEntry<A>>, E | JobError>> =>
      Effect.suspend(() => {
        const deferreds = keys.map((key) => {
          const deferred = Deferred.unsafeMake<CacheEntry.CacheEntry<A>, E | JobError>(FiberId.none)
          background.set(key, deferred)
          return deferred
        })
        const loads = keys.map((key) => coherence.begin(key))
        const fetched = Effect.provide(CacheControl.upstream(fetchMany!(argsList)), context)
        const timed = timeout === undefined ? fetched : Effect.timeoutFail(fetched, {
          duration: timeout,
          onTimeout: () =>
            new JobError({
              reason: "Timeout",
              job: name,
              key: keys[0],
              detail: `fetchMany took longer than ${Duration.format(timeout)}`
            })
        })
        const run = CacheMetrics.timeUpstream(annotations, keys[0]!, timed).pipe(
          Effect.flatMap((values) =>
            values.length === keys.length ? Effect.succeed(values) : Effect.dieMessage(
              `stalewise: fetchMany of job ${name} returned ${values.length} values for ${keys.length} argument lists`
            )
          ),
          Effect.flatMap((values) =>
            Effect.forEach(keys, (key, i) =>
              Effect.flatMap(entryOf(values[i]!, argsList[i]!), (entry) => {
                backoff.delete(key)
                const stored = coherence.mayWrite(loads[i]!) ? write(key, entry) : Effect.void
                return Effect.as(Effect.zipRight(stored, Deferred.succeed(deferreds[i]!, entry)), entry)
              }))
          ),
          Effect.tapErrorCause((cause) => Effect.forEach(deferreds, (d) => Deferred.failCause(d, cause))),
          Effect.ensuring(Effect.sync(() => {
            keys.forEach((key, i) => {
              coherence.end(loads[i]!)
              if (background.get(key) === deferreds[i]) background.delete(key)
              Deferred.unsafeDone(deferreds[i]!, Exit.interrupt(FiberId.none))
            })
          }))
        )
        return Effect.forkIn(run, jobScope)
      })

    const getManyWithOutcome = (
      argsList: ReadonlyArray<Args>
    ): Effect.Effect<ReadonlyArray<Outcome.Outcome<A>>, E | JobError | CacheKey.CacheKeyError> =>
      Effect.flatMap(Effect.forEach(argsList, keyOf), (keys) =>
        CacheControl.withCurrentMode((mode) => {
          // bypass and forceRefresh: each call as `getWithOutcome` would make it
          if (mode !== "default") {
            return Effect.forEach(argsList, (args) => getWithOutcome(...args), { concurrency: "unbounded" })
          }
          return Effect.flatMap(
            CacheStore.getManyOrMiss(store, keys, schema, annotations),
            (cached): Effect.Effect<ReadonlyArray<Outcome.Outcome<A>>, E | JobError> => {
              const at = now()
              const answers: Array<Outcome.Outcome<A>> = new Array(keys.length)
              // reads that wait or do I/O (stale, tagged, joined, per-key misses), run concurrently
              const pendingAnswers: Array<readonly [number, Effect.Effect<Outcome.Outcome<A>, E | JobError>]> = []
              // the misses to load, each key once (its first arguments), in one batch
              const toLoad = new Map<string, Args>()
              const fromBatch: Array<number> = []
              keys.forEach((key, i) => {
                const entry = cached[i]!
                const args = argsList[i]!
                const live = Option.isSome(entry) && at < entry.value.expiresAt
                if (live && entry.value.tags === undefined && at < entry.value.staleAt) {
                  // the common case, answered at once (unless refresh-ahead asks for a refresh)
                  if (!aheadDue(entry.value, at)) {
                    answers[i] = served(entry.value, at, "hit")
                    return
                  }
                }
                if (live || fetchMany === undefined || !policy.fetchOnMiss) {
                  pendingAnswers.push([
                    i,
                    Option.isSome(entry) && entry.value.tags !== undefined
                      ? Effect.flatMap(tags.check(entry.value), (verdict) =>
                        verdict === "valid"
                          ? classify(key, args, entry)
                          : onInvalidated(key, args, entry.value, verdict))
                      : classify(key, args, live ? entry : Option.none())
                  ])
                  return
                }
                // a key already loading is joined, not fetched twice
                if (FiberMap.unsafeHas(fetches, key) || background.has(key)) {
                  pendingAnswers.push([
                    i,
                    CacheMetrics.traceCall(annotations, key, Effect.map(fetchShared(key, args, "miss"), fetched))
                  ])
                  return
                }
                if (!toLoad.has(key)) toLoad.set(key, args)
                fromBatch.push(i)
              })
              const loadKeys = [...toLoad.keys()]
              // the batch is registered (joinable) before anything else runs
              const started = loadKeys.length === 0
                ? Effect.succeed(undefined)
                : loadBatch(loadKeys, [...toLoad.values()])
              return Effect.flatMap(started, (fiber) => {
                const batchAnswers = fiber === undefined
                  ? Effect.void
                  : Effect.map(Effect.flatten(Fiber.await(fiber)), (entries) => {
                    const byKey = new Map(loadKeys.map((key, n) => [key, entries[n]!]))
                    for (const i of fromBatch) answers[i] = fetched(byKey.get(keys[i]!)!)
                  })
                const others = Effect.forEach(pendingAnswers, ([i, answer]) =>
                  Effect.map(answer, (outcome) => {
                    answers[i] = outcome
                  }), { concurrency: "unbounded", discard: true })
                return Effect.as(
                  pendingAnswers.length === 0
                    ? batchAnswers
                    : fiber === undefined
                    ? others
                    : Effect.all([batchAnswers, others], { concurrency: 2, discard: true }),
                  answers
                )
              })
            }
          )
        }))

    const job: Job.Job<Args, A, E> = {
      getManyWithOutcome,
      getMany: (argsList) =>
        Effect.map(getManyWithOutcome(argsList), (outcomes) => outcomes.map((outcome) => outcome.value)),
      [TypeId]: TypeId,
      name,
      namespace,
      policy,
      invalidateTag: (tag, tagOptions) => tags.invalidate(tag, tagOptions),
      key: (...args) => keyOf(args),
      getWithOutcome,
      get,
      invalidate: (...args) =>
        Effect.flatMap(keyOf(args), (key) =>
          Effect.gen(function*() {
            const cached = yield* store.get<A, any>(key, schema)
            if (Option.isNone(cached)) return
            const at = now()
            const entry = cached.value
            if (entry.staleAt > at) {
              // Only the moment it goes stale moves: createdAt and expiresAt keep the value's age.
              yield* store.set(key, CacheEntry.make({ ...entry, staleAt: at }), schema)
            }
            backoff.delete(key)
            negatives.delete(key)
            yield* requestRefresh(key, args, { force: true, seen: entry })
          })),
      delete: (...args) =>
        Effect.flatMap(keyOf(args), (key) => {
          backoff.delete(key)
          negatives.delete(key)
          return overtaking({ _tag: "Key", key }, store.delete(key))
        }),
      peek: (...args) => Effect.flatMap(keyOf(args), (key) => store.get<A, any>(key, schema)),
      set: (args, value) =>
        Effect.flatMap(keyOf(args), (key) =>
          Effect.flatMap(entryOf(value, args), (entry) => {
            backoff.delete(key)
            negatives.delete(key)
            return overtaking({ _tag: "Key", key }, store.set(key, entry, schema))
          })),
      refresh: (...args) =>
        Effect.flatMap(keyOf(args), (key) =>
          // A fetch already running may have started before whatever made the caller refresh (a
          // write to the source): let it finish, then fetch — or join a fetch started since.
          Effect.suspend(() => {
            negatives.delete(key)
            const calledAt = now()
            return Effect.zipRight(
              awaitRunning(key),
              // another process's fetch serves if it landed after this call
              Effect.map(
                fetchShared(key, args, "refresh", (landed) => landed.createdAt >= calledAt),
                (entry) => entry.value
              )
            )
          })),
      refreshInBackground: (...args) =>
        Effect.flatMap(keyOf(args), (key) => Effect.asVoid(requestRefresh(key, args, { force: true }))),
      clear: overtaking(
        { _tag: "Prefix", prefix: CacheKey.prefix(namespace, name) },
        store.deletePrefix(CacheKey.prefix(namespace, name))
      )
    }

    // The Promise facade's synchronous read (Facade.FastPath), over a store with an in-process
    // tier (the memory store): a hit, or a stale value served at once with its refresh requested
    // as `onStale` does — the claim (`markPending`) made here, synchronously, so that concurrent
    // callers request one refresh; the lease and the queue in a fiber of the caller's runtime.
    // Everything else (misses, a refresh past `syncRefreshAfter`) runs through the runtime.
    const fastRead = (tier: Facade.InProcess): Facade.FastPath<Args, A> => {
      // an entry held in process served as it is: counted as the store's hit and the job's outcome
      const answerFrom = (
        entry: CacheEntry.CacheEntry<A>,
        at: number,
        status: "hit" | "stale",
        outcome: boolean,
        answer: Facade.Answer<A>
      ): true => {
        tier.hit()
        if (outcome) answer.value = served(entry, at, status)
        else {
          countOutcome(status)
          answer.value = entry.value
        }
        return true
      }
      return (args, outcome, fork, answer) => {
        // spans, cached failures, tag checks and refreshes ahead go through the Effect path
        if (closed || traceHits) return false
        const known = memoised ? fromArgs.remembered(args) : undefined
        // in a fiber, a key not remembered yet is derived once, by the Effect path (which
        // remembers it on a hit), not here and again there
        if (known === undefined && memoised && fork === undefined) return false
        const key = known ?? keyFast(args)
        if (key === undefined) return false
        if (negatives.size > 0 && negativeOf(key) !== undefined) return false
        const entry = tier.peek(key) as CacheEntry.CacheEntry<A> | undefined
        if (entry === undefined || entry.tags !== undefined) return false
        const at = now()
        if (at >= entry.expiresAt) return false
        if (memoised && known === undefined) fromArgs.remember(args, key)
        if (at < entry.staleAt && aheadDue(entry, at)) return false
        if (at >= entry.staleAt) {
          if (syncRefreshDue(key, entry, at)) return false
          if (needNoRequest(key, at, false, entry)) {
            metrics.countRefresh(name, "skipped")
          } else if (fork === undefined) {
            return false
          } else {
            markPending(key, entry, at)
            fork(takeLeaseAndOffer(key, args, { force: false, seen: entry }, at))
          }
          return answerFrom(entry, at, "stale", outcome, answer)
        }
        return answerFrom(entry, at, "hit", outcome, answer)
      }
    }
    const tier = Facade.inProcess(store)
    const fastPath = tier === undefined ? undefined : fastRead(tier)
    const guarded = yield* ScopeGuard.guard(yield* Effect.scope, "Job", name, job)
    // in a fiber too, a hit held in process answers in one step
    return fastPath === undefined
      ? guarded
      : Object.assign(guarded, { [Facade.FastPathId]: fastPath, get: Facade.fiberGet(fastPath, guarded.get) })
  })

/** @internal */
export const cached = <Args extends ReadonlyArray<any>, A, E = never, R = never, Empty = never>(
  fetch: (...args: Args) => Effect.Effect<A, E, R>,
  options: Job.BaseOptions<Args, A, Empty, E>
): Effect.Effect<Job.Cached<Args, A | Empty, E>, PolicyError.PolicyError, R | Job.Requirements> =>
  Effect.map(
    make<Args, A, E, R, Empty>({ ...options, fetch }),
    (job) => Object.assign((...args: Args) => job.get(...args), { job })
  )
