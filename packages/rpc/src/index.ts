/**
 * A cached `HttpClient` for idempotent requests (GET and HEAD by default): failover (serve the
 * last good response when the server fails or is too slow) or cache-first (serve a stored
 * response without asking). Keys are the method, the URL with its query parameters, and the
 * request headers you name (e.g. `accept-language`); other requests pass through.
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
