/**
 * A chaos `CacheStore`: wraps a real store and, per operation, fails it, slows it down or hangs it,
 * with probabilities you choose — the store misbehaving the way Redis does on a bad day, in a
 * unit test. Draws come from a generator seeded with `seed`, so a run is repeatable; delays run on
 * Effect's `Clock`, so `TestClock` drives them; a hang never completes but stays interruptible,
 * so callers' timeouts fire as they would in production.
 *
 * @since 0.1.0
 */
import { CacheStore, PolicyError, TimePolicy } from "@stalewise/core"
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Random from "effect/Random"
import * as Ref from "effect/Ref"

/**
 * The store operations faults apply to.
 *
 * @since 0.1.0
 * @category models
 */
export type Operation = "get" | "set" | "delete" | "deletePrefix" | "acquireLease" | "releaseLease"

/**
 * What goes wrong with an operation. Each call first waits `latency` (if any), then hangs with
 * probability `hangRate`, else fails with probability `failureRate` (a `CacheStoreError`, reason
 * `Unavailable`), else runs on the real store.
 *
 * @since 0.1.0
 * @category models
 */
export interface Faults {
  /** Probability in `[0, 1]` that a call fails with `CacheStoreError` (`Unavailable`). Default 0. */
  readonly failureRate?: number | undefined
  /** Probability in `[0, 1]` that a call never completes (until interrupted). Default 0. */
  readonly hangRate?: number | undefined
  /** Added to every call, on Effect's `Clock`. Default none. */
  readonly latency?: Duration.DurationInput | undefined
}

/**
 * Faults for every operation, overridden per operation by `operations`; `seed` makes the draws
 * repeatable (default 0).
 *
 * @since 0.1.0
 * @category models
 */
export interface Options extends Faults {
  /** Faults of one operation, replacing the defaults above for it (fields not given inherit). */
  readonly operations?: { readonly [O in Operation]?: Faults | undefined } | undefined
  /** Seeds the generator the probabilities are drawn from. Default 0. */
  readonly seed?: number | string | undefined
}

/**
 * How many faults were injected, per kind and in total.
 *
 * @since 0.1.0
 * @category models
 */
export interface Injected {
  readonly failures: number
  readonly hangs: number
  readonly delayed: number
}

/**
 * The control of a chaos store: change its faults while a test runs (Redis goes down *now*), and
 * count what it injected.
 *
 * @since 0.1.0
 * @category tags
 */
export class ChaosStore extends Context.Tag("@stalewise/testing/ChaosStore")<ChaosStore, ChaosStore.Service>() {}

/**
 * @since 0.1.0
 * @category models
 */
export declare namespace ChaosStore {
  /**
   * @since 0.1.0
   * @category models
   */
  export interface Service {
    /** The faulty store, to provide as the `CacheStore`. */
    readonly store: CacheStore.CacheStore.Service
    /** Replaces the faults (not the generator: draws continue from where they are). */
    readonly configure: (options: Options) => Effect.Effect<void, PolicyError.PolicyError>
    /** What was injected so far. */
    readonly injected: Effect.Effect<Injected>
  }
}

interface ResolvedFaults {
  readonly failureRate: number
  readonly hangRate: number
  readonly latency: Duration.Duration | undefined
}

const operations: ReadonlyArray<Operation> = ["get", "set", "delete", "deletePrefix", "acquireLease", "releaseLease"]

const probability = (option: string, p: number | undefined): Either.Either<number, PolicyError.PolicyError> =>
  p === undefined
    ? Either.right(0)
    : p >= 0 && p <= 1
    ? Either.right(p)
    : Either.left(new PolicyError.PolicyError({ reason: "InvalidValue", option, detail: `${p} is not in [0, 1]` }))

const resolve = (
  options: Options
): Either.Either<Readonly<Record<Operation, ResolvedFaults>>, PolicyError.PolicyError> =>
  Either.gen(function*() {
    const resolved: Partial<Record<Operation, ResolvedFaults>> = {}
    for (const operation of operations) {
      const own = options.operations?.[operation]
      const at = (field: string) =>
        own?.[field as keyof Faults] !== undefined ? `operations.${operation}.${field}` : field
      const latency = own?.latency ?? options.latency
      resolved[operation] = {
        failureRate: yield* probability(at("failureRate"), own?.failureRate ?? options.failureRate),
        hangRate: yield* probability(at("hangRate"), own?.hangRate ?? options.hangRate),
        latency: latency === undefined ? undefined : yield* TimePolicy.finiteDuration(at("latency"), latency)
      }
    }
    return resolved as Record<Operation, ResolvedFaults>
  })

/**
 * Wraps `store` in chaos. Fails with `PolicyError` for a probability outside `[0, 1]` or a
 * latency that is not a positive, finite duration.
 *
 * @example
 * ```ts
 * import { CacheStore } from "@stalewise/core"
 * import * as ChaosStore from "@stalewise/testing/ChaosStore"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const memory = yield* CacheStore.makeMemory()
 *   // every get fails one time in four, writes take 50 ms, a lease request hangs one time in ten
 *   const chaos = yield* ChaosStore.make(memory, {
 *     seed: 42,
 *     operations: { get: { failureRate: 0.25 }, set: { latency: "50 millis" }, acquireLease: { hangRate: 0.1 } }
 *   })
 *   return chaos.store
 * })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  store: CacheStore.CacheStore.Service,
  options: Options = {}
): Effect.Effect<ChaosStore.Service, PolicyError.PolicyError> =>
  Effect.gen(function*() {
    const faults = yield* Ref.make(yield* resolve(options))
    const random = Random.make(options.seed ?? 0)
    const counts = yield* Ref.make<Injected>({ failures: 0, hangs: 0, delayed: 0 })
    const count = (kind: keyof Injected) => Ref.update(counts, (c) => ({ ...c, [kind]: c[kind] + 1 }))

    const chaos = <A, E>(
      operation: Operation,
      run: Effect.Effect<A, E>
    ): Effect.Effect<A, E | CacheStore.CacheStoreError> =>
      Effect.gen(function*() {
        const f = (yield* Ref.get(faults))[operation]
        if (f.latency !== undefined) {
          yield* count("delayed")
          yield* Effect.sleep(f.latency)
        }
        // both draws always happen, so one operation's settings never shift another's draws
        const hang = (yield* random.next) < f.hangRate
        const fail = (yield* random.next) < f.failureRate
        if (hang) {
          yield* count("hangs")
          return yield* Effect.never
        }
        if (fail) {
          yield* count("failures")
          return yield* new CacheStore.CacheStoreError({
            reason: "Unavailable",
            backend: chaosStore.backend,
            method: operation,
            cause: new Error("injected by ChaosStore")
          })
        }
        return yield* run
      })

    const chaosStore: CacheStore.CacheStore.Service = {
      [CacheStore.TypeId]: CacheStore.TypeId,
      // the wrapped store's name: its metrics (evictions, decode failures) are counted under it
      backend: store.backend,
      get: (key, schema) => chaos("get", store.get(key, schema)),
      set: (key, entry, schema) => chaos("set", store.set(key, entry, schema)),
      delete: (key) => chaos("delete", store.delete(key)),
      deletePrefix: (prefix) => chaos("deletePrefix", store.deletePrefix(prefix)),
      acquireLease: (key, duration) => chaos("acquireLease", store.acquireLease(key, duration)),
      releaseLease: (lease) => chaos("releaseLease", store.releaseLease(lease))
    }

    return ChaosStore.of({
      store: chaosStore,
      configure: (next) => Effect.flatMap(resolve(next), (resolved) => Ref.set(faults, resolved)),
      injected: Ref.get(counts)
    })
  })

/**
 * Puts chaos in front of the `CacheStore` in context: provides the faulty `CacheStore` and its
 * `ChaosStore` control. Build it over any backend, e.g.
 * `ChaosStore.layer(options).pipe(Layer.provide(CacheStore.layerMemory))`.
 *
 * @example
 * ```ts
 * import { CacheStore, Failover } from "@stalewise/core"
 * import * as ChaosStore from "@stalewise/testing/ChaosStore"
 * import { Effect, Layer } from "effect"
 *
 * const FlakyStore = ChaosStore.layer({ failureRate: 0.5, seed: 1 }).pipe(Layer.provide(CacheStore.layerMemory))
 *
 * // a store that fails half the time never fails a Failover: it falls back to the upstream
 * const program = Effect.gen(function*() {
 *   const rates = yield* Failover.make({
 *     name: "rate",
 *     lookup: (currency: string) => Effect.succeed(currency.length),
 *     timeout: "1 second"
 *   })
 *   return yield* rates.get("EUR")
 * }).pipe(Effect.scoped, Effect.provide(FlakyStore))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: Options = {}
): Layer.Layer<CacheStore.CacheStore | ChaosStore, PolicyError.PolicyError, CacheStore.CacheStore> =>
  Layer.effectContext(
    Effect.gen(function*() {
      const chaos = yield* make(yield* CacheStore.CacheStore, options)
      return Context.make(ChaosStore, chaos).pipe(Context.add(CacheStore.CacheStore, chaos.store))
    })
  )
