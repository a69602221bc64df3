/**
 * Cached Effect services: a layer that takes a service tag whose methods return Effects and
 * provides the **same tag** with the methods you choose cached by the strategy you choose
 * (failover or cache-first); the other members pass through untouched. Compose it in front of
 * the real implementation with `Layer.provide`.
 *
 * @since 0.1.0
 */
import type { CacheStore, Outcome, PolicyError } from "@stalewise/core"
import type * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { wrap } from "./internal/wrap.js"
import * as MethodKey from "./MethodKey.js"
import type * as Strategy from "./Strategy.js"

/**
 * The names of a service's members that are functions returning an `Effect`.
 *
 * @since 0.1.0
 * @category models
 */
export type EffectMethods<S> = {
  readonly [K in keyof S]: S[K] extends (...args: ReadonlyArray<any>) => Effect.Effect<any, any, any> ? K : never
}[keyof S]

/**
 * The argument list, success and error of a method returning an `Effect`.
 *
 * @since 0.1.0
 * @category models
 */
export type MethodTypes<F> = F extends (...args: infer Args) => Effect.Effect<infer A, infer E, any> ? {
    readonly args: Args
    readonly success: A
    readonly error: E
  }
  : never

/**
 * Which methods of service `S` to cache, and how.
 *
 * @since 0.1.0
 * @category models
 */
export type Spec<S> = {
  readonly [K in EffectMethods<S>]?: Strategy.Strategy<
    MethodTypes<S[K]>["args"],
    MethodTypes<S[K]>["success"],
    MethodTypes<S[K]>["error"]
  >
}

/**
 * Options of {@link layer}.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Called with the method name and the outcome of every cached call (hit, miss, failover, age). */
  readonly onOutcome?: ((method: string, outcome: Outcome.Outcome<unknown>) => Effect.Effect<void>) | undefined
}

/**
 * A layer providing `tag` with the methods named in `spec` cached; it requires the real `tag`
 * (provide it with `Layer.provide`) and a `CacheStore`. Keys are the tag's id (namespace), the
 * method name and the arguments, so two methods never share an entry. Fails with `PolicyError`
 * when a strategy's options are invalid.
 *
 * @example
 * ```ts
 * import { CacheStore } from "@stalewise/core"
 * import { CachedService, Strategy } from "@stalewise/rpc"
 * import { Context, Effect, Layer } from "effect"
 *
 * class Users extends Context.Tag("app/Users")<Users, {
 *   readonly getUser: (id: number) => Effect.Effect<{ readonly id: number; readonly name: string }, "NotFound">
 *   readonly countries: (region: string) => Effect.Effect<ReadonlyArray<string>>
 *   readonly deleteUser: (id: number) => Effect.Effect<void>
 * }>() {}
 *
 * const UsersLive = Layer.succeed(Users, {
 *   getUser: (id) => Effect.succeed({ id, name: "Ada" }),
 *   countries: (region) => Effect.succeed([`${region}-1`]),
 *   deleteUser: () => Effect.void
 * })
 *
 * // Same tag, cached: getUser fails over, countries is served cache-first, deleteUser passes through.
 * const UsersCached = CachedService.layer(Users, {
 *   getUser: Strategy.failover({ timeout: "250 millis", fallbackOn: (error) => error !== "NotFound" }),
 *   countries: Strategy.cacheFirst({ timeToLive: "1 hour", capacity: 100 })
 * }).pipe(Layer.provide(UsersLive), Layer.provide(CacheStore.layerMemory))
 *
 * const program = Effect.flatMap(Users, (users) => users.getUser(1)).pipe(Effect.provide(UsersCached))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = <I, S extends object>(
  tag: Context.Tag<I, S>,
  spec: Spec<S>,
  options: Options = {}
): Layer.Layer<I, PolicyError.PolicyError, I | CacheStore.CacheStore> =>
  Layer.scoped(
    tag,
    Effect.gen(function*() {
      const service = yield* tag
      const cached: Record<PropertyKey, unknown> = Object.create(Object.getPrototypeOf(service))
      Object.defineProperties(cached, Object.getOwnPropertyDescriptors(service))
      for (
        const [name, strategy] of Object.entries(spec) as Array<[string, Strategy.Strategy<any, any, any> | undefined]>
      ) {
        if (strategy === undefined) continue
        const method = (service as Record<string, unknown>)[name]
        if (typeof method !== "function") continue
        cached[name] = yield* wrap(
          MethodKey.namespaceOf(tag.key),
          name,
          method.bind(service),
          strategy,
          options.onOutcome
        )
      }
      return cached as S
    })
  )
