/**
 * Which requests and responses the HTTP cache refuses, and why. The RFC decisions come from the
 * response's `http-cache-semantics` policy (its parsed directives name the reason); the rules
 * that protect users from each other are ours and stricter than the RFC.
 *
 * @internal
 */
import type * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import type { BypassReason } from "../../CachedHttpClient.js"
import * as HttpPolicy from "./policy.js"

/** Request headers that carry a conditional or partial request of the caller's own. */
const conditionalHeaders = ["if-none-match", "if-modified-since", "if-match", "if-unmodified-since", "if-range"]

/** How requests carrying credentials are treated. */
export type CredentialsMode = "bypass" | "per-user" | "shared"

/** Why a request is not even looked up, or `undefined` when it may be. */
export const requestBypass = (
  request: HttpClientRequest.HttpClientRequest,
  cacheable: (request: HttpClientRequest.HttpClientRequest) => boolean,
  credentialHeaders: ReadonlyArray<string>,
  credentials: CredentialsMode
): BypassReason | undefined => {
  if (!cacheable(request)) return "method"
  if (credentials === "bypass" && credentialHeaders.some((name) => request.headers[name] !== undefined)) {
    return "credentials"
  }
  if (request.headers["range"] !== undefined) return "range"
  if (conditionalHeaders.some((name) => request.headers[name] !== undefined)) return "conditional"
  return undefined
}

/** The fields a response varies on: lower-case, sorted, without duplicates. */
export const varyFields = (headers: Readonly<Record<string, string>>): ReadonlyArray<string> => {
  const vary = headers["vary"]
  if (vary === undefined) return []
  const fields = new Set<string>()
  for (const field of vary.split(",")) {
    const name = field.trim().toLowerCase()
    if (name.length > 0) fields.add(name)
  }
  return [...fields].sort()
}

/**
 * Why a response must not be stored, or `undefined` when it may be. `shared`: the entry may be
 * served to other callers (everything but a per-user entry).
 */
export const responseBypass = (
  response: { readonly status: number; readonly headers: Readonly<Record<string, string>> },
  policy: HttpPolicy.Policy,
  storable: (status: number) => boolean,
  shared: boolean
): BypassReason | undefined => {
  const { reqcc, rescc } = HttpPolicy.toObject(policy)
  if (varyFields(response.headers).includes("*")) return "vary-star"
  // never replayed, not even to the same user: a stored cookie could resurrect a session
  if (response.headers["set-cookie"] !== undefined) return "set-cookie"
  if (rescc["no-store"] !== undefined || reqcc["no-store"] !== undefined) return "no-store"
  if (shared && rescc["private"] !== undefined) return "private"
  if (!storable(response.status)) return "status"
  // anything else the RFC refuses (a status it does not understand, a method it does not cache)
  if (!policy.storable()) return policy.toObject().m === "GET" || policy.toObject().m === "HEAD" ? "status" : "method"
  return undefined
}
