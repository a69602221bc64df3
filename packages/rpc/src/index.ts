/**
 * Cache keys for calls to a service method or RPC: the service (or RPC group) id is the namespace,
 * the method name is the name, and the arguments are digested — so two methods with the same
 * arguments never share an entry (nameko-cachetools keyed on the arguments alone).
 *
 * @since 0.1.0
 */
export * as MethodKey from "./MethodKey.js"
