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
export * as CachedHttpClient from "./CachedHttpClient.js"

/**
 * A cached `@effect/rpc` client: the same client `RpcClient.make` gives, with the RPCs you choose
 * cached by a strategy each. Keys are the RPC's tag and its Schema-encoded payload; values are
 * stored through the RPC's success schema, so a serialising store (KeyValueStore, Redis) gives
 * back exactly what the server sent (Dates, bigints, branded types).
 *
 * @since 0.1.0
 */
export * as CachedRpcClient from "./CachedRpcClient.js"

/**
 * Cached Effect services: a layer that takes a service tag whose methods return Effects and
 * provides the **same tag** with the methods you choose cached by the strategy you choose
 * (failover or cache-first); the other members pass through untouched. Compose it in front of
 * the real implementation with `Layer.provide`. The same layer provides {@link Handles} for the
 * tag: a handle on each method's cache (`peek`, `set`, `invalidate`, `invalidateAll`).
 *
 * @since 0.1.0
 */
export * as CachedService from "./CachedService.js"

/**
 * Cache keys for calls to a service method or RPC: the service (or RPC group) id is the namespace,
 * the method name is the name, and the arguments are digested — so two methods with the same
 * arguments never share an entry (nameko-cachetools keyed on the arguments alone).
 *
 * @since 0.1.0
 */
export * as MethodKey from "./MethodKey.js"

/**
 * How one cached method, RPC or request is cached: `Strategy.failover` (always ask, serve the
 * last good value on failure or after a timeout) or `Strategy.cacheFirst` (serve the cached value
 * without asking). Used by `CachedService`, `CachedRpcClient` and `CachedHttpClient`.
 *
 * @since 0.1.0
 */
export * as Strategy from "./Strategy.js"
