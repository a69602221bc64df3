/**
 * The keys of the HTTP cache, as HTTP caches keep them: a primary key per request (method, URL,
 * the chosen key headers and, for a per-user cache, a digest of the credentials) holds either the
 * response or, when responses vary, the list of request headers they vary on; each variant then
 * lives under a key that adds those headers' values.
 *
 * @internal
 */
import type * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import { CacheKey } from "@stalewise/core"
import * as Either from "effect/Either"

const byName = ([a]: readonly [string, string], [b]: readonly [string, string]) => (a < b ? -1 : a > b ? 1 : 0)

/** Derives the keys of one client's namespace; `PolicyError`-free: every part is a string. */
export const make = (options: {
  readonly namespace: string
  readonly keyHeaders: ReadonlyArray<string>
  readonly credentialHeaders: ReadonlyArray<string>
  /** Whether the credentials become part of the key (per-user cache). */
  readonly keyCredentials: boolean
}) => {
  const primaryPrefix = `${options.namespace}:request:`
  const variantPrefix = `${options.namespace}:variant:`
  const encode = (value: unknown) =>
    // only strings, nulls and arrays of them: the encoding cannot fail
    Either.getOrThrow(CacheKey.encode(value))

  /**
   * A digest of the credentials a request carries (`null` without any): only this digest of a
   * digest reaches the key, never the credential itself.
   */
  const credentialsOf = (request: HttpClientRequest.HttpClientRequest): string | null => {
    const present = options.credentialHeaders.flatMap((name) => {
      const value = request.headers[name]
      return value === undefined ? [] : [[name, value] as const]
    })
    return present.length === 0 ? null : CacheKey.digest(encode(present))
  }

  return {
    credentialsOf,
    /** The key of the request before its response is known. */
    primary: (request: HttpClientRequest.HttpClientRequest): string => {
      const params = [...request.urlParams].sort(byName)
      return primaryPrefix + CacheKey.digest(encode([
        request.method,
        request.url,
        params,
        request.hash._tag === "Some" ? request.hash.value : null,
        options.keyHeaders.map((name) => [name, request.headers[name] ?? null]),
        options.keyCredentials ? credentialsOf(request) : null
      ]))
    },
    /** The key of the variant of `primary` that `request` selects, for responses varying on `fields`. */
    variant: (primary: string, fields: ReadonlyArray<string>, request: HttpClientRequest.HttpClientRequest): string =>
      fields.length === 0
        ? primary
        : variantPrefix +
          CacheKey.digest(encode([primary, fields.map((name) => [name, request.headers[name] ?? null])]))
  }
}

/** The key functions of one client. */
export type Keys = ReturnType<typeof make>
