import { assert, describe, it } from "@effect/vitest"
import { CacheEntry, CacheStore } from "@stalewise/core"
import { ChaosStore } from "@stalewise/testing"
import { suite } from "@stalewise/testing/CacheStoreSuite"
import { Effect, Exit, Fiber, Layer, Option, TestClock } from "effect"

// Without faults the chaos store is the store it wraps: it passes the conformance suite.
suite(
  "chaos over memory, no faults",
  ChaosStore.layer().pipe(Layer.provide(CacheStore.layerMemoryWith({ capacity: 8 }))),
  {
    serializes: false,
    capacity: 8
  }
)

const entry = CacheEntry.make({ value: "v", createdAt: 0, staleAt: 60_000, expiresAt: 120_000 })

const outcomes = (options: ChaosStore.Options, n: number) =>
  Effect.gen(function*() {
    const chaos = yield* ChaosStore.make(yield* CacheStore.makeMemory(), options)
    const results: Array<boolean> = []
    for (let i = 0; i < n; i++) results.push(Exit.isSuccess(yield* Effect.exit(chaos.store.get(`k${i}`))))
    return results
  })

describe("ChaosStore", () => {
  it.effect("fails about failureRate of the calls, the same ones for the same seed", () =>
    Effect.gen(function*() {
      const first = yield* outcomes({ failureRate: 0.3, seed: "a" }, 1_000)
      const again = yield* outcomes({ failureRate: 0.3, seed: "a" }, 1_000)
      const other = yield* outcomes({ failureRate: 0.3, seed: "b" }, 1_000)
      const failures = first.filter((ok) => !ok).length
      assert.isAbove(failures, 240)
      assert.isBelow(failures, 360)
      assert.deepStrictEqual(again, first)
      assert.notDeepEqual(other, first)
    }))

  it.effect("faults are per operation: failing gets leaves sets alone; the error says what and where", () =>
    Effect.gen(function*() {
      const chaos = yield* ChaosStore.make(yield* CacheStore.makeMemory(), { operations: { get: { failureRate: 1 } } })
      yield* chaos.store.set("k", entry)
      const error = yield* Effect.flip(chaos.store.get("k"))
      assert.deepStrictEqual([error._tag, error.reason, error.method, error.backend], [
        "CacheStoreError",
        "Unavailable",
        "get",
        "memory"
      ])
      assert.include(error.message, "injected by ChaosStore")
      assert.deepStrictEqual(yield* chaos.injected, { failures: 1, hangs: 0, delayed: 0 })
    }))

  it.effect("latency delays each call on the Clock; a hang lasts until interrupted", () =>
    Effect.gen(function*() {
      const chaos = yield* ChaosStore.make(yield* CacheStore.makeMemory(), {
        latency: "100 millis",
        operations: { delete: { hangRate: 1 } }
      })
      const set = yield* Effect.fork(chaos.store.set("k", entry))
      yield* TestClock.adjust("99 millis")
      assert.isTrue(Option.isNone(yield* Fiber.poll(set)))
      yield* TestClock.adjust("1 millis")
      yield* Fiber.join(set)

      const del = yield* Effect.fork(chaos.store.delete("k"))
      yield* TestClock.adjust("1 hour")
      assert.isTrue(Option.isNone(yield* Fiber.poll(del)))
      yield* Fiber.interrupt(del)
      assert.deepStrictEqual(yield* chaos.injected, { failures: 0, hangs: 1, delayed: 2 })
    }))

  it.effect("configure changes the faults while the test runs: the store goes down, then comes back", () =>
    Effect.gen(function*() {
      const chaos = yield* ChaosStore.ChaosStore
      const store = yield* CacheStore.CacheStore
      yield* store.set("k", entry)
      yield* chaos.configure({ failureRate: 1 })
      assert.strictEqual((yield* Effect.flip(store.get("k"))).reason, "Unavailable")
      yield* chaos.configure({})
      assert.isTrue(Option.isSome(yield* store.get("k")))
    }).pipe(Effect.provide(ChaosStore.layer().pipe(Layer.provide(CacheStore.layerMemory)))))

  it.effect("a probability outside [0, 1] or a latency that is not a positive duration is a PolicyError", () =>
    Effect.gen(function*() {
      const memory = yield* CacheStore.makeMemory()
      const invalid = [
        { failureRate: 1.5 },
        { operations: { set: { hangRate: -0.1 } } },
        { latency: "-5 seconds" }
      ] as const
      const options = []
      for (const o of invalid) options.push((yield* Effect.flip(ChaosStore.make(memory, o))).option)
      assert.deepStrictEqual(options, ["failureRate", "operations.set.hangRate", "latency"])
    }))
})
