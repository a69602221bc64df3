/**
 * Cached Effect services: a layer that takes a service tag whose methods return Effects and
 * provides the **same tag** with the methods you choose cached by the strategy you choose
 * (failover or cache-first); the other members pass through untouched. Compose it in front of
 * the real implementation with `Layer.provide`.
 *
 * @since 0.1.0
 */
import { CacheFirst, CacheKey, type CacheStore, Failover, type PolicyError } from "@stalewise/core"
import type * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as MethodKey from "./MethodKey.js"

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
 * Options shared by both strategies.
 *
 * @since 0.1.0
 * @category models
 */
export interface CommonOptions<Args extends ReadonlyArray<any>, A> {
  /** The value's schema, for stores that serialise (KeyValueStore, Redis). */
  readonly schema?: Schema.Schema<A, any> | undefined
  /** Computes the key's id from the arguments, instead of digesting all of them. */
  readonly key?: ((...args: Args) => string) | undefined
}

/**
 * Failover for one method: see `Failover.make` in `@stalewise/core`. `requestTimeout` is not
 * offered here: its error would change the method's type.
 *
 * @since 0.1.0
 * @category models
 */
export interface FailoverStrategy<Args extends ReadonlyArray<any>, A, E> extends CommonOptions<Args, A> {
  readonly _tag: "Failover"
  readonly timeout: Duration.DurationInput
  readonly timeToLive?: Duration.DurationInput | undefined
  readonly onTimeout?: "continue" | "interrupt" | undefined
  readonly fallbackOn?: ((error: E) => boolean) | undefined
  readonly fallbackOnDefect?: boolean | undefined
  readonly singleFlight?: boolean | undefined
}

/**
 * Cache-first for one method: see `CacheFirst.make` in `@stalewise/core`. With `persisted`,
 * values also live in the `CacheStore`, so processes sharing it (Redis) serve each other.
 *
 * @since 0.1.0
 * @category models
 */
export interface CacheFirstStrategy<Args extends ReadonlyArray<any>, A> extends CommonOptions<Args, A> {
  readonly _tag: "CacheFirst"
  readonly timeToLive: Duration.DurationInput
  readonly capacity?: number | undefined
  readonly persisted?: boolean | undefined
}

/**
 * A strategy for one method.
 *
 * @since 0.1.0
 * @category models
 */
export type Strategy<Args extends ReadonlyArray<any>, A, E> = FailoverStrategy<Args, A, E> | CacheFirstStrategy<Args, A>

/**
 * Which methods of service `S` to cache, and how.
 *
 * @since 0.1.0
 * @category models
 */
export type Spec<S> = {
  readonly [K in EffectMethods<S>]?: Strategy<
    MethodTypes<S[K]>["args"],
    MethodTypes<S[K]>["success"],
    MethodTypes<S[K]>["error"]
  >
}

/**
 * Failover for a method: always ask, serve the last good value on failure or after `timeout`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const failover = <Args extends ReadonlyArray<any>, A, E>(
  options: Omit<FailoverStrategy<Args, A, E>, "_tag">
): FailoverStrategy<Args, A, E> => ({ ...options, _tag: "Failover" })

/**
 * Cache-first for a method: serve the cached value without asking, for `timeToLive`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const cacheFirst = <Args extends ReadonlyArray<any>, A>(
  options: Omit<CacheFirstStrategy<Args, A>, "_tag">
): CacheFirstStrategy<Args, A> => ({ ...options, _tag: "CacheFirst" })

/**
 * Wraps one method in its strategy. The strategy's own errors cannot appear in the method's
 * type, so an argument that cannot be keyed bypasses the cache (the method is called directly
 * and a warning is logged) instead of failing.
 */
const wrap = (
  serviceId: string,
  name: string,
  method: (...args: ReadonlyArray<unknown>) => Effect.Effect<unknown, unknown>,
  strategy: Strategy<ReadonlyArray<unknown>, unknown, unknown>
): Effect.Effect<
  (...args: ReadonlyArray<unknown>) => Effect.Effect<unknown, unknown>,
  PolicyError.PolicyError,
  CacheStore.CacheStore | Scope.Scope
> =>
  Effect.gen(function*() {
    const common = {
      name,
      namespace: MethodKey.namespaceOf(serviceId),
      lookup: method,
      schema: strategy.schema,
      key: strategy.key
    }
    const cached = strategy._tag === "Failover"
      ? yield* Failover.make({
        ...common,
        timeout: strategy.timeout,
        timeToLive: strategy.timeToLive,
        onTimeout: strategy.onTimeout,
        fallbackOn: strategy.fallbackOn,
        fallbackOnDefect: strategy.fallbackOnDefect,
        singleFlight: strategy.singleFlight
      })
      : strategy.persisted === true
      ? yield* CacheFirst.makePersisted({ ...common, timeToLive: strategy.timeToLive, capacity: strategy.capacity })
      : yield* CacheFirst.make({ ...common, timeToLive: strategy.timeToLive, capacity: strategy.capacity })
    return (...args: ReadonlyArray<unknown>) =>
      cached.get(...args).pipe(
        Effect.catchIf(
          (error): error is CacheKey.CacheKeyError => error instanceof CacheKey.CacheKeyError,
          (error) =>
            Effect.zipRight(
              Effect.logWarning("stalewise: arguments cannot be keyed, calling the method uncached").pipe(
                Effect.annotateLogs({ service: serviceId, method: name, error: error.message })
              ),
              method(...args)
            )
        )
      )
  })

/**
 * A layer providing `tag` with the methods named in `spec` cached; it requires the real `tag`
 * (provide it with `Layer.provide`) and a `CacheStore`. Keys are the tag's id (namespace), the
 * method name and the arguments, so two methods never share an entry. Fails with `PolicyError`
 * when a strategy's options are invalid.
 *
 * @example
 * ```ts
 * import { CacheStore } from "@stalewise/core"
 * import { CachedService } from "@stalewise/rpc"
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
 *   getUser: CachedService.failover({ timeout: "250 millis", fallbackOn: (error) => error !== "NotFound" }),
 *   countries: CachedService.cacheFirst({ timeToLive: "1 hour", capacity: 100 })
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
  spec: Spec<S>
): Layer.Layer<I, PolicyError.PolicyError, I | CacheStore.CacheStore> =>
  Layer.scoped(
    tag,
    Effect.gen(function*() {
      const service = yield* tag
      const cached: Record<PropertyKey, unknown> = Object.create(Object.getPrototypeOf(service))
      Object.defineProperties(cached, Object.getOwnPropertyDescriptors(service))
      for (const [name, strategy] of Object.entries(spec) as Array<[string, Strategy<any, any, any> | undefined]>) {
        if (strategy === undefined) continue
        const method = (service as Record<string, unknown>)[name]
        if (typeof method !== "function") continue
        cached[name] = yield* wrap(tag.key, name, method.bind(service), strategy)
      }
      return cached as S
    })
  )
