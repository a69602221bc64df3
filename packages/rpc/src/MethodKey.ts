/**
 * Cache keys for calls to a service method or RPC: the service (or RPC group) id is the namespace,
 * the method name is the name, and the arguments are digested — so two methods with the same
 * arguments never share an entry (nameko-cachetools keyed on the arguments alone).
 *
 * @since 0.1.0
 */
import { CacheKey } from "@stalewise/core"
import type * as Either from "effect/Either"

/**
 * A service id usable as a key namespace: `:` (the key separator) and `%` are percent-encoded,
 * so distinct ids stay distinct.
 *
 * @since 0.1.0
 * @category utils
 */
export const namespaceOf = (serviceId: string): string => serviceId.replace(/%/g, "%25").replace(/:/g, "%3A")

/**
 * The key of a call to `method` of the service `serviceId` with `args`. Fails with
 * `CacheKeyError` when an argument cannot be keyed or the method name is empty or contains `:`.
 *
 * @example
 * ```ts
 * import { MethodKey } from "@stalewise/rpc"
 * import { Either } from "effect"
 *
 * const key = MethodKey.make("@app/Users", "getUser", [42])
 * console.log(Either.map(key, (k) => k.value)) // Right("@app/Users:getUser:<digest>")
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  serviceId: string,
  method: string,
  args: ReadonlyArray<unknown>
): Either.Either<CacheKey.CacheKey, CacheKey.CacheKeyError> => CacheKey.make(namespaceOf(serviceId), method, args)

/**
 * The prefix of every key of one service (or of one of its methods), for
 * `CacheStore.deletePrefix`.
 *
 * @since 0.1.0
 * @category utils
 */
export const prefix = (serviceId: string, method?: string | undefined): string =>
  CacheKey.prefix(namespaceOf(serviceId), method)
