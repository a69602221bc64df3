/**
 * The HTTP cache: looks a request up (primary key, then its variant), decides per strategy
 * whether to serve the stored copy, revalidate it (conditionally) or fetch, and stores what the
 * rules allow. One upstream request per key at a time (single flight); background refreshes are
 * also guarded by the store's lease, so processes sharing a store refresh a key once.
 *
 * @internal
 */
import type * as HttpClient from "@effect/platform/HttpClient"
import type * as HttpClientError from "@effect/platform/HttpClientError"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import type * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as UrlParams from "@effect/platform/UrlParams"
import { CacheEntry, CacheMetrics, CacheStore, Diagnostics, type TimePolicy } from "@stalewise/core"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import type { BypassReason, HttpStatus } from "../../CachedHttpClient.js"
import type { Keys } from "./keys.js"
import * as HttpMetrics from "./metrics.js"
import * as HttpPolicy from "./policy.js"
import * as Stored from "./record.js"
import * as Responses from "./response.js"
import * as Rules from "./rules.js"

/** What the engine is told: the strategy reduced to the rules it applies. */
export interface Config {
  readonly client: HttpClient.HttpClient
  readonly store: CacheStore.CacheStore.Service
  readonly scope: Scope.Scope
  readonly keys: Keys
  readonly strategy: Strategy
  /** `strategy`: the strategy's durations; `response`: RFC 9111 from the response's headers. */
  readonly freshness: "strategy" | "response"
  /** How long an entry is kept; in `strategy` freshness also how long it is fresh (`lifetime`). */
  readonly timePolicy: TimePolicy.TimePolicy
  readonly cacheable: (request: HttpClientRequest.HttpClientRequest) => boolean
  readonly storable: (status: number) => boolean
  readonly credentialHeaders: ReadonlyArray<string>
  readonly credentials: Rules.CredentialsMode
  readonly statusHeader: string
  readonly ageHeader: string
  readonly bypassHeader: string
}

/** The strategy, reduced to what the engine needs. */
export type Strategy =
  | {
    readonly _tag: "Failover"
    readonly timeout: Duration.Duration
    readonly interruptOnTimeout: boolean
    readonly fallbackOn: (error: HttpClientError.HttpClientError) => boolean
    readonly fallbackOnDefect: boolean
    readonly singleFlight: boolean
  }
  | { readonly _tag: "CacheFirst" }
  | { readonly _tag: "StaleWhileRevalidate"; readonly refreshLease: Duration.Duration }

/** The result of one upstream request, shared by the callers of its key. */
type Fetched =
  | {
    readonly _tag: "Stored"
    readonly entry: CacheEntry.CacheEntry<Stored.Response>
    readonly status: "miss" | "revalidated"
    /** The key the response was stored under: a caller whose request selects another variant must not use it. */
    readonly key: string
    readonly fields: ReadonlyArray<string>
  }
  | {
    readonly _tag: "Unstored"
    readonly response: HttpClientResponse.HttpClientResponse
    readonly reason: BypassReason
  }

interface Flight {
  readonly deferred: Deferred.Deferred<Fetched, HttpClientError.HttpClientError>
  fiber: Fiber.RuntimeFiber<void> | undefined
  /** A caller's deadline passed: later failover callers serve the stored copy at once. */
  overdue: boolean
  /** An unstored response is a stream: only one caller may take it; the others ask again. */
  claimed: boolean
}

/** A request being answered: its keys and what is stored for it. */
interface Lookup {
  readonly request: HttpClientRequest.HttpClientRequest
  readonly policyRequest: HttpPolicy.PolicyRequest
  readonly primary: string
  readonly key: string
  readonly stored: Option.Option<CacheEntry.CacheEntry<Stored.Response>>
  /** Whether the stored copy may be served to other callers (everything but a per-user entry). */
  readonly shared: boolean
}

/** What may be done with a stored copy now. */
interface View {
  readonly fresh: boolean
  readonly staleWhileRevalidate: boolean
  readonly staleIfError: boolean
  readonly validators: Readonly<Record<string, string>>
}

/** Reasons that say the resource itself forbids caching now: a stored copy is dropped. */
const forbidding = new Set<BypassReason>(["no-store", "private", "set-cookie", "vary-star"])

/** Builds the cached `execute` of a client. */
export const make = (config: Config) => {
  const { keys, store, strategy } = config
  const annotations: CacheMetrics.Annotations = { strategy: HttpMetrics.strategyName(strategy._tag) }
  const count = HttpMetrics.makeOutcomeCounter(annotations)
  const flights = new Map<string, Flight>()
  const refreshing = new Set<string>()
  const hidden = config.credentials === "bypass" ? [] : config.credentialHeaders

  const urlOf = (request: HttpClientRequest.HttpClientRequest): string => {
    const url = UrlParams.makeUrl(request.url, request.urlParams, request.hash)
    return url._tag === "Right" ? url.right.toString() : request.url
  }

  // ---- responses ---------------------------------------------------------------------------

  const served = (
    lookup: Lookup,
    entry: CacheEntry.CacheEntry<Stored.Response>,
    status: HttpStatus,
    now: number
  ): HttpClientResponse.HttpClientResponse => {
    const policy = HttpPolicy.fromObject(entry.value.policy, now)
    const age = CacheEntry.age(entry, now)
    return Responses.fromStored(lookup.request, entry.value, HttpPolicy.servedHeaders(policy), {
      [config.statusHeader]: status,
      [config.ageHeader]: String(Math.floor(Duration.toSeconds(age)))
    })
  }

  const serve = (
    lookup: Lookup,
    entry: CacheEntry.CacheEntry<Stored.Response>,
    status: HttpStatus,
    reason?: "error" | "timeout"
  ) =>
    Effect.map(Clock.currentTimeMillis, (now) => {
      count(status, reason)
      return served(lookup, entry, status, now)
    })

  const bypassed = (
    request: HttpClientRequest.HttpClientRequest,
    response: HttpClientResponse.HttpClientResponse,
    reason: BypassReason
  ) => {
    count("bypass", reason)
    return Responses.withHeaders(request, response, { [config.statusHeader]: "bypass", [config.bypassHeader]: reason })
  }

  const passThrough = (request: HttpClientRequest.HttpClientRequest, reason: BypassReason) =>
    Effect.map(config.client.execute(request), (response) => bypassed(request, response, reason))

  // ---- storing -----------------------------------------------------------------------------

  const entryFor = (
    record: Stored.Response,
    policy: HttpPolicy.Policy,
    now: number
  ): CacheEntry.CacheEntry<Stored.Response> => {
    const keep = Duration.toMillis(config.timePolicy.timeToLive)
    if (config.freshness === "strategy") {
      return CacheEntry.make({
        value: record,
        createdAt: now,
        staleAt: now + Duration.toMillis(config.timePolicy.lifetime),
        // kept at least as long as the response's own RFC 5861 windows allow
        expiresAt: now + Math.max(keep, HttpPolicy.keepMillis(policy))
      })
    }
    return CacheEntry.make({
      value: record,
      createdAt: now,
      staleAt: now + HttpPolicy.freshMillis(policy),
      expiresAt: now + Math.max(keep, HttpPolicy.keepMillis(policy))
    })
  }

  const save = (
    lookup: Lookup,
    fields: ReadonlyArray<string>,
    entry: CacheEntry.CacheEntry<Stored.Response>
  ) => {
    const key = keys.variant(lookup.primary, fields, lookup.request)
    const write = CacheStore.setOrWarn(store, key, entry, Stored.Entry, annotations)
    return Effect.as(
      fields.length === 0 ? write : Effect.zipRight(
        CacheStore.setOrWarn(
          store,
          lookup.primary,
          CacheEntry.withValue<Stored.Response, Stored.Entry>(entry, { _tag: "Vary", fields }),
          Stored.Entry,
          annotations
        ),
        write
      ),
      key
    )
  }

  // ---- the upstream request ----------------------------------------------------------------

  /** One upstream request for `lookup`: conditional when a stored copy has validators. */
  const fetch = (lookup: Lookup, validators: Readonly<Record<string, string>>) =>
    Effect.gen(function*() {
      const outgoing = Object.keys(validators).length === 0
        ? lookup.request
        : HttpClientRequest.setHeaders(lookup.request, validators)
      const response = yield* CacheMetrics.timeUpstream(annotations, lookup.key, config.client.execute(outgoing))
      const now = yield* Clock.currentTimeMillis
      const revalidating = Option.isSome(lookup.stored) && Object.keys(validators).length > 0

      if (revalidating && response.status === 304 && Option.isSome(lookup.stored)) {
        // 304: the stored body is still right; headers and freshness are renewed, no body came
        const previous = lookup.stored.value.value
        const { policy } = HttpPolicy.revalidated(
          HttpPolicy.fromObject(previous.policy, now),
          lookup.policyRequest,
          response
        )
        const object = HttpPolicy.toObject(policy)
        const record: Stored.Response = { ...previous, headers: object.resh, policy: object }
        const entry = entryFor(record, policy, now)
        const fields = Rules.varyFields(record.headers)
        HttpMetrics.countRevalidation(annotations, "not-modified")
        const key = yield* save(lookup, fields, entry)
        return { _tag: "Stored", entry, status: "revalidated", key, fields } satisfies Fetched
      }
      if (revalidating) HttpMetrics.countRevalidation(annotations, "modified")

      const policy = HttpPolicy.make(lookup.policyRequest, response, lookup.shared, now)
      const reason = Rules.responseBypass(response, policy, config.storable, lookup.shared)
      if (reason !== undefined) {
        if (Option.isSome(lookup.stored) && forbidding.has(reason)) {
          yield* Effect.ignore(store.delete(lookup.key))
        }
        return { _tag: "Unstored", response, reason } satisfies Fetched
      }
      const body = new Uint8Array(yield* response.arrayBuffer)
      const record: Stored.Response = {
        _tag: "Response",
        status: response.status,
        headers: { ...response.headers },
        body,
        policy: HttpPolicy.toObject(policy)
      }
      const entry = entryFor(record, policy, now)
      const fields = Rules.varyFields(record.headers)
      const key = yield* save(lookup, fields, entry)
      return { _tag: "Stored", entry, status: "miss", key, fields } satisfies Fetched
    })

  /** Starts the upstream request for `lookup.key` in the client's scope, or joins the one running. */
  const join = (lookup: Lookup, validators: Readonly<Record<string, string>>, singleFlight = true) =>
    Effect.suspend(() => {
      const running = singleFlight ? flights.get(lookup.key) : undefined
      if (running !== undefined) return Effect.succeed(running)
      const flight: Flight = {
        deferred: Deferred.unsafeMake(FiberId.none),
        fiber: undefined,
        overdue: false,
        claimed: false
      }
      if (singleFlight) flights.set(lookup.key, flight)
      const forget = Effect.sync(() => {
        if (flights.get(lookup.key) === flight) flights.delete(lookup.key)
      })
      const run = fetch(lookup, validators).pipe(
        Effect.exit,
        Effect.flatMap((exit) => Effect.zipRight(forget, Deferred.done(flight.deferred, exit))),
        Effect.asVoid,
        Effect.onInterrupt(() => Effect.zipRight(forget, Deferred.interrupt(flight.deferred)))
      )
      return Effect.map(Effect.forkIn(run, config.scope), (fiber) => {
        flight.fiber = fiber
        return flight
      })
    })

  /**
   * Reads away an unstored response nobody will take (a background refresh's, or a 5xx answered
   * from the cache), so its connection is freed now rather than when it is garbage collected.
   */
  const discard = (flight: Flight, fetched: Fetched) =>
    Effect.suspend(() => {
      if (fetched._tag === "Stored" || flight.claimed) return Effect.void
      flight.claimed = true
      return Effect.asVoid(Effect.forkIn(Effect.ignore(fetched.response.arrayBuffer), config.scope))
    })

  /** The answer a flight's result gives `lookup`'s caller (`fallback` for a server error). */
  const deliver = (
    lookup: Lookup,
    flight: Flight,
    fetched: Fetched,
    attempt: number,
    fallback: Option.Option<CacheEntry.CacheEntry<Stored.Response>>
  ): Effect.Effect<HttpClientResponse.HttpClientResponse, HttpClientError.HttpClientError> => {
    if (fetched._tag === "Stored") {
      // the response varies on headers in which this caller's request differs: not for it
      if (keys.variant(lookup.primary, fetched.fields, lookup.request) !== fetched.key) {
        return attempt < 2 ? answer(lookup.request, attempt + 1) : passThrough(lookup.request, "vary")
      }
      return serve(lookup, fetched.entry, fetched.status)
    }
    if (fetched.response.status >= 500 && Option.isSome(fallback)) {
      return Effect.zipRight(discard(flight, fetched), serve(lookup, fallback.value, "failover", "error"))
    }
    if (flight.claimed) return passThrough(lookup.request, fetched.reason)
    flight.claimed = true
    return Effect.succeed(bypassed(lookup.request, fetched.response, fetched.reason))
  }

  /** Waits for the upstream; a failure serves `fallback` (stale-if-error) when there is one. */
  const synchronously = (lookup: Lookup, view: View | undefined, attempt: number) => {
    const fallback = view?.staleIfError === true ? lookup.stored : Option.none()
    return Effect.flatMap(
      join(lookup, view?.validators ?? {}),
      (flight) =>
        Effect.flatMap(Deferred.await(flight.deferred).pipe(Effect.exit), (exit) => {
          if (Exit.isSuccess(exit)) return deliver(lookup, flight, exit.value, attempt, fallback)
          if (Option.isSome(fallback) && !Cause.isInterruptedOnly(exit.cause)) {
            return serve(lookup, fallback.value, "failover", "error")
          }
          return Effect.failCause(exit.cause)
        })
    )
  }

  // ---- strategies --------------------------------------------------------------------------

  const failover = (
    lookup: Lookup,
    view: View | undefined,
    attempt: number,
    options: Extract<Strategy, { _tag: "Failover" }>
  ) => {
    const cached = view?.staleIfError === true ? lookup.stored : Option.none()
    if (Option.isNone(cached)) return synchronously(lookup, view, attempt)
    const entry = cached.value
    const falls = (cause: Cause.Cause<HttpClientError.HttpClientError>): boolean =>
      Cause.isInterruptedOnly(cause) ? false : Option.match(Cause.failureOption(cause), {
        onSome: options.fallbackOn,
        onNone: () => options.fallbackOnDefect && Cause.isDie(cause)
      })
    return Effect.flatMap(join(lookup, view?.validators ?? {}, options.singleFlight), (flight) => {
      if (flight.overdue) return serve(lookup, entry, "failover", "timeout")
      return Deferred.await(flight.deferred).pipe(
        Effect.exit,
        Effect.timeout(options.timeout),
        Effect.matchCauseEffect({
          onFailure: () =>
            Effect.suspend(() => {
              flight.overdue = true
              const stop = options.interruptOnTimeout && flight.fiber !== undefined
                ? Fiber.interruptFork(flight.fiber)
                : Effect.void
              return Effect.zipRight(stop, serve(lookup, entry, "failover", "timeout"))
            }),
          onSuccess: (exit) =>
            Exit.isSuccess(exit)
              ? deliver(lookup, flight, exit.value, attempt, cached)
              : flight.overdue && Cause.isInterruptedOnly(exit.cause)
              ? serve(lookup, entry, "failover", "timeout")
              : falls(exit.cause)
              ? serve(lookup, entry, "failover", "error")
              : Effect.failCause(exit.cause)
        })
      )
    })
  }

  /** Refreshes `lookup` in the background: once per key in this process, once per lease across processes. */
  const refreshInBackground = (lookup: Lookup, view: View, lease: Duration.Duration) =>
    Effect.suspend(() => {
      if (refreshing.has(lookup.key) || flights.has(lookup.key)) {
        HttpMetrics.countRefresh(annotations, "skipped")
        return Effect.void
      }
      refreshing.add(lookup.key)
      const seenAt = Option.isSome(lookup.stored) ? lookup.stored.value.createdAt : -Infinity
      const refresh = (held: CacheStore.Lease) =>
        Effect.gen(function*() {
          // another instance's refresh may have landed between this read and the lease (it
          // released the lease once it had stored): its copy is newer, nothing to do again
          const current = yield* CacheStore.getOrMiss(store, lookup.key, Stored.Entry, annotations)
          if (Option.isSome(current) && current.value.createdAt > seenAt) {
            HttpMetrics.countRefresh(annotations, "skipped")
            return
          }
          HttpMetrics.countRefresh(annotations, "started")
          const flight = yield* join(lookup, view.validators)
          const exit = yield* Effect.exit(Deferred.await(flight.deferred))
          if (Exit.isSuccess(exit)) yield* discard(flight, exit.value)
          const ok = Exit.isSuccess(exit) && exit.value._tag === "Stored"
          HttpMetrics.countRefresh(annotations, ok ? "succeeded" : "failed")
        }).pipe(Effect.ensuring(Effect.ignore(store.releaseLease(held))))
      const run = store.acquireLease(lookup.key, lease).pipe(
        Effect.catchAll((error) =>
          Effect.as(
            Diagnostics.warningsOf(store).warn(
              "refresh-lease-unavailable",
              "stalewise: refresh lease unavailable, refresh skipped",
              { ...annotations, key: lookup.key, error: error.message }
            ),
            Option.none<CacheStore.Lease>()
          )
        ),
        Effect.flatMap(Option.match({
          onNone: () => Effect.sync(() => HttpMetrics.countRefresh(annotations, "skipped")),
          onSome: refresh
        })),
        Effect.ensuring(Effect.sync(() => refreshing.delete(lookup.key)))
      )
      return Effect.asVoid(Effect.forkIn(run, config.scope))
    })

  // ---- lookup ------------------------------------------------------------------------------

  const viewOf = (lookup: Lookup, now: number): View | undefined => {
    if (Option.isNone(lookup.stored)) return undefined
    const entry = lookup.stored.value
    const fresh = config.freshness === "strategy" && CacheEntry.freshness(entry, now) === "Fresh"
    // a hit on the strategy's durations needs nothing from the policy (failover always asks)
    if (fresh && strategy._tag !== "Failover") {
      return { fresh, staleWhileRevalidate: true, staleIfError: true, validators: {} }
    }
    const usability = HttpPolicy.usability(HttpPolicy.fromObject(entry.value.policy, now), lookup.policyRequest)
    if (config.freshness === "response") return usability
    // the strategy's durations decide; the response's RFC 5861 windows may extend them
    const kept = now < entry.createdAt + Duration.toMillis(config.timePolicy.timeToLive)
    return {
      fresh,
      staleWhileRevalidate: kept || usability.staleWhileRevalidate,
      staleIfError: kept || usability.staleIfError,
      validators: usability.validators
    }
  }

  const find = (request: HttpClientRequest.HttpClientRequest) =>
    Effect.gen(function*() {
      const primary = keys.primary(request)
      const shared = !(config.credentials === "per-user" && keys.credentialsOf(request) !== null)
      const policyRequest = HttpPolicy.policyRequest(request, urlOf(request), hidden)
      const found = yield* CacheStore.getOrMiss(store, primary, Stored.Entry, annotations)
      if (Option.isSome(found) && found.value.value._tag === "Vary") {
        const key = keys.variant(primary, found.value.value.fields, request)
        const variant = yield* CacheStore.getOrMiss(store, key, Stored.Entry, annotations)
        const stored = Option.filter(variant, isResponse)
        return { request, policyRequest, primary, key, stored, shared } satisfies Lookup
      }
      return { request, policyRequest, primary, key: primary, stored: Option.filter(found, isResponse), shared }
    })

  const answer = (
    request: HttpClientRequest.HttpClientRequest,
    attempt: number
  ): Effect.Effect<HttpClientResponse.HttpClientResponse, HttpClientError.HttpClientError> =>
    Effect.gen(function*() {
      const lookup = yield* find(request)
      const now = yield* Clock.currentTimeMillis
      const view = viewOf(lookup, now)
      switch (strategy._tag) {
        case "Failover":
          return yield* failover(lookup, view, attempt, strategy)
        case "CacheFirst": {
          if (view?.fresh === true && Option.isSome(lookup.stored)) {
            return yield* serve(lookup, lookup.stored.value, "hit")
          }
          return yield* synchronously(lookup, view, attempt)
        }
        case "StaleWhileRevalidate": {
          if (Option.isNone(lookup.stored) || view === undefined) {
            return yield* synchronously(lookup, view, attempt)
          }
          if (view.fresh) return yield* serve(lookup, lookup.stored.value, "hit")
          if (view.staleWhileRevalidate) {
            yield* refreshInBackground(lookup, view, strategy.refreshLease)
            return yield* serve(lookup, lookup.stored.value, "stale")
          }
          return yield* synchronously(lookup, view, attempt)
        }
      }
    })

  /** The cached `execute`. */
  return (
    request: HttpClientRequest.HttpClientRequest
  ): Effect.Effect<HttpClientResponse.HttpClientResponse, HttpClientError.HttpClientError> => {
    const reason = Rules.requestBypass(request, config.cacheable, config.credentialHeaders, config.credentials)
    return reason === undefined ? answer(request, 0) : passThrough(request, reason)
  }
}

const isResponse = (entry: CacheEntry.CacheEntry<Stored.Entry>): entry is CacheEntry.CacheEntry<Stored.Response> =>
  entry.value._tag === "Response"
