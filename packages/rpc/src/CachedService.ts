/**
 * Cached Effect services: a layer that takes a service tag whose methods return Effects and
 * provides the **same tag** with the methods you choose cached by the strategy you choose
 * (failover or cache-first); the other members pass through untouched. Compose it in front of
 * the real implementation with `Layer.provide`. The same layer provides {@link Handles} for the
 * tag: a handle on each method's cache (`peek`, `set`, `invalidate`, `invalidateAll`).
 *
 * @since 0.1.0
 */
import type { CacheEntry, CacheKey, CacheStore, Outcome, PolicyError } from "@stalewise/core"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import type * as Option from "effect/Option"
import { handleOf, uncachedHandle, wrap } from "./internal/wrap.js"
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
): Layer.Layer<I | Handles<I>, PolicyError.PolicyError, I | CacheStore.CacheStore> =>
  Layer.scopedContext(
    Effect.gen(function*() {
      const service = yield* tag
      const cached: Record<PropertyKey, unknown> = Object.create(Object.getPrototypeOf(service))
      Object.defineProperties(cached, Object.getOwnPropertyDescriptors(service))
      const handles: Record<string, MethodHandle<ReadonlyArray<unknown>, unknown>> = {}
      for (const name of methodNames(service)) handles[name] = uncachedHandle
      for (
        const [name, strategy] of Object.entries(spec) as Array<[string, Strategy.Strategy<any, any, any> | undefined]>
      ) {
        if (strategy === undefined) continue
        const method = (service as Record<string, unknown>)[name]
        if (typeof method !== "function") continue
        const wrapped = yield* wrap(
          MethodKey.namespaceOf(tag.key),
          name,
          method.bind(service),
          strategy,
          options.onOutcome
        )
        cached[name] = wrapped.call
        handles[name] = handleOf(wrapped.cache)
      }
      return Context.make(tag, cached as S).pipe(
        Context.add(Handles(tag), handles as unknown as Handles.Service<S>)
      )
    })
  )

/**
 * A handle on one cached method's cache. Arguments that cannot be keyed fail with
 * `CacheKeyError`. For a method that is not cached, `cached` is false and every operation does
 * nothing (`peek` finds nothing).
 *
 * @since 0.1.0
 * @category models
 */
export interface MethodHandle<Args extends ReadonlyArray<any>, A> {
  /** Whether the method is cached. */
  readonly cached: boolean
  /** The cached entry for these arguments, with its timestamps; no side effects, no upstream call. */
  readonly peek: (...args: Args) => Effect.Effect<Option.Option<CacheEntry.CacheEntry<A>>, CacheKey.CacheKeyError>
  /** Caches `value` for `args` as if the method had just returned it. */
  readonly set: (args: Args, value: A) => Effect.Effect<void, CacheKey.CacheKeyError | CacheStore.CacheStoreError>
  /**
   * Drops the cached value for these arguments: the next call asks the method. A delete the store
   * refuses fails with `CacheStoreError`: the entry may still be there, and the caller is told.
   */
  readonly invalidate: (...args: Args) => Effect.Effect<void, CacheKey.CacheKeyError | CacheStore.CacheStoreError>
  /** Drops every cached value of the method; fails with `CacheStoreError` when the store refuses. */
  readonly invalidateAll: Effect.Effect<void, CacheStore.CacheStoreError>
}

/**
 * The identifier of the handles of service `I`'s caches, provided by {@link layer}.
 *
 * @since 0.1.0
 * @category tags
 */
export interface Handles<I> {
  readonly "~@stalewise/rpc/CachedService/Handles": (_: I) => I
}

/**
 * @since 0.1.0
 * @category tags
 */
export declare namespace Handles {
  /**
   * One handle per method of `S` that returns an `Effect`.
   *
   * @since 0.1.0
   * @category models
   */
  export type Service<S> = {
    readonly [K in EffectMethods<S>]: MethodHandle<MethodTypes<S[K]>["args"], MethodTypes<S[K]>["success"]>
  }
}

/**
 * The tag of the handles on `tag`'s caches: `yield* CachedService.Handles(Users)` gives one
 * {@link MethodHandle} per method, e.g. `handles.getUser.invalidate(1)` after changing user 1.
 * Provided by {@link layer} beside the cached service.
 *
 * @example
 * ```ts
 * import { CacheStore } from "@stalewise/core"
 * import { CachedService, Strategy } from "@stalewise/rpc"
 * import { Context, Effect, Layer } from "effect"
 *
 * class Countries extends Context.Tag("app/Countries")<Countries, {
 *   readonly list: (region: string) => Effect.Effect<ReadonlyArray<string>>
 * }>() {}
 *
 * const CountriesCached = CachedService.layer(Countries, {
 *   list: Strategy.cacheFirst({ timeToLive: "1 day" })
 * }).pipe(
 *   Layer.provide(Layer.succeed(Countries, { list: (region) => Effect.succeed([`${region}-1`]) })),
 *   Layer.provide(CacheStore.layerMemory)
 * )
 *
 * const program = Effect.gen(function*() {
 *   const countries = yield* Countries
 *   yield* countries.list("EU")
 *   const cache = yield* CachedService.Handles(Countries)
 *   const entry = yield* cache.list.peek("EU") // Some: cached, with its timestamps
 *   yield* cache.list.invalidate("EU") // the next call asks again
 *   yield* CachedService.invalidateAll(Countries) // every method, every argument
 *   return entry
 * }).pipe(Effect.provide(CountriesCached))
 * ```
 *
 * @since 0.1.0
 * @category tags
 */
export const Handles = <I, S>(tag: Context.Tag<I, S>): Context.Tag<Handles<I>, Handles.Service<S>> =>
  Context.GenericTag<Handles<I>, Handles.Service<S>>(`@stalewise/rpc/CachedService/Handles/${tag.key}`)

/**
 * Drops every cached value of every method of the service behind `tag`; fails with
 * `CacheStoreError` when the store refuses a delete (the other methods are still tried first).
 *
 * @since 0.1.0
 * @category combinators
 */
export const invalidateAll = <I, S>(
  tag: Context.Tag<I, S>
): Effect.Effect<void, CacheStore.CacheStoreError, Handles<I>> =>
  Effect.flatMap(Handles(tag), (handles) =>
    Effect.flatMap(
      Effect.forEach(
        Object.values(handles) as Array<MethodHandle<ReadonlyArray<unknown>, unknown>>,
        (handle) => Effect.either(handle.invalidateAll)
      ),
      (results) => {
        const refused = results.find(Either.isLeft)
        return refused === undefined ? Effect.void : Effect.fail(refused.left)
      }
    ))

const methodNames = (service: object): Array<string> => {
  const names = new Set<string>()
  for (let at: object | null = service; at !== null && at !== Object.prototype; at = Object.getPrototypeOf(at)) {
    for (const name of Object.getOwnPropertyNames(at)) {
      if (name !== "constructor" && typeof (service as Record<string, unknown>)[name] === "function") names.add(name)
    }
  }
  return [...names]
}
