/**
 * A cached `@effect/rpc` client: the same client `RpcClient.make` gives, with the RPCs you choose
 * cached by a strategy each. Keys are the RPC's tag and its Schema-encoded payload; values are
 * stored through the RPC's success schema, so a serialising store (KeyValueStore, Redis) gives
 * back exactly what the server sent (Dates, bigints, branded types).
 *
 * @since 0.1.0
 */
import type * as Rpc from "@effect/rpc/Rpc"
import type * as RpcClient from "@effect/rpc/RpcClient"
import type { RpcClientError } from "@effect/rpc/RpcClientError"
import type * as RpcGroup from "@effect/rpc/RpcGroup"
import type * as RpcSchema from "@effect/rpc/RpcSchema"
import { CacheKey, type CacheStore, type Outcome, PolicyError } from "@stalewise/core"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import type * as CachedService from "./CachedService.js"
import { handleOf, uncachedHandle, wrap } from "./internal/wrap.js"
import * as MethodKey from "./MethodKey.js"
import type * as Strategy from "./Strategy.js"

// @effect/rpc is an optional peer dependency: loaded when a client is made, never by importing this
// package, so CachedService and CachedHttpClient work without it. Its absence when a client is
// made is a deployment mistake, not a runtime condition to handle: a defect.
const loadRpc = Effect.tryPromise({
  try: () => Promise.all([import("@effect/rpc/RpcClient"), import("@effect/rpc/RpcSchema")]),
  catch: (cause) =>
    new Error(
      "@stalewise/rpc: CachedRpcClient needs the optional peer dependency @effect/rpc (npm install @effect/rpc)",
      { cause }
    )
}).pipe(Effect.orDie)

/**
 * Which RPCs of a group to cache, and how, by tag. Streaming RPCs cannot be cached.
 *
 * @since 0.1.0
 * @category models
 */
export type Spec<Rpcs extends Rpc.Any> = {
  readonly [
    Current in Rpcs as Rpc.SuccessSchema<Current> extends RpcSchema.Stream<any, any> ? never : Current["_tag"]
  ]?: Strategy.Strategy<
    readonly [Rpc.Payload<Current>],
    Rpc.Success<Current>,
    Rpc.Error<Current> | RpcClientError
  >
}

/**
 * Options of {@link make}.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** The key namespace of this client's entries. Default `"rpc"`. */
  readonly namespace?: string | undefined
  /** Passed to `RpcClient.make`. */
  readonly spanPrefix?: string | undefined
  /** Called with the RPC's tag and the outcome of every cached call (hit, miss, failover, age). */
  readonly onOutcome?: ((tag: string, outcome: Outcome.Outcome<unknown>) => Effect.Effect<void>) | undefined
}

/**
 * Builds a client for `group` over the `Protocol` in context (as `RpcClient.make` does) with the
 * RPCs named in `spec` cached. Fails with `PolicyError` for invalid strategy options or a
 * streaming RPC in `spec`.
 *
 * **Details**
 *
 * - The key of a call is `namespace:Tag:digest`, the digest covering the payload as its schema
 *   encodes it, so equal payloads share an entry whatever their in-memory form.
 * - Values are stored through the RPC's success schema.
 * - Call options (`headers`, `context`) reach the server but are not part of the key; with
 *   single-flight, concurrent identical calls share the first caller's options.
 *
 * @example
 * ```ts
 * import { Rpc, RpcClient, RpcGroup, RpcSerialization } from "@effect/rpc"
 * import { FetchHttpClient } from "@effect/platform"
 * import { CacheStore } from "@stalewise/core"
 * import { CachedRpcClient, Strategy } from "@stalewise/rpc"
 * import { Effect, Layer, Schema } from "effect"
 *
 * class Users extends RpcGroup.make(
 *   Rpc.make("GetUser", { payload: { id: Schema.Number }, success: Schema.Struct({ name: Schema.String }) }),
 *   Rpc.make("Countries", { success: Schema.Array(Schema.String) })
 * ) {}
 *
 * const program = Effect.gen(function*() {
 *   const client = yield* CachedRpcClient.make(Users, {
 *     GetUser: Strategy.failover({ timeout: "300 millis" }),
 *     Countries: Strategy.cacheFirst({ timeToLive: "1 hour" })
 *   })
 *   return yield* client.GetUser({ id: 1 })
 * }).pipe(
 *   Effect.scoped,
 *   Effect.provide(CacheStore.layerMemory),
 *   Effect.provide(
 *     RpcClient.layerProtocolHttp({ url: "http://127.0.0.1:3000/rpc" }).pipe(
 *       Layer.provide([FetchHttpClient.layer, RpcSerialization.layerNdjson])
 *     )
 *   )
 * )
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = <Rpcs extends Rpc.Any>(
  group: RpcGroup.RpcGroup<Rpcs>,
  spec: Spec<Rpcs>,
  options: Options = {}
): Effect.Effect<
  RpcClient.RpcClient<Rpcs, RpcClientError>,
  PolicyError.PolicyError,
  RpcClient.Protocol | Rpc.MiddlewareClient<Rpcs> | CacheStore.CacheStore | Scope.Scope
> => Effect.map(makeWithHandles(group, spec, options), ({ client }) => client)

/**
 * One handle per RPC of a group that is not streaming, by tag; see `CachedService.MethodHandle`.
 * Its arguments are the RPC's payload.
 *
 * @since 0.1.0
 * @category models
 */
export type Handles<Rpcs extends Rpc.Any> = {
  readonly [
    Current in Rpcs as Rpc.SuccessSchema<Current> extends RpcSchema.Stream<any, any> ? never : Current["_tag"]
  ]: CachedService.MethodHandle<readonly [Rpc.Payload<Current>], Rpc.Success<Current>>
}

/**
 * Like {@link make}, with a handle on each RPC's cache beside the client: `peek`, `set`,
 * `invalidate` and `invalidateAll` by payload, e.g. after a mutation RPC changed what a cached
 * query returns. RPCs that are not cached have handles that do nothing.
 *
 * @example
 * ```ts
 * import { Rpc, RpcClient, RpcGroup, RpcSerialization } from "@effect/rpc"
 * import { FetchHttpClient } from "@effect/platform"
 * import { CacheStore } from "@stalewise/core"
 * import { CachedRpcClient, Strategy } from "@stalewise/rpc"
 * import { Effect, Layer, Schema } from "effect"
 *
 * class Users extends RpcGroup.make(
 *   Rpc.make("GetUser", { payload: { id: Schema.Number }, success: Schema.Struct({ name: Schema.String }) }),
 *   Rpc.make("RenameUser", { payload: { id: Schema.Number, name: Schema.String } })
 * ) {}
 *
 * const program = Effect.gen(function*() {
 *   const { client, handles } = yield* CachedRpcClient.makeWithHandles(Users, {
 *     GetUser: Strategy.cacheFirst({ timeToLive: "5 minutes" })
 *   })
 *   yield* client.RenameUser({ id: 1, name: "Grace" })
 *   yield* handles.GetUser.invalidate({ id: 1 }) // the next GetUser asks the server
 *   return yield* client.GetUser({ id: 1 })
 * }).pipe(
 *   Effect.scoped,
 *   Effect.provide(CacheStore.layerMemory),
 *   Effect.provide(
 *     RpcClient.layerProtocolHttp({ url: "http://127.0.0.1:3000/rpc" }).pipe(
 *       Layer.provide([FetchHttpClient.layer, RpcSerialization.layerNdjson])
 *     )
 *   )
 * )
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeWithHandles = <Rpcs extends Rpc.Any>(
  group: RpcGroup.RpcGroup<Rpcs>,
  spec: Spec<Rpcs>,
  options: Options = {}
): Effect.Effect<
  { readonly client: RpcClient.RpcClient<Rpcs, RpcClientError>; readonly handles: Handles<Rpcs> },
  PolicyError.PolicyError,
  RpcClient.Protocol | Rpc.MiddlewareClient<Rpcs> | CacheStore.CacheStore | Scope.Scope
> =>
  Effect.gen(function*() {
    const [RpcClient, RpcSchema] = yield* loadRpc
    const client = yield* RpcClient.make(group, { spanPrefix: options.spanPrefix })
    const namespace = MethodKey.namespaceOf(options.namespace ?? "rpc")
    const handles: Record<string, CachedService.MethodHandle<ReadonlyArray<unknown>, unknown>> = {}
    for (const [tag, rpc] of group.requests as unknown as ReadonlyMap<string, Rpc.AnyWithProps>) {
      if (!RpcSchema.isStreamSchema(rpc.successSchema)) handles[tag] = uncachedHandle
    }
    for (
      const [tag, strategy] of Object.entries(spec) as Array<[string, Strategy.Strategy<any, any, any> | undefined]>
    ) {
      if (strategy === undefined) continue
      const rpc = group.requests.get(tag) as Rpc.AnyWithProps | undefined
      if (rpc === undefined) continue
      if (RpcSchema.isStreamSchema(rpc.successSchema)) {
        return yield* new PolicyError.PolicyError({
          reason: "InvalidCombination",
          option: tag,
          detail: "streaming RPCs cannot be cached"
        })
      }
      // the client object nests `prefix.Method` tags under `prefix`
      const dot = tag.indexOf(".")
      const target: Record<string, any> = dot === -1 ? client : (client as any)[tag.slice(0, dot)]
      const method = dot === -1 ? tag : tag.slice(dot + 1)
      const call = target[method] as (payload: unknown, options?: unknown) => Effect.Effect<unknown, unknown>
      const encodePayload = Schema.encodeUnknownEither(rpc.payloadSchema as Schema.Schema<unknown, unknown>)
      const userKey = strategy.key as ((payload: unknown) => string) | undefined
      // the key id of a payload: the user's, or the digest of the payload as its schema encodes it
      const idOf = (payload: unknown): Either.Either<string, CacheKey.CacheKeyError | undefined> => {
        if (userKey !== undefined) return CacheKey.attempt(() => userKey(payload))
        const encoded = encodePayload(payload)
        const canonical = Either.isRight(encoded) ? CacheKey.encode(encoded.right) : Either.left(undefined)
        return Either.map(canonical, CacheKey.digest)
      }
      // the strategy sees (payload, key id, options): the key id is computed before the call
      const wrapped = yield* wrap(
        namespace,
        tag,
        (payload, _id, callOptions) => call(payload, callOptions),
        {
          ...strategy,
          schema: rpc.successSchema as Schema.Schema<unknown, unknown>,
          key: (_payload: unknown, id: unknown) => id as string
        },
        options.onOutcome
      )
      // the key is derived when the call runs
      target[method] = (payload: unknown, callOptions?: unknown) =>
        Effect.suspend(() => {
          const id = idOf(payload)
          if (Either.isRight(id)) return wrapped.call(payload, id.right, callOptions)
          // a `key` that throws: the strategy reports a CacheKeyError, which `wrap` turns into an
          // uncached call
          if (id.left !== undefined) return wrapped.call(payload, undefined, callOptions)
          // a payload that does not encode cannot be sent either: let the client report it
          return call(payload, callOptions)
        })
      handles[tag] = handleOf(wrapped.cache, ([payload]) =>
        Either.match(idOf(payload), {
          onRight: (id) => Effect.succeed([payload, id, undefined]),
          onLeft: (error) =>
            Effect.fail(
              error ??
                new CacheKey.CacheKeyError({ reason: "Unkeyable", path: "$[0]", found: "a payload its schema rejects" })
            )
        }))
    }
    return { client, handles: handles as unknown as Handles<Rpcs> }
  })
