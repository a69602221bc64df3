/**
 * `SingleFlight`: one upstream call per key across processes that share a `CacheStore`. The
 * process that takes the key's lease fetches, stores, releases the lease and announces the
 * landing on the `InvalidationBus`; the others wait for the value to land — woken by the bus, or
 * polling the store without one — within a wait budget, then fetch themselves. Stale-while-
 * revalidate jobs and persisted CacheFirst functions run their upstream calls through it.
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as MetricLabel from "effect/MetricLabel"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import type * as Schema from "effect/Schema"
import type { CacheEntry } from "./CacheEntry.js"
import * as CacheMetrics from "./CacheMetrics.js"
import { CacheStore, getOrMiss, type Lease } from "./CacheStore.js"
import { makeToken } from "./internal/lease.js"
import * as InvalidationBus from "./InvalidationBus.js"

/**
 * How a wait on another process's lease ended: `landed` (its value arrived and was served),
 * `took-over` (it gave the lease up without a value; this process took it and fetched) or
 * `budget` (the wait budget ran out; this process fetched without the lease).
 *
 * @since 0.1.0
 * @category models
 */
export type Waited = "landed" | "took-over" | "budget"

/**
 * One flight: the key, and how to read, accept and fetch its value.
 *
 * @since 0.1.0
 * @category models
 */
export interface Flight<A, E, R> {
  readonly key: string
  /** Reads the key from the store, a failure being a miss. */
  readonly read: Effect.Effect<Option.Option<CacheEntry<A>>>
  /** Whether an entry that landed while this process waited serves this call. */
  readonly accept: (landed: CacheEntry<A>) => boolean
  /** Fetches from the upstream and stores the value (for its callers to share). */
  readonly fetch: Effect.Effect<CacheEntry<A>, E, R>
  /**
   * Whether this process already holds the key's lease by other means (a background refresh it
   * requested): then it fetches without waiting for itself.
   */
  readonly heldHere?: (() => boolean) | undefined
}

/**
 * Options of {@link make}.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** How long a fetch owns the key; released when it ends. Positive and finite. */
  readonly lease: Duration.DurationInput
  /** The wait budget: how long a process waits for another's value before fetching itself. */
  readonly wait: Duration.DurationInput
  /** The metrics' and logs' labels (`CacheMetrics.leaseWaits{result, strategy, …}`). */
  readonly annotations: CacheMetrics.Annotations
}

/**
 * A strategy's single flight over the `CacheStore` (and the `InvalidationBus`, if any) it was
 * built with.
 *
 * @since 0.1.0
 * @category models
 */
export interface SingleFlight {
  /** This instance's id in its bus messages. */
  readonly origin: string
  /** Runs the flight: fetches with the lease, or waits for another process's value. */
  readonly run: <A, E, R>(flight: Flight<A, E, R>) => Effect.Effect<CacheEntry<A>, E, R>
  /** Tells the other processes that a fetch of `key` ended: their waiters look at the store. */
  readonly announce: (key: string) => Effect.Effect<void>
  /**
   * Reads `key` like `CacheStore.getOrMiss` (a failure is a logged miss), and remembers whether
   * the store answered: while its last read failed, flights do not take leases (a store that is
   * down or hung would make the lease cost another timeout) and fetch at once.
   */
  readonly read: <A, I>(
    key: string,
    schema: Schema.Schema<A, I> | undefined
  ) => Effect.Effect<Option.Option<CacheEntry<A>>>
}

type Taken = { readonly _tag: "Acquired"; readonly lease: Lease } | { readonly _tag: "Held" } | {
  readonly _tag: "Unavailable"
}

const held: Taken = { _tag: "Held" }
const unavailable: Taken = { _tag: "Unavailable" }

/**
 * Builds a single flight over the `CacheStore` in context, woken by the `InvalidationBus` in
 * context when there is one.
 *
 * **Details**
 *
 * - The lease is the store's (`acquireLease`); a store that cannot lease (down) does not
 *   coordinate: the flight fetches at once, as reads already degrade; while the store's last
 *   read (through `read`) failed, the flight does not even try the lease. Neither does an instance
 *   wait for a lease it holds itself (a fetch of the key it started earlier).
 * - A waiter looks at the store when the bus announces the key (or flushes), backed by a slow
 *   poll (100 ms doubling to 1 s) in case the message is lost; without a bus it polls every 10 ms
 *   doubling to 250 ms. Each look also tries the lease: a holder that failed has released it.
 * - After `wait` the waiter fetches without the lease. Every wait is counted in
 *   `CacheMetrics.leaseWaits`.
 *
 * @example
 * ```ts
 * import { CacheStore, SingleFlight, TimePolicy } from "@stalewise/core"
 * import { Effect, Option } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const store = yield* CacheStore.CacheStore
 *   const policy = yield* TimePolicy.make({ lifetime: "1 minute" })
 *   const flight = yield* SingleFlight.make({ lease: "30 seconds", wait: "5 seconds", annotations: { strategy: "rates" } })
 *   const key = "rates:get:EUR"
 *   const entry = yield* flight.run({
 *     key,
 *     read: Effect.orElseSucceed(store.get<number>(key), () => Option.none()),
 *     accept: () => true,
 *     fetch: Effect.tap(TimePolicy.entry(policy, 1.08), (entry) => Effect.ignore(store.set(key, entry)))
 *   })
 *   return entry.value
 * }).pipe(Effect.provide(CacheStore.layerMemory))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options): Effect.Effect<SingleFlight, never, CacheStore> =>
  Effect.gen(function*() {
    const store = yield* CacheStore
    const bus = yield* Effect.serviceOption(InvalidationBus.InvalidationBus)
    const clock = yield* Effect.clock
    const now = () => clock.unsafeCurrentTimeMillis()
    const origin = makeToken()
    const waitMillis = Duration.toMillis(options.wait)
    const extra = Object.entries(options.annotations).map(([label, value]) => MetricLabel.make(label, value))
    const labels: Record<Waited, ReadonlyArray<MetricLabel.MetricLabel>> = {
      landed: [MetricLabel.make("result", "landed"), ...extra],
      "took-over": [MetricLabel.make("result", "took-over"), ...extra],
      budget: [MetricLabel.make("result", "budget"), ...extra]
    }
    const count = (waited: Waited) => CacheMetrics.leaseWaits.unsafeUpdate(1, labels[waited])

    const take = (key: string): Effect.Effect<Taken> =>
      store.acquireLease(key, options.lease).pipe(
        Effect.map(Option.match({ onNone: () => held, onSome: (lease): Taken => ({ _tag: "Acquired", lease }) })),
        Effect.catchAll(() => Effect.succeed(unavailable))
      )

    const announce = (key: string): Effect.Effect<void> =>
      Option.isNone(bus)
        ? Effect.void
        : Effect.suspend(() => bus.value.publish({ _tag: "Key", key, origin, at: now() }))

    // The keys this instance is fetching: a later flight of one of them (after an invalidation)
    // must not wait for this instance's own lease.
    const fetching = new Map<string, number>()
    const track = (key: string, delta: number) => {
      const n = (fetching.get(key) ?? 0) + delta
      if (n === 0) fetching.delete(key)
      else fetching.set(key, n)
    }

    // released, then announced: a waiter woken by the message can take the lease if we failed
    const holding = <A, E, R>(flight: Flight<A, E, R>, lease: Lease | undefined) =>
      Effect.suspend(() => {
        track(flight.key, 1)
        return flight.fetch.pipe(
          Effect.ensuring(
            Effect.suspend(() => {
              track(flight.key, -1)
              return Effect.zipRight(
                lease === undefined ? Effect.void : Effect.ignore(store.releaseLease(lease)),
                announce(flight.key)
              )
            })
          )
        )
      })

    const awaitLanding = <A, E, R>(
      flight: Flight<A, E, R>
    ): Effect.Effect<
      { readonly _tag: "Landed"; readonly entry: CacheEntry<A> } | Taken | { readonly _tag: "Budget" }
    > =>
      Effect.scoped(Effect.gen(function*() {
        const wake = yield* Queue.sliding<void>(1)
        // subscribed before the first look, so that a landing in between is not missed
        if (Option.isSome(bus)) {
          yield* bus.value.subscribe((event) => {
            if (event._tag === "Flush" || InvalidationBus.covers(event, flight.key)) Queue.unsafeOffer(wake, undefined)
          })
        }
        const deadline = now() + waitMillis
        let pause = Option.isSome(bus) ? 100 : 10
        while (true) {
          const current = yield* flight.read
          if (Option.isSome(current) && flight.accept(current.value)) {
            return { _tag: "Landed", entry: current.value } as const
          }
          const taken = yield* take(flight.key)
          if (taken._tag !== "Held") return taken
          const left = deadline - now()
          if (left <= 0) return { _tag: "Budget" } as const
          yield* Effect.ignore(Effect.timeout(Queue.take(wake), Math.min(left, pause)))
          pause = Math.min(pause * 2, Option.isSome(bus) ? 1_000 : 250)
        }
      }))

    // whether the store failed its last read: a flight then runs without asking for a lease
    let storeFailing = false
    const noteAnswer = (answered: boolean) => {
      storeFailing = !answered
    }
    const read = <A, I>(key: string, schema: Schema.Schema<A, I> | undefined) =>
      getOrMiss(store, key, schema, options.annotations, noteAnswer)

    const run = <A, E, R>(flight: Flight<A, E, R>): Effect.Effect<CacheEntry<A>, E, R> =>
      Effect.suspend(() =>
        storeFailing ? holding(flight, undefined) : Effect.flatMap(take(flight.key), (taken) => {
          if (taken._tag === "Acquired") return holding(flight, taken.lease)
          if (taken._tag === "Unavailable" || fetching.has(flight.key) || flight.heldHere?.() === true) {
            return holding(flight, undefined)
          }
          return Effect.flatMap(awaitLanding(flight), (waited) => {
            switch (waited._tag) {
              case "Landed":
                count("landed")
                return Effect.succeed(waited.entry)
              case "Acquired":
                count("took-over")
                return holding(flight, waited.lease)
              default:
                // the budget ran out, or the store stopped leasing while we waited
                count("budget")
                return holding(flight, undefined)
            }
          })
        })
      )

    return { origin, run, announce, read }
  })
