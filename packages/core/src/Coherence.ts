/**
 * `Coherence`: what an in-process tier needs to stay coherent with the other instances — its
 * subscription to the `InvalidationBus`, and a guard on its loads. Used by CacheFirst's
 * in-process tier and the tiered store's memory tier; any L1 can use it the same way.
 *
 * **The guard** (a generation per load): a load (a read of the shared store, an upstream call)
 * is tracked from `begin` to `end`. An invalidation covering its key that this instance makes or
 * hears in between — or a bus `Flush` — overtakes it: its value is still returned to whoever
 * waits for it, but `mayWrite` says no, so it neither fills the in-process tier nor re-stores
 * the old value in the shared store.
 *
 * **Repair** (optional): an invalidation from another instance may still be on the bus when a
 * load lands here and writes the old value to the shared store. When that message arrives, and
 * the write started before the invalidation (`at`) and completed after it, `repair` runs for
 * the key (typically: delete it from the store and tell the others). The same happens for every
 * write of the last `repairWindow` when the bus flushes (it may have lost such a message).
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FiberSet from "effect/FiberSet"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import { makeToken } from "./internal/lease.js"
import * as InvalidationBus from "./InvalidationBus.js"

/**
 * A load in flight: of `key`, started at `startedAt` (epoch milliseconds).
 *
 * @since 0.1.0
 * @category models
 */
export interface Load {
  readonly key: string
  readonly startedAt: number
  /** Set when an invalidation covering `key` (or a flush) was made or heard since `startedAt`. */
  overtaken: boolean
  /** Set by `mayWrite`: the load went on to write its value. */
  writing: boolean
}

/**
 * Options of {@link make}.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** This instance's id in bus messages; its own messages are ignored. Default: a random UUID. */
  readonly origin?: string | undefined
  /**
   * Further origins whose messages are ignored: those that echo this instance's own writes (the
   * `origin` of the store it writes through, `CacheStore.Service.origin`).
   */
  readonly echoes?: ReadonlyArray<string | undefined> | undefined
  /**
   * Drops the in-process copies `target` covers (a `Flush` arrives as the prefix `""`). Called
   * synchronously for every invalidation heard from another instance.
   */
  readonly drop: (target: InvalidationBus.Target) => void
  /**
   * Undoes a late write of `key` to the shared store (see the module doc); without it, late
   * writes are only prevented, not repaired.
   */
  readonly repair?: ((key: string) => Effect.Effect<void>) | undefined
  /** How long a write stays repairable. Default 10 seconds. */
  readonly repairWindow?: Duration.DurationInput | undefined
  /**
   * How far apart the instances' clocks may be: a write is repaired when it started before
   * `at + clockTolerance` and completed after `at - clockTolerance`. Default 100 milliseconds.
   */
  readonly clockTolerance?: Duration.DurationInput | undefined
}

/**
 * An instance's coherence: its id, its load guard and its bus.
 *
 * @since 0.1.0
 * @category models
 */
export interface Coherence {
  readonly origin: string
  /** Whether a bus is in context (without one, only this instance's own invalidations count). */
  readonly connected: boolean
  /** Starts tracking a load of `key`. */
  readonly begin: (key: string) => Load
  /**
   * Whether the load may write its value (to the in-process tier, to the store): `false` once an
   * invalidation has overtaken it. Call it right before writing.
   */
  readonly mayWrite: (load: Load) => boolean
  /** Stops tracking the load; a write it made stays repairable for `repairWindow`. */
  readonly end: (load: Load) => void
  /**
   * Marks this instance's loads of `target` overtaken: call it before changing the store, so that
   * a load landing during the change does not write.
   */
  readonly overtake: (target: InvalidationBus.Target) => void
  /**
   * This instance invalidated `target` (after changing the store): overtakes its own loads of
   * it, and tells the other instances.
   */
  readonly invalidate: (target: InvalidationBus.Target) => Effect.Effect<void>
}

const defaultRepairWindow = Duration.seconds(10)
const defaultClockTolerance = Duration.millis(100)
// A bound on the writes kept for repair: the oldest go first.
const maxRecentWrites = 10_000

/**
 * Builds an instance's coherence and subscribes it to the `InvalidationBus` in context, if any,
 * until the scope closes.
 *
 * @example
 * ```ts
 * import { Coherence, InvalidationBus } from "@stalewise/core"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const copies = new Map<string, string>()
 *   const coherence = yield* Coherence.make({
 *     drop: (target) => {
 *       for (const key of copies.keys()) if (InvalidationBus.covers(target, key)) copies.delete(key)
 *     }
 *   })
 *   const load = coherence.begin("users:get:1")
 *   const value = "Ada" // read from the shared store
 *   if (coherence.mayWrite(load)) copies.set(load.key, value)
 *   coherence.end(load)
 * }).pipe(Effect.scoped, Effect.provide(InvalidationBus.layerLocal))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = Effect.fnUntraced(function*(
  options: Options
): Effect.fn.Return<Coherence, never, Scope.Scope> {
  const bus = yield* Effect.serviceOption(InvalidationBus.InvalidationBus)
  const clock = yield* Effect.clock
  const run = yield* FiberSet.makeRuntime<never>()
  const origin = options.origin ?? makeToken()
  const ignored = new Set([origin, ...(options.echoes ?? [])])
  const repairWindow = Duration.toMillis(options.repairWindow ?? defaultRepairWindow)
  const tolerance = Duration.toMillis(options.clockTolerance ?? defaultClockTolerance)
  const repair = options.repair
  const now = () => clock.unsafeCurrentTimeMillis()

  const loads = new Map<string, Set<Load>>()
  const recent = new Map<string, { readonly startedAt: number; readonly wroteAt: number }>()

  const overtake = (target: InvalidationBus.Target) => {
    if (target._tag === "Key") {
      const found = loads.get(target.key)
      if (found !== undefined) { for (const load of found) load.overtaken = true }
      return
    }
    for (const [key, found] of loads) {
      if (key.startsWith(target.prefix)) { for (const load of found) load.overtaken = true }
    }
  }

  const repairNow = (key: string) => {
    recent.delete(key)
    if (repair !== undefined) run(repair(key))
  }

  // A write is late when it started before the invalidation and completed after it.
  const repairLate = (target: InvalidationBus.Target, at: number | undefined) => {
    if (repair === undefined || recent.size === 0) return
    const horizon = now() - repairWindow
    for (const [key, write] of recent) {
      if (write.wroteAt < horizon) recent.delete(key)
      else if (
        InvalidationBus.covers(target, key) &&
        (at === undefined || (write.startedAt <= at + tolerance && write.wroteAt >= at - tolerance))
      ) repairNow(key)
    }
  }

  const hear = (event: InvalidationBus.Event) => {
    if (event._tag === "Flush") {
      const all = { _tag: "Prefix", prefix: "" } as const
      overtake(all)
      options.drop(all)
      repairLate(all, undefined)
      return
    }
    if (ignored.has(event.origin)) return
    overtake(event)
    options.drop(event)
    repairLate(event, event.at)
  }

  if (Option.isSome(bus)) yield* bus.value.subscribe(hear)

  return {
    origin,
    connected: Option.isSome(bus),
    begin: (key) => {
      const load: Load = { key, startedAt: now(), overtaken: false, writing: false }
      const found = loads.get(key)
      if (found === undefined) loads.set(key, new Set([load]))
      else found.add(load)
      return load
    },
    overtake,
    mayWrite: (load) => {
      if (load.overtaken) return false
      load.writing = true
      return true
    },
    end: (load) => {
      const found = loads.get(load.key)
      if (found === undefined || !found.delete(load)) return
      if (found.size === 0) loads.delete(load.key)
      if (!load.writing || repair === undefined) return
      // overtaken while its write was on its way: the write may have landed after the invalidation
      if (load.overtaken) return repairNow(load.key)
      recent.delete(load.key)
      if (recent.size >= maxRecentWrites) recent.delete(recent.keys().next().value!)
      recent.set(load.key, { startedAt: load.startedAt, wroteAt: now() })
    },
    invalidate: (target) =>
      Effect.suspend(() => {
        overtake(target)
        return Option.isSome(bus) ? bus.value.publish({ ...target, origin, at: now() }) : Effect.void
      })
  }
})
