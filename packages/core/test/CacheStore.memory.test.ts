import { assert, describe, it } from "@effect/vitest"
import { CacheEntry, CacheMetrics, CacheStore } from "@stalewise/core"
import { Effect, Metric, Option } from "effect"
import { suite } from "./CacheStoreSuite.js"

suite("memory", CacheStore.layerMemoryWith({ capacity: 8 }), { serializes: false, capacity: 8 })
suite("memory (default layer)", CacheStore.layerMemory, { serializes: false })

describe("CacheStore.layerMemory", () => {
  const entry = <A>(value: A) => CacheEntry.make({ value, createdAt: 0, staleAt: 1_000, expiresAt: 60_000 })

  it.effect("a byte budget evicts the least recently used entries and refuses oversized ones", () =>
    Effect.gen(function*() {
      const store = yield* CacheStore.makeMemory({
        capacity: 100,
        maxBytes: 1_000,
        sizeOf: (v) => (v as string).length
      })
      const evictions = Metric.tagged(CacheMetrics.storeEvictions, "backend", "memory")
      const before = (yield* Metric.value(evictions)).count
      yield* store.set("a", entry("x".repeat(400)))
      yield* store.set("b", entry("x".repeat(400)))
      yield* store.set("c", entry("x".repeat(400)))
      assert.isTrue(Option.isNone(yield* store.get("a")), "a evicted to make room for c")
      assert.isTrue(Option.isSome(yield* store.get("b")))
      assert.isTrue(Option.isSome(yield* store.get("c")))
      yield* store.set("huge", entry("x".repeat(5_000)))
      assert.isTrue(Option.isNone(yield* store.get("huge")), "larger than the whole budget: not kept")
      assert.isAtLeast((yield* Metric.value(evictions)).count - before, 2)
    }))

  it.effect("the default size estimate weighs big values more than small ones", () =>
    Effect.gen(function*() {
      const store = yield* CacheStore.makeMemory({ capacity: 100, maxBytes: 4_096 })
      yield* store.set("small", entry({ id: 1 }))
      yield* store.set("big", entry({ rows: Array.from({ length: 1_000 }, (_, i) => ({ id: i })) }))
      assert.isTrue(Option.isSome(yield* store.get("small")))
      assert.isTrue(Option.isNone(yield* store.get("big")))
    }))

  it.effect("capacity and byte budget must be positive integers", () =>
    Effect.gen(function*() {
      for (const options of [{ capacity: 0 }, { capacity: 1.5 }, { capacity: -1 }, { maxBytes: 0 }]) {
        const error = yield* Effect.flip(CacheStore.makeMemory(options))
        assert.strictEqual(error._tag, "PolicyError")
        assert.strictEqual(error.reason, "InvalidValue")
      }
    }))
})
