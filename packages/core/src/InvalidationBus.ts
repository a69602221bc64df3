/**
 * `InvalidationBus`: how instances tell each other that cached values changed, so that every
 * in-process tier (the tiered store's memory, CacheFirst's `Cache`, any L1) drops its copy. A
 * service tag with two operations — `publish` an invalidation, `subscribe` a listener — and its
 * layers: `layerLocal` for instances in one process, `RedisInvalidationBus` (in
 * `@stalewise/redis`) over Redis pub/sub across processes, and `makeControlled` for tests that
 * delay, reorder or drop messages.
 *
 * **Messages** name a key or a prefix, the instance that sent them (`origin`, so that an
 * instance can ignore its own) and when (`at`, the sender's `Clock`). A bus that may have lost
 * messages — its subscription dropped, or was just restored — delivers a local `Flush`: every
 * listener must then forget everything it holds, since it cannot know what it missed.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Predicate from "effect/Predicate"
import type * as Scope from "effect/Scope"

/**
 * @since 0.1.0
 * @category type ids
 */
export const TypeId: TypeId = "~@stalewise/core/InvalidationBus"

/**
 * @since 0.1.0
 * @category type ids
 */
export type TypeId = "~@stalewise/core/InvalidationBus"

/**
 * What changed: one key, or every key under a prefix (`""`: everything).
 *
 * @since 0.1.0
 * @category models
 */
export type Target =
  | { readonly _tag: "Key"; readonly key: string }
  | { readonly _tag: "Prefix"; readonly prefix: string }

/**
 * An invalidation message: `target` changed at `at` (epoch milliseconds, the sender's `Clock`),
 * said by the instance `origin`.
 *
 * @since 0.1.0
 * @category models
 */
export type Invalidation = Target & {
  readonly origin: string
  readonly at: number
}

/**
 * Delivered, never published, when the bus may have lost messages (its subscription dropped, or
 * was restored after a drop): every listener forgets everything it holds.
 *
 * @since 0.1.0
 * @category models
 */
export interface Flush {
  readonly _tag: "Flush"
  readonly reason: "Disconnected" | "Resubscribed"
}

/**
 * What a listener receives.
 *
 * @since 0.1.0
 * @category models
 */
export type Event = Invalidation | Flush

/**
 * The `InvalidationBus` service tag.
 *
 * @example
 * ```ts
 * import { InvalidationBus } from "@stalewise/core"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const bus = yield* InvalidationBus.InvalidationBus
 *   yield* bus.subscribe((event) => console.log(event._tag))
 *   yield* bus.publish({ _tag: "Key", key: "users:get:1", origin: "instance-a", at: Date.now() })
 * }).pipe(Effect.scoped, Effect.provide(InvalidationBus.layerLocal))
 * ```
 *
 * @since 0.1.0
 * @category tags
 */
export class InvalidationBus extends Context.Tag("@stalewise/core/InvalidationBus")<
  InvalidationBus,
  InvalidationBus.Service
>() {}

/**
 * @since 0.1.0
 * @category models
 */
export declare namespace InvalidationBus {
  /**
   * The bus contract.
   *
   * @since 0.1.0
   * @category models
   */
  export interface Service {
    readonly [TypeId]: TypeId
    /**
     * Sends an invalidation to every subscriber, the sender's own included (they filter by
     * `origin`). Never fails: a message the bus could not send is logged and counted, and the
     * receivers' bounds (flush on reconnect, the memory time-to-live) cover it.
     */
    readonly publish: (invalidation: Invalidation) => Effect.Effect<void>
    /**
     * Calls `listener` with every event from now until the scope closes. Listeners run
     * synchronously on delivery and must not throw; they drop copies, they do not do I/O.
     */
    readonly subscribe: (listener: (event: Event) => void) => Effect.Effect<void, never, Scope.Scope>
  }
}

/**
 * @since 0.1.0
 * @category guards
 */
export const isInvalidationBus = (u: unknown): u is InvalidationBus.Service => Predicate.hasProperty(u, TypeId)

/**
 * Whether `target` covers `key`.
 *
 * @since 0.1.0
 * @category predicates
 */
export const covers = (target: Target, key: string): boolean =>
  target._tag === "Key" ? target.key === key : key.startsWith(target.prefix)

/**
 * Builds a bus from its two operations.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: {
  readonly publish: (invalidation: Invalidation) => Effect.Effect<void>
  readonly subscribe: (listener: (event: Event) => void) => Effect.Effect<void, never, Scope.Scope>
}): InvalidationBus.Service => ({ [TypeId]: TypeId, publish: options.publish, subscribe: options.subscribe })

// Registers `listener` in `listeners` until the scope closes.
const register = <L>(listeners: Set<L>, listener: L): Effect.Effect<void, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => {
      listeners.add(listener)
    }),
    () =>
      Effect.sync(() => {
        listeners.delete(listener)
      })
  )

/**
 * Builds an in-process bus: `publish` calls every listener at once, in the publisher's fiber.
 * It never loses a message, so it never flushes.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeLocal: Effect.Effect<InvalidationBus.Service> = Effect.sync(() => {
  const listeners = new Set<(event: Event) => void>()
  return make({
    publish: (invalidation) =>
      Effect.sync(() => {
        for (const listener of listeners) listener(invalidation)
      }),
    subscribe: (listener) => register(listeners, listener)
  })
})

/**
 * An in-process bus, for several instances (stores, strategies) in one process.
 *
 * @example
 * ```ts
 * import { CacheFirst, CacheStore, InvalidationBus } from "@stalewise/core"
 * import { Effect, Layer } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const lookup = (id: number) => Effect.succeed({ id })
 *   const a = yield* CacheFirst.makePersisted({ name: "user", timeToLive: "1 minute", lookup })
 *   const b = yield* CacheFirst.makePersisted({ name: "user", timeToLive: "1 minute", lookup })
 *   yield* b.get(1)
 *   yield* a.invalidate(1) // b's in-process copy is gone too
 * }).pipe(Effect.scoped, Effect.provide(Layer.merge(CacheStore.layerMemory, InvalidationBus.layerLocal)))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerLocal: Layer.Layer<InvalidationBus> = Layer.effect(InvalidationBus, makeLocal)

/**
 * A message on its way to one subscriber, held by a {@link Controlled} bus.
 *
 * @since 0.1.0
 * @category models
 */
export interface InFlight {
  /** The subscriber it is for, in subscription order from 0. */
  readonly subscriber: number
  readonly event: Event
}

/**
 * A bus for tests: nothing is delivered until the test says so, in any order, or never.
 *
 * @since 0.1.0
 * @category models
 */
export interface Controlled {
  readonly bus: InvalidationBus.Service
  /** The messages published and not yet delivered or dropped, oldest first. */
  readonly inFlight: () => ReadonlyArray<InFlight>
  /** Delivers the in-flight message at `index` (any index: messages can be reordered). */
  readonly deliver: (index: number) => void
  /** Loses the in-flight message at `index`. */
  readonly drop: (index: number) => void
  /** Delivers every in-flight message, oldest first. */
  readonly deliverAll: () => void
  /** Delivers a `Flush` to `subscriber` at once, as a bus that lost its subscription would. */
  readonly flush: (subscriber: number) => void
}

/**
 * Builds a {@link Controlled} bus: each published message is queued once per subscriber, and
 * the test delivers, reorders or drops them one by one — the faults of a real bus (delay,
 * reordering across reconnects, loss) made deterministic.
 *
 * @example
 * ```ts
 * import { InvalidationBus } from "@stalewise/core"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const controlled = yield* InvalidationBus.makeControlled
 *   const seen: Array<string> = []
 *   yield* controlled.bus.subscribe((event) => seen.push(event._tag))
 *   yield* controlled.bus.publish({ _tag: "Key", key: "k", origin: "a", at: 0 })
 *   controlled.deliverAll() // seen: ["Key"]
 * }).pipe(Effect.scoped)
 * ```
 *
 * @since 0.1.0
 * @category testing
 */
export const makeControlled: Effect.Effect<Controlled> = Effect.sync(() => {
  const listeners: Array<((event: Event) => void) | undefined> = []
  let inFlight: Array<InFlight> = []
  const take = (index: number): InFlight | undefined => {
    const message = inFlight[index]
    if (message !== undefined) inFlight = [...inFlight.slice(0, index), ...inFlight.slice(index + 1)]
    return message
  }
  const deliver = (index: number) => {
    const message = take(index)
    if (message !== undefined) listeners[message.subscriber]?.(message.event)
  }
  return {
    bus: make({
      publish: (invalidation) =>
        Effect.sync(() => {
          listeners.forEach((listener, subscriber) => {
            if (listener !== undefined) inFlight = [...inFlight, { subscriber, event: invalidation }]
          })
        }),
      subscribe: (listener) =>
        Effect.acquireRelease(
          Effect.sync(() => listeners.push(listener) - 1),
          (index) =>
            Effect.sync(() => {
              listeners[index] = undefined
            })
        )
    }),
    inFlight: () => inFlight,
    deliver,
    drop: (index) => {
      take(index)
    },
    deliverAll: () => {
      while (inFlight.length > 0) deliver(0)
    },
    flush: (subscriber) => listeners[subscriber]?.({ _tag: "Flush", reason: "Resubscribed" })
  }
})
