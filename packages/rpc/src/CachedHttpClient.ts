/**
 * A cached `HttpClient` for idempotent requests (GET and HEAD by default): failover (serve the
 * last good response when the server fails or is too slow) or cache-first (serve a stored
 * response without asking). Keys are the method, the URL with its query parameters, and the
 * request headers you name (e.g. `accept-language`); other requests pass through.
 *
 * @since 0.1.0
 */
import * as HttpClient from "@effect/platform/HttpClient"
import type * as HttpClientError from "@effect/platform/HttpClientError"
import type * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import { CacheKey, type CacheStore, type Outcome, type PolicyError } from "@stalewise/core"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import { build } from "./internal/wrap.js"
import type * as Strategy from "./Strategy.js"

/**
 * A response as it is stored: status, headers and the whole body.
 *
 * @since 0.1.0
 * @category models
 */
export interface StoredResponse {
  readonly status: number
  readonly headers: Readonly<Record<string, string>>
  readonly body: Uint8Array
}

/**
 * The schema responses are stored with (the body as base64 in serialising stores).
 *
 * @since 0.1.0
 * @category schemas
 */
export const StoredResponse: Schema.Schema<StoredResponse, {
  readonly status: number
  readonly headers: Readonly<Record<string, string>>
  readonly body: string
}> = Schema.Struct({
  status: Schema.Number,
  headers: Schema.Record({ key: Schema.String, value: Schema.String }),
  body: Schema.Uint8ArrayFromBase64
})

/**
 * Options of {@link make}.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** How responses are cached. */
  readonly strategy: Strategy.Strategy<readonly [HttpClientRequest.HttpClientRequest], StoredResponse, unknown>
  /** Request headers that are part of the key, e.g. `["accept", "accept-language"]`. Default none. */
  readonly keyHeaders?: ReadonlyArray<string> | undefined
  /** Which requests are cached. Default: `GET` and `HEAD`. */
  readonly cacheable?: ((request: HttpClientRequest.HttpClientRequest) => boolean) | undefined
  /**
   * Which responses are stored. Default: status 200–299. Others reach the caller as they are; for
   * failover, a response with status 500 or more counts as a failure and falls back.
   */
  readonly storable?: ((status: number) => boolean) | undefined
  /** The key namespace. Default `"http"`. */
  readonly namespace?: string | undefined
}

/**
 * The header that tells where a cached client's response came from: an `Outcome.Status`
 * (`hit`, `miss`, `failover`).
 *
 * @since 0.1.0
 * @category constants
 */
export const statusHeader = "x-stalewise-status"

/**
 * The header with the age of a response served from the cache, in whole seconds.
 *
 * @since 0.1.0
 * @category constants
 */
export const ageHeader = "x-stalewise-age"

/** A response the strategy must not store; it still reaches the caller as it is. */
class Unstorable extends Data.TaggedError("Unstorable")<{ readonly response: StoredResponse }> {}

const read = (response: HttpClientResponse.HttpClientResponse) =>
  Effect.map(response.arrayBuffer, (body): StoredResponse => ({
    status: response.status,
    headers: { ...response.headers },
    body: new Uint8Array(body)
  }))

const toResponse = (
  request: HttpClientRequest.HttpClientRequest,
  stored: StoredResponse,
  outcome?: Outcome.Outcome<StoredResponse>
) => {
  const headers = new globalThis.Headers(stored.headers)
  if (outcome !== undefined) {
    headers.set(statusHeader, outcome.status)
    headers.set(ageHeader, String(Math.floor(Duration.toSeconds(outcome.age))))
  }
  // a null-body status cannot carry a body, even an empty one
  const body = stored.status === 204 || stored.status === 304 || request.method === "HEAD"
    ? null
    : (stored.body as Uint8Array<ArrayBuffer>)
  return HttpClientResponse.fromWeb(request, new Response(body, { status: stored.status, headers }))
}

/**
 * Wraps `client`: cacheable requests go through the strategy, the others straight to `client`.
 * Fails with `PolicyError` for invalid strategy options.
 *
 * **Details**
 *
 * - The whole body of a response is read to store it; the caller gets a response over the stored
 *   bytes, with `x-stalewise-status` and `x-stalewise-age` headers saying where it came from.
 * - Failover: a transport error or a status ≥ 500 falls back to the stored response; without one
 *   the caller gets the server's response (or error) unchanged.
 * - Cache-first: only storable responses (2xx) are cached; others reach the caller, uncached.
 *
 * @example
 * ```ts
 * import { FetchHttpClient, HttpClient } from "@effect/platform"
 * import { CacheStore } from "@stalewise/core"
 * import { CachedHttpClient, Strategy } from "@stalewise/rpc"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const client = yield* CachedHttpClient.make(yield* HttpClient.HttpClient, {
 *     strategy: Strategy.failover({ timeout: "500 millis" }),
 *     keyHeaders: ["accept-language"]
 *   })
 *   const response = yield* client.get("http://127.0.0.1:8080/rates")
 *   console.log(response.headers[CachedHttpClient.statusHeader]) // "miss", or "failover" when the server is down
 * }).pipe(Effect.scoped, Effect.provide(CacheStore.layerMemory), Effect.provide(FetchHttpClient.layer))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  client: HttpClient.HttpClient,
  options: Options
): Effect.Effect<HttpClient.HttpClient, PolicyError.PolicyError, CacheStore.CacheStore | Scope.Scope> =>
  Effect.gen(function*() {
    const strategy = options.strategy
    const keyHeaders = (options.keyHeaders ?? []).map((name) => name.toLowerCase())
    const cacheable = options.cacheable ?? ((request) => request.method === "GET" || request.method === "HEAD")
    const storable = options.storable ?? ((status) => status >= 200 && status < 300)

    // The upstream: run the request, read the body; an unstorable response fails the strategy
    // (so it is never cached), and a 5xx one lets failover fall back.
    const lookup = (
      _id: string,
      request: HttpClientRequest.HttpClientRequest
    ): Effect.Effect<StoredResponse, HttpClientError.HttpClientError | Unstorable> =>
      Effect.flatMap(client.execute(request), (response) =>
        Effect.flatMap(
          read(response),
          (stored) =>
            storable(stored.status) ? Effect.succeed(stored) : Effect.fail(new Unstorable({ response: stored }))
        ))

    // a 5xx response is an outage for failover; other unstorable responses are answers
    const cached = yield* build(
      {
        name: "request",
        namespace: options.namespace ?? "http",
        lookup,
        schema: StoredResponse,
        key: (id: string) => id
      },
      strategy._tag === "Failover" ?
        {
          ...strategy,
          key: undefined, // the key comes from the URL and keyHeaders
          fallbackOn: (error: HttpClientError.HttpClientError | Unstorable) =>
            error._tag === "Unstorable" ? error.response.status >= 500 : (strategy.fallbackOn?.(error) ?? true)
        } :
        { ...strategy, key: undefined }
    )

    const keyOf = (request: HttpClientRequest.HttpClientRequest) => {
      const headers = keyHeaders.map((name) => [name, request.headers[name] ?? null])
      const params = [...request.urlParams].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      return CacheKey.encode([
        request.method,
        request.url,
        params,
        request.hash._tag === "Some" ? request.hash.value : null,
        headers
      ])
    }

    return HttpClient.make((request) => {
      if (!cacheable(request)) return client.execute(request)
      const key = keyOf(request)
      // a key that cannot be derived cannot happen with strings only; pass through if it does
      if (key._tag === "Left") return client.execute(request)
      return cached.getWithOutcome(CacheKey.digest(key.right), request).pipe(
        Effect.map((outcome) => toResponse(request, outcome.value, outcome)),
        Effect.catchTags({
          Unstorable: (error) => Effect.succeed(toResponse(request, error.response)),
          // the id is a digest: never unkeyable
          CacheKeyError: (error) => Effect.die(error),
          RequestTimeoutError: (error) => Effect.die(error)
        })
      )
    })
  })

/**
 * A layer that replaces the `HttpClient` in context with a cached one over it.
 *
 * @example
 * ```ts
 * import { FetchHttpClient } from "@effect/platform"
 * import { CacheStore } from "@stalewise/core"
 * import { CachedHttpClient, Strategy } from "@stalewise/rpc"
 * import { Layer } from "effect"
 *
 * const HttpLive = CachedHttpClient.layer({ strategy: Strategy.cacheFirst({ timeToLive: "5 minutes" }) }).pipe(
 *   Layer.provide(FetchHttpClient.layer),
 *   Layer.provide(CacheStore.layerMemory)
 * )
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: Options
): Layer.Layer<HttpClient.HttpClient, PolicyError.PolicyError, HttpClient.HttpClient | CacheStore.CacheStore> =>
  Layer.scoped(HttpClient.HttpClient, Effect.flatMap(HttpClient.HttpClient, (client) => make(client, options)))
