/**
 * Demo part: the cached `HttpClient` against a real HTTP origin on 127.0.0.1 (the origin of the
 * `@stalewise/rpc` HTTP cache tests, which counts requests and body bytes per path). Shows that
 * two users never see each other's `/me`, what a per-user cache does, and a revalidation that
 * costs a `304` and no body.
 */
import { FetchHttpClient, HttpClient, HttpClientRequest } from "@effect/platform"
import { CacheStore } from "@stalewise/core"
import { CachedHttpClient, Strategy } from "@stalewise/rpc"
import * as HttpOrigin from "@stalewise/rpc/test/fixtures/HttpOrigin"
import { Console, Effect } from "effect"

/** The cached HttpClient over a live origin. */
export const httpCachePart = Effect.gen(function*() {
  const origin = yield* HttpOrigin.make
  yield* origin.route("/me", (request) => ({
    headers: { "cache-control": "private, max-age=60" },
    body: `you are ${request.headers["authorization"]?.replace("Bearer ", "") ?? "anonymous"}`
  }))
  yield* origin.route(
    "/doc",
    () => ({ headers: { "cache-control": "no-cache", etag: "\"v1\"" }, body: "x".repeat(10_000) })
  )
  const fetchClient = yield* HttpClient.HttpClient
  const shared = yield* CachedHttpClient.make(fetchClient, {
    strategy: Strategy.cacheFirst({ timeToLive: "1 minute" }),
    freshness: "response"
  })
  const perUser = yield* CachedHttpClient.make(fetchClient, {
    strategy: Strategy.cacheFirst({ timeToLive: "1 minute" }),
    freshness: "response",
    perUser: true,
    namespace: "http-per-user"
  })
  const show = (label: string, client: HttpClient.HttpClient, path: string, user?: string) =>
    Effect.gen(function*() {
      const request = HttpClientRequest.get(origin.url(path)).pipe(
        HttpClientRequest.setHeaders(user === undefined ? {} : { authorization: `Bearer ${user}` })
      )
      const response = yield* client.execute(request)
      const body = yield* response.text
      const status = response.headers[CachedHttpClient.statusHeader] ?? "?"
      const reason = response.headers[CachedHttpClient.bypassHeader]
      const shown = body.length > 40 ? `${body.length} bytes` : body
      yield* Console.log(`  ${label.padEnd(40)} ${(reason ? `${status}/${reason}` : status).padEnd(22)} ${shown}`)
    })

  yield* Console.log(`\n## The cached HttpClient against a real origin at ${origin.url("")}`)
  yield* show("GET /me as alice (shared cache)", shared, "/me", "alice")
  yield* show("GET /me as bob (shared cache)", shared, "/me", "bob")
  yield* show("GET /me as alice (per-user cache)", perUser, "/me", "alice")
  yield* show("GET /me as bob (per-user cache)", perUser, "/me", "bob")
  yield* show("GET /me as alice again (per-user cache)", perUser, "/me", "alice")
  yield* show("GET /doc (no-cache, ETag)", shared, "/doc")
  yield* show("GET /doc again: conditional request", shared, "/doc")
  const stats = yield* origin.stats("/doc")
  yield* Console.log(
    `  origin /doc: ${stats.requests} requests, ${stats.notModified} answered 304, ${stats.bodyBytes} body bytes sent`
  )
}).pipe(Effect.scoped, Effect.provide(CacheStore.layerMemory), Effect.provide(FetchHttpClient.layer))
