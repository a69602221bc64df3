/**
 * A cached `HttpClient` that respects HTTP. It never serves a response to a caller it was not
 * for: requests with credentials (`Authorization`, `Cookie`) bypass the cache unless they are
 * keyed per user; `private`, `no-store`, `Set-Cookie` and `Vary: *` responses are never stored in
 * a shared cache; `Vary` selects the stored variant. Freshness comes from the strategy's
 * durations or, with `freshness: "response"`, from the response itself (RFC 9111, through
 * `http-cache-semantics`); stored responses with `ETag` / `Last-Modified` are revalidated with
 * conditional requests, and a `304` renews them without a body. Three strategies: failover,
 * cache-first and stale-while-revalidate (RFC 5861 `stale-while-revalidate` / `stale-if-error`
 * honoured). Every response says what happened in `x-stalewise-status`.
 *
 * @since 0.1.0
 */
import * as HttpClient from "@effect/platform/HttpClient"
import type * as HttpClientError from "@effect/platform/HttpClientError"
import type * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import { CacheStore, PolicyError, TimePolicy } from "@stalewise/core"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Metric from "effect/Metric"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Engine from "./internal/http/engine.js"
import * as Keys from "./internal/http/keys.js"
import * as HttpMetrics from "./internal/http/metrics.js"
import type * as Strategy from "./Strategy.js"

/**
 * A response as it is served from the cache: status, headers and the whole body. (The store also
 * keeps the response's `http-cache-semantics` policy next to it.)
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
 * The schema of a stored response's status, headers and body (the body as base64 in serialising
 * stores).
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
 * Stale-while-revalidate for HTTP: a fresh stored response is served without asking; a stale one
 * (past `lifetime`, before `timeToLive`, or inside the response's own `stale-while-revalidate`
 * window) is served at once while one background request per key refreshes it; older or absent,
 * the caller waits for the server.
 *
 * @since 0.1.0
 * @category models
 */
export interface StaleWhileRevalidate {
  readonly _tag: "StaleWhileRevalidate"
  /** Age until a stored response is stale (with `freshness: "strategy"`). */
  readonly lifetime: Duration.DurationInput
  /** Age until a stored response is gone; it may be served stale until then. */
  readonly timeToLive: Duration.DurationInput
  /** How long one background refresh owns a key, across every process sharing the store. Default 1 minute. */
  readonly refreshLease?: Duration.DurationInput | undefined
}

/**
 * Builds the stale-while-revalidate strategy of a cached HTTP client.
 *
 * @example
 * ```ts
 * import { CachedHttpClient } from "@stalewise/rpc"
 *
 * const strategy = CachedHttpClient.staleWhileRevalidate({ lifetime: "1 minute", timeToLive: "1 hour" })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const staleWhileRevalidate = (options: Omit<StaleWhileRevalidate, "_tag">): StaleWhileRevalidate => ({
  ...options,
  _tag: "StaleWhileRevalidate"
})

/**
 * What happened to a request, in the `x-stalewise-status` header:
 * - `hit`: served from the cache, fresh, without asking the server;
 * - `stale`: served from the cache, stale, while a background request refreshes it;
 * - `revalidated`: the server answered a conditional request with `304 Not Modified`: the stored
 *   response was renewed and served, no body was transferred;
 * - `failover`: served from the cache because the server failed or was too slow;
 * - `miss`: the server's full response, now stored;
 * - `bypass`: the server's response, not cached: see {@link BypassReason} in `x-stalewise-bypass`.
 *
 * @since 0.1.0
 * @category models
 */
export type HttpStatus = "hit" | "stale" | "revalidated" | "failover" | "miss" | "bypass"

/**
 * Why a request went past the cache (`x-stalewise-bypass`):
 * - `method`: the request is not cacheable (not `GET`/`HEAD` by default);
 * - `credentials`: the request carries credentials (`Authorization`, `Cookie`) and the cache is
 *   not per-user;
 * - `conditional`: the request carries its own validators (`If-None-Match`, `If-Modified-Since`,
 *   `If-Match`, `If-Unmodified-Since`, `If-Range`);
 * - `range`: the request asks for part of the body (`Range`);
 * - `no-store`: the response (or the request) says `Cache-Control: no-store`;
 * - `private`: the response says `Cache-Control: private` and the entry would be shared;
 * - `set-cookie`: the response sets a cookie (never stored, not even per user);
 * - `vary-star`: the response says `Vary: *`;
 * - `status`: the response's status is not storable (by default only 2xx other than 206 is);
 * - `vary`: the response varies on a header in which this request differed from a concurrent one,
 *   twice in a row (rare): it was fetched again for this request alone.
 *
 * @since 0.1.0
 * @category models
 */
export type BypassReason =
  | "method"
  | "credentials"
  | "conditional"
  | "range"
  | "no-store"
  | "private"
  | "set-cookie"
  | "vary-star"
  | "status"
  | "vary"

/**
 * Options of {@link make}.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /**
   * How responses are cached: `Strategy.failover`, `Strategy.cacheFirst` or
   * {@link staleWhileRevalidate}. A strategy's `schema`, `key`, `capacity` and `persisted` do
   * not apply: responses always live in the `CacheStore`, under keys derived from the request.
   */
  readonly strategy:
    | Strategy.Strategy<readonly [HttpClientRequest.HttpClientRequest], StoredResponse, HttpClientError.HttpClientError>
    | StaleWhileRevalidate
  /**
   * Where freshness comes from. `"strategy"` (default): the strategy's durations (`lifetime`,
   * `timeToLive`), extended by the response's `stale-while-revalidate` / `stale-if-error`.
   * `"response"`: RFC 9111 from the response (`max-age`, `s-maxage`, `Expires`, `Age`,
   * `no-cache` = revalidate first, `must-revalidate`), RFC 5861 for serving stale; the
   * strategy's `timeToLive` is then how long a stale response is kept for revalidation.
   */
  readonly freshness?: "strategy" | "response" | undefined
  /** Request headers that are part of the key, e.g. `["accept", "accept-language"]`. Default none. */
  readonly keyHeaders?: ReadonlyArray<string> | undefined
  /** The request headers that carry credentials. Default `["authorization", "cookie"]`. */
  readonly credentialHeaders?: ReadonlyArray<string> | undefined
  /**
   * Cache per user: a request with credentials is keyed on a digest of them (the credentials
   * themselves are never stored), so each user has their own entries, which may be `private`.
   * Default false: requests with credentials bypass the cache.
   */
  readonly perUser?: boolean | undefined
  /**
   * DANGER: serve one user's response to another. Requests with credentials are cached under a
   * key that ignores them. Only for resources that are the same for every caller whatever the
   * credentials say (e.g. an API key that only meters usage). `private`, `no-store` and
   * `Set-Cookie` responses are still never stored. Cannot be combined with `perUser`.
   */
  readonly dangerouslyShareAcrossCredentials?: boolean | undefined
  /** Which requests are cached. Default: `GET` and `HEAD`. */
  readonly cacheable?: ((request: HttpClientRequest.HttpClientRequest) => boolean) | undefined
  /**
   * Which statuses are stored. Default: 200–299 except 206 (and the RFC must allow it). Others
   * reach the caller as they are; for failover and stale-if-error, a status of 500 or more falls
   * back to the stored response.
   */
  readonly storable?: ((status: number) => boolean) | undefined
  /** The key namespace. Default `"http"`. */
  readonly namespace?: string | undefined
}

/**
 * The header that tells where a cached client's response came from: an {@link HttpStatus}.
 *
 * @since 0.1.0
 * @category constants
 */
export const statusHeader = "x-stalewise-status"

/**
 * The header with the age of a response served from the cache, in whole seconds (the standard
 * `Age` header is set too).
 *
 * @since 0.1.0
 * @category constants
 */
export const ageHeader = "x-stalewise-age"

/**
 * The header with the {@link BypassReason} of a response that was not cached.
 *
 * @since 0.1.0
 * @category constants
 */
export const bypassHeader = "x-stalewise-bypass"

/**
 * Conditional requests sent for stored responses, tagged `strategy` (`http-failover`,
 * `http-cache-first`, `http-stale-while-revalidate`) and `result`: `not-modified` (a `304`
 * renewed the entry without a body) or `modified` (a full response replaced it). Answers are
 * counted on `CacheMetrics.outcomes` with the statuses of {@link HttpStatus} (and `reason` for
 * `bypass` and `failover`); background refreshes on `CacheMetrics.refreshes`.
 *
 * @since 0.1.0
 * @category metrics
 */
export const revalidations: Metric.Metric.Counter<number> = HttpMetrics.revalidations

const defaultCredentialHeaders = ["authorization", "cookie"]

/**
 * Wraps `client`: cacheable requests go through the strategy, the others straight to `client`.
 * Fails with `PolicyError` for invalid strategy options.
 *
 * **Details**
 *
 * - Keys: method, URL with its query parameters (in any order), the `keyHeaders`, per user a
 *   digest of the credentials, and the request headers the response names in `Vary`.
 * - The whole body of a stored response is read; the caller gets a response over the stored
 *   bytes, with `x-stalewise-status`, `x-stalewise-age` and `Age`. A response that is not stored
 *   streams through with `x-stalewise-status: bypass` and `x-stalewise-bypass: <reason>`.
 * - A stored response with `ETag` / `Last-Modified` is revalidated with `If-None-Match` /
 *   `If-Modified-Since`; a `304` renews it (status `revalidated`).
 * - Failover: always asks; a transport error or a status ≥ 500, or no answer within `timeout`,
 *   serves the stored response (`failover`).
 * - Cache-first: a fresh stored response is served without asking (`hit`); otherwise one request
 *   per key for all concurrent callers.
 * - Stale-while-revalidate: see {@link StaleWhileRevalidate}.
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
    if (options.perUser === true && options.dangerouslyShareAcrossCredentials === true) {
      return yield* new PolicyError.PolicyError({
        reason: "InvalidCombination",
        option: "dangerouslyShareAcrossCredentials",
        detail: "a cache cannot be per user and shared across credentials at once"
      })
    }
    const strategy = options.strategy
    const timePolicy = yield* strategy._tag === "StaleWhileRevalidate"
      ? TimePolicy.make({ lifetime: strategy.lifetime, timeToLive: strategy.timeToLive })
      : strategy._tag === "CacheFirst"
      ? TimePolicy.make({ lifetime: strategy.timeToLive })
      // failover always asks: a stored response is only ever a fallback, kept for `timeToLive`
      : TimePolicy.make({ lifetime: strategy.timeToLive ?? Duration.days(1) })
    const engineStrategy: Engine.Strategy = strategy._tag === "Failover"
      ? {
        _tag: "Failover",
        timeout: yield* TimePolicy.positiveDuration("timeout", strategy.timeout),
        interruptOnTimeout: strategy.onTimeout === "interrupt",
        fallbackOn: strategy.fallbackOn ?? (() => true),
        fallbackOnDefect: strategy.fallbackOnDefect ?? false,
        singleFlight: strategy.singleFlight ?? true
      }
      : strategy._tag === "CacheFirst"
      ? { _tag: "CacheFirst" }
      : {
        _tag: "StaleWhileRevalidate",
        refreshLease: yield* TimePolicy.finiteDuration("refreshLease", strategy.refreshLease ?? Duration.minutes(1))
      }
    const namespace = options.namespace ?? "http"
    if (namespace.length === 0 || namespace.includes(":")) {
      return yield* new PolicyError.PolicyError({
        reason: "InvalidValue",
        option: "namespace",
        detail: `${JSON.stringify(namespace)} must be non-empty and without ":"`
      })
    }
    const credentialHeaders = (options.credentialHeaders ?? defaultCredentialHeaders).map((name) => name.toLowerCase())
    const credentials = options.perUser === true
      ? "per-user"
      : options.dangerouslyShareAcrossCredentials === true
      ? "shared"
      : "bypass"
    const execute = Engine.make({
      client,
      store: yield* CacheStore.CacheStore,
      scope: yield* Effect.scope,
      keys: Keys.make({
        namespace,
        keyHeaders: (options.keyHeaders ?? []).map((name) => name.toLowerCase()),
        credentialHeaders,
        keyCredentials: credentials === "per-user"
      }),
      strategy: engineStrategy,
      freshness: options.freshness ?? "strategy",
      timePolicy,
      cacheable: options.cacheable ?? ((request) => request.method === "GET" || request.method === "HEAD"),
      storable: options.storable ?? ((status) => status >= 200 && status < 300 && status !== 206),
      credentialHeaders,
      credentials,
      statusHeader,
      ageHeader,
      bypassHeader
    })
    return HttpClient.make(execute)
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
