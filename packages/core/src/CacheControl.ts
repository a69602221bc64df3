/**
 * Per-call cache control: run any cached call — a strategy's `get`, a method of a cached service,
 * a cached RPC — with `bypass` (skip the cache: ask the upstream, read and store nothing) or
 * `forceRefresh` (ask the upstream now and store its answer, whatever is cached). The mode is a
 * `FiberRef`, so it reaches the cache through any number of wrappers without changing a method's
 * signature, and the upstream call itself runs in the default mode: a cached call made inside a
 * bypassed lookup is cached as usual.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as FiberRef from "effect/FiberRef"
import { dual } from "effect/Function"
import { globalValue } from "effect/GlobalValue"

/**
 * How the next cached call treats the cache:
 * - `default`: the strategy's own rules;
 * - `bypass`: ask the upstream, read and store nothing (counted with status `bypass`);
 * - `forceRefresh`: ask the upstream now, store its answer; its failure reaches the caller (no
 *   fallback to the cached value).
 *
 * @since 0.1.0
 * @category models
 */
export type Mode = "default" | "bypass" | "forceRefresh"

/**
 * The mode of the cached calls made by the current fiber.
 *
 * @since 0.1.0
 * @category fiber refs
 */
export const currentMode: FiberRef.FiberRef<Mode> = globalValue(
  Symbol.for("@stalewise/core/CacheControl/currentMode"),
  () => FiberRef.unsafeMake<Mode>("default")
)

/**
 * Runs `self` with its cached calls in `mode` (e.g. a mode chosen per request from a header).
 *
 * @example
 * ```ts
 * import { CacheControl } from "@stalewise/core"
 * import { Effect } from "effect"
 *
 * const handle = (noCache: boolean, work: Effect.Effect<string>) =>
 *   work.pipe(CacheControl.withMode(noCache ? "bypass" : "default"))
 * ```
 *
 * @since 0.1.0
 * @category combinators
 */
export const withMode: {
  /**
   * Runs `self` with its cached calls in `mode`, data-last.
   *
   * @since 0.1.0
   * @category combinators
   */
  (mode: Mode): <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  /**
   * Runs `self` with its cached calls in `mode`, data-first.
   *
   * @since 0.1.0
   * @category combinators
   */
  <A, E, R>(self: Effect.Effect<A, E, R>, mode: Mode): Effect.Effect<A, E, R>
} = dual(2, <A, E, R>(self: Effect.Effect<A, E, R>, mode: Mode) => Effect.locally(self, currentMode, mode))

/**
 * Runs `self` with its cached calls skipping the cache: the upstream answers, nothing is read or
 * stored.
 *
 * @example
 * ```ts
 * import { CacheControl, CacheFirst } from "@stalewise/core"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const price = yield* CacheFirst.make({ name: "price", timeToLive: "1 hour", lookup: (sku: string) => Effect.succeed(9.99) })
 *   yield* price.get("sku-1") // cached from now on
 *   return yield* price.get("sku-1").pipe(CacheControl.bypass) // asks the upstream, stores nothing
 * }).pipe(Effect.scoped)
 * ```
 *
 * @since 0.1.0
 * @category combinators
 */
export const bypass = <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.locally(self, currentMode, "bypass")

/**
 * Runs `self` with its cached calls fetching now and storing the answer, whatever is cached.
 *
 * @example
 * ```ts
 * import { CacheControl, CacheFirst } from "@stalewise/core"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const price = yield* CacheFirst.make({ name: "price", timeToLive: "1 hour", lookup: (sku: string) => Effect.succeed(9.99) })
 *   // after changing the price upstream: fetch now, and cache the new price
 *   return yield* price.get("sku-1").pipe(CacheControl.forceRefresh)
 * }).pipe(Effect.scoped)
 * ```
 *
 * @since 0.1.0
 * @category combinators
 */
export const forceRefresh = <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.locally(self, currentMode, "forceRefresh")

/**
 * Reads the current mode, then runs the effect `f` chooses; the lookup `f` starts runs in the
 * default mode (see {@link upstream}).
 *
 * @since 0.1.0
 * @category combinators
 */
export const withCurrentMode = <A, E, R>(f: (mode: Mode) => Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.withFiberRuntime((fiber) => f(fiber.getFiberRef(currentMode)))

/**
 * Runs an upstream call in the default mode, so a caller's `bypass` or `forceRefresh` applies to
 * its own cached call only, never to the cached calls the upstream makes.
 *
 * @since 0.1.0
 * @category combinators
 */
export const upstream = <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.locally(self, currentMode, "default")
