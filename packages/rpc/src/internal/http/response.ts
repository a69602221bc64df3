/**
 * The responses the cached client hands back: a stored copy served with RFC headers (`Age`) and
 * ours (`x-stalewise-*`), or the server's own response, streamed, with the bypass reason added.
 *
 * @internal
 */
import type * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as Stream from "effect/Stream"

/** Statuses (and HEAD) whose response cannot carry a body, not even an empty one. */
const bodiless = (request: HttpClientRequest.HttpClientRequest, status: number) =>
  status === 204 || status === 304 || request.method === "HEAD"

// The stored body is the decoded one (fetch already undid `content-encoding`), so the headers
// describing the encoded transfer no longer apply to it.
const transferHeaders = new Set(["content-encoding", "content-length", "transfer-encoding"])

/** A stored copy, with `headers` (the policy's served headers) and `extra` (ours). */
export const fromStored = (
  request: HttpClientRequest.HttpClientRequest,
  stored: { readonly status: number; readonly body: Uint8Array },
  headers: Readonly<Record<string, string>>,
  extra: Readonly<Record<string, string>>
): HttpClientResponse.HttpClientResponse => {
  const served = new globalThis.Headers()
  for (const [name, value] of Object.entries(headers)) {
    if (!transferHeaders.has(name)) served.set(name, value)
  }
  for (const [name, value] of Object.entries(extra)) served.set(name, value)
  const body = bodiless(request, stored.status) ? null : (stored.body as Uint8Array<ArrayBuffer>)
  return HttpClientResponse.fromWeb(request, new Response(body, { status: stored.status, headers: served }))
}

/** The server's response with `extra` headers added; its body streams through unread. */
export const withHeaders = (
  request: HttpClientRequest.HttpClientRequest,
  response: HttpClientResponse.HttpClientResponse,
  extra: Readonly<Record<string, string>>
): HttpClientResponse.HttpClientResponse => {
  const headers = new globalThis.Headers(response.headers)
  for (const [name, value] of Object.entries(extra)) headers.set(name, value)
  const body = bodiless(request, response.status) ? null : Stream.toReadableStream(response.stream)
  return HttpClientResponse.fromWeb(request, new Response(body, { status: response.status, headers }))
}
