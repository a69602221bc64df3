/**
 * RFC 9111 / RFC 5861 decisions, all made by `http-cache-semantics` (never hand-written here),
 * with its clock replaced by Effect's `Clock` so `TestClock` drives every rule.
 *
 * @internal
 */
import type * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as Schema from "effect/Schema"
import CachePolicy from "http-cache-semantics"

/**
 * `http-cache-semantics` reads the time through its `now()` method (its documented seam: "you can
 * monkey-patch it for testing"). Each policy is pinned to the `Clock` reading it was made at:
 * the base constructor asks `now()` before the subclass's field exists, so it reads `instant`,
 * which {@link pinned} sets synchronously around every construction (`revalidatedPolicy` builds
 * its result with `new this.constructor`, so it is covered too). One class, so calls on policies
 * stay monomorphic.
 */
let instant = 0

class ClockedPolicy extends CachePolicy {
  readonly at: number = instant
  now(): number {
    return this.at ?? instant
  }
}

const pinned = <A>(now: number, make: () => A): A => {
  instant = now
  return make()
}

/** A policy as `http-cache-semantics` serialises it (`toObject()`), kept with the stored response. */
export interface PolicyObject {
  readonly v: 1
  readonly t: number
  readonly sh: boolean
  readonly ch: number
  readonly imm?: number | undefined
  readonly icc?: boolean | undefined
  readonly st: number
  readonly resh: Readonly<Record<string, string>>
  readonly rescc: Readonly<Record<string, string | boolean>>
  readonly m: string
  readonly u?: string | undefined
  readonly h?: string | undefined
  readonly a: boolean
  readonly reqh: Readonly<Record<string, string>> | null
  readonly reqcc: Readonly<Record<string, string | boolean>>
}

const Headers = Schema.Record({ key: Schema.String, value: Schema.String })
const Directives = Schema.Record({ key: Schema.String, value: Schema.Union(Schema.String, Schema.Boolean) })

/** The schema of {@link PolicyObject}: a policy survives serialising stores (Redis, KeyValueStore). */
export const PolicyObject: Schema.Schema<PolicyObject> = Schema.Struct({
  v: Schema.Literal(1),
  t: Schema.Number,
  sh: Schema.Boolean,
  ch: Schema.Number,
  imm: Schema.optional(Schema.Number),
  icc: Schema.optional(Schema.Boolean),
  st: Schema.Number,
  resh: Headers,
  rescc: Directives,
  m: Schema.String,
  u: Schema.optional(Schema.String),
  h: Schema.optional(Schema.String),
  a: Schema.Boolean,
  reqh: Schema.NullOr(Headers),
  reqcc: Directives
})

/** The request as `http-cache-semantics` sees it. */
export interface PolicyRequest {
  readonly method: string
  readonly url: string
  readonly headers: Record<string, string>
}

/**
 * The request `http-cache-semantics` is shown. `hidden` headers (the credentials of a request
 * whose credentials are already part of the key, or shared on purpose) are left out: the cache's
 * own rules handle them, and the library would otherwise refuse every such response.
 */
export const policyRequest = (
  request: HttpClientRequest.HttpClientRequest,
  url: string,
  hidden: ReadonlyArray<string>
): PolicyRequest => {
  const headers: Record<string, string> = {}
  for (const [name, value] of Object.entries(request.headers)) {
    if (!hidden.includes(name)) headers[name] = value
  }
  return { method: request.method, url, headers }
}

/** A live policy, read at `now`. */
export type Policy = ClockedPolicy

/** The policy of a response received at `now`; `shared: false` for a per-user cache. */
export const make = (
  request: PolicyRequest,
  response: { readonly status: number; readonly headers: Readonly<Record<string, string>> },
  shared: boolean,
  now: number
): Policy => {
  return pinned(
    now,
    () => new ClockedPolicy(request, { status: response.status, headers: { ...response.headers } }, { shared })
  )
}

/** A stored policy, read at `now`. */
export const fromObject = (object: PolicyObject, now: number): Policy =>
  // `fromObject` builds with `new this(…)`: a ClockedPolicy
  pinned(now, () => ClockedPolicy.fromObject(object as unknown as CachePolicy.CachePolicyObject) as ClockedPolicy)

/** The serialisable form of `policy`. */
export const toObject = (policy: Policy): PolicyObject => policy.toObject() as unknown as PolicyObject

/** What the response says about reusing it for `request` at the policy's instant. */
export interface Usability {
  /** Fresh: may be served without asking the server. */
  readonly fresh: boolean
  /** Stale, but `stale-while-revalidate` allows serving it while it is revalidated. */
  readonly staleWhileRevalidate: boolean
  /** `stale-if-error` (or freshness) allows serving it when the server fails. */
  readonly staleIfError: boolean
  /** Conditional request headers (`If-None-Match`, `If-Modified-Since`) to revalidate it. */
  readonly validators: Readonly<Record<string, string>>
}

const errorResponse = { status: 500, headers: {} }

/** How a stored response may be used for `request`, per RFC 9111 and RFC 5861. */
export const usability = (policy: Policy, request: PolicyRequest): Usability => {
  const evaluated = policy.evaluateRequest(request)
  const fresh = evaluated.response !== undefined && evaluated.revalidation === undefined
  // `revalidatedPolicy` keeps the old policy for an error response exactly when `stale-if-error`
  // (or freshness) allows serving it: the library's public way to ask that question.
  const staleIfError = fresh ||
    pinned(policy.now(), () => policy.revalidatedPolicy(request, errorResponse).policy === policy)
  const headers = policy.revalidationHeaders(request)
  const validators: Record<string, string> = {}
  for (const name of ["if-none-match", "if-modified-since"]) {
    const value = headers[name]
    if (typeof value === "string") validators[name] = value
  }
  return {
    fresh,
    staleWhileRevalidate: evaluated.response !== undefined && evaluated.revalidation?.synchronous === false,
    staleIfError,
    validators
  }
}

/** The policy after a `304 Not Modified`: the stored headers updated from it, its body unchanged. */
export const revalidated = (
  policy: Policy,
  request: PolicyRequest,
  response: { readonly status: number; readonly headers: Readonly<Record<string, string>> }
): { readonly policy: Policy; readonly modified: boolean } => {
  const result = pinned(
    policy.now(),
    () => policy.revalidatedPolicy(request, { status: response.status, headers: { ...response.headers } })
  )
  // built with `new this.constructor(…)`: a ClockedPolicy
  return { policy: result.policy as ClockedPolicy, modified: result.modified }
}

/** Milliseconds the response stays fresh from the policy's instant (0 when already stale). */
export const freshMillis = (policy: Policy): number => Math.max(0, Math.round((policy.maxAge() - policy.age()) * 1000))

/** Milliseconds the library would keep the response (freshness plus RFC 5861 windows). */
export const keepMillis = (policy: Policy): number => policy.timeToLive()

/** The response headers to serve a stored copy with (hop-by-hop removed, `Age` updated). */
export const servedHeaders = (policy: Policy): Record<string, string> => {
  const headers: Record<string, string> = {}
  for (const [name, value] of Object.entries(policy.responseHeaders())) {
    if (typeof value === "string") headers[name] = value
    else if (Array.isArray(value)) headers[name] = value.join(", ")
  }
  return headers
}
