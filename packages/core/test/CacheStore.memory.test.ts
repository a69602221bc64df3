import { assert, describe, it } from "@effect/vitest"
import { CacheEntry, CacheMetrics, CacheStore } from "@stalewise/core"
import { suite } from "@stalewise/testing/CacheStoreSuite"
import { Effect, Metric, Option } from "effect"
import * as ChildProcess from "node:child_process"
import { fileURLToPath } from "node:url"

suite("memory", CacheStore.layerMemoryWith({ capacity: 8 }), { serializes: false, capacity: 8 })
suite("memory (default layer)", CacheStore.layerMemory, { serializes: false })

describe("CacheStore.layerMemory", () => {
  const entry = <A>(value: A) => CacheEntry.make({ value, createdAt: 0, staleAt: 1_000, expiresAt: 60_000 })

  it.effect("a byte budget evicts the least recently used entries and refuses oversized ones", () =>
    Effect.gen(function*() {
      // 4,000 bytes: a quarter for the slots, 3,000 for entries of ~820 bytes each (value, key, overhead)
      const store = yield* CacheStore.makeMemory({
        capacity: 100,
        maxBytes: 4_000,
        sizeOf: (v) => (v as string).length
      })
      const evictions = Metric.tagged(CacheMetrics.storeEvictions, "backend", "memory")
      const before = (yield* Metric.value(evictions)).count
      for (const key of ["a", "b", "c", "d"]) yield* store.set(key, entry("x".repeat(600)))
      assert.isTrue(Option.isNone(yield* store.get("a")), "a evicted to make room for d")
      for (const key of ["b", "c", "d"]) assert.isTrue(Option.isSome(yield* store.get(key)), key)
      yield* store.set("huge", entry("x".repeat(5_000)))
      assert.isTrue(Option.isNone(yield* store.get("huge")), "larger than the whole budget: not kept")
      assert.isAtLeast((yield* Metric.value(evictions)).count - before, 2)
    }))

  it.effect("every entry keeps its own value and timestamps through evictions, refusals, replacements and deletes", () =>
    Effect.gen(function*() {
      // slots are reused: a refused, evicted, replaced or deleted entry must never leak into another
      const store = yield* CacheStore.makeMemory({ capacity: 4, maxBytes: 4_000, sizeOf: (v) => (v as string).length })
      const at = (i: number) => CacheEntry.make({ value: `v${i}`, createdAt: i, staleAt: i + 1, expiresAt: i + 1e12 })
      for (let round = 0; round < 50; round++) {
        yield* store.set("huge", entry("x".repeat(5_000))) // refused
        yield* store.set(`k${round % 6}`, at(round)) // evicts the least recent of 4 once full
        yield* store.set(`k${round % 6}`, at(round + 1_000)) // replaced in place
        if (round % 7 === 0) yield* store.delete(`k${(round + 3) % 6}`)
        const read = yield* store.get(`k${round % 6}`)
        assert.deepStrictEqual(Option.getOrThrow(read), at(round + 1_000))
      }
      let held = 0
      for (let k = 0; k < 6; k++) {
        const read = yield* store.get(`k${k}`)
        if (Option.isSome(read)) {
          held++
          assert.strictEqual(read.value.value, `v${read.value.createdAt}`, `k${k} has its own value`)
          assert.strictEqual(read.value.staleAt, read.value.createdAt + 1)
        }
      }
      assert.isAtMost(held, 4)
      assert.isTrue(Option.isNone(yield* store.get("huge")))
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

  it.effect("the default size estimate walks values of any depth, Proxies and throwing getters included", () =>
    Effect.gen(function*() {
      const store = yield* CacheStore.makeMemory({ capacity: 100, maxBytes: 64 * 1024 * 1024 })
      let deep: unknown = 1
      for (let i = 0; i < 100_000; i++) deep = [deep]
      const revoked = Proxy.revocable({}, {})
      revoked.revoke()
      const hostile = [deep, revoked.proxy, {
        get boom(): number {
          throw new Error("no")
        }
      }]
      for (const [i, value] of hostile.entries()) {
        yield* store.set(`k${i}`, entry(value))
        assert.isTrue(Option.isSome(yield* store.get(`k${i}`)), `value ${i} kept`)
      }
    }))
})

// Heap figures need a process of their own with `--expose-gc` (test/fixtures/heap.ts).
const measure = (...args: ReadonlyArray<string>): Record<string, number> => {
  const fixture = fileURLToPath(new URL("./fixtures/heap.ts", import.meta.url))
  const out = ChildProcess.execFileSync(process.execPath, ["--expose-gc", "--import", "tsx", fixture, ...args], {
    cwd: fileURLToPath(new URL("..", import.meta.url)),
    encoding: "utf8"
  })
  return JSON.parse(out.trim().split("\n").pop()!)
}

describe("CacheStore.layerMemory: the byte budget holds on the heap", () => {
  const MB = 1024 * 1024
  for (
    const [name, maxBytes, keyLength, capacity] of [
      ["tiny values under 1 KB keys", 8 * MB, 1024, 200_000],
      ["tiny values under short keys", 2 * MB, 16, 200_000]
    ] as const
  ) {
    it(`${name}: the heap the store holds is within 1.5x of maxBytes`, { timeout: 60_000 }, () => {
      const result = measure("budget", String(maxBytes), String(keyLength), String(capacity))
      console.log(`memory store, ${name}: heap ${(result.ratio!).toFixed(2)}x of maxBytes, ${result.entries} entries`)
      assert.isAtMost(result.ratio!, 1.5)
      assert.isAtLeast(result.entries!, 1_000, "the budget is used, not refused")
    })
  }

  it("a CacheFirst of capacity 100 holds no more after 200,000 distinct misses than after 100,000", {
    timeout: 60_000
  }, () => {
    // effect's Cache keeps a key object per missed read until its own eviction, which CacheFirst
    // leaves unbounded: 42 MB per 100,000 misses before the Cache was rebuilt periodically
    const result = measure("cache-first-churn")
    console.log(
      `CacheFirst churn: +${(result.firstBytes! / MB).toFixed(1)} MB over the first 100,000 misses, ` +
        `+${(result.secondBytes! / MB).toFixed(1)} MB over the next`
    )
    assert.isBelow(result.secondBytes!, 8 * MB)
  })

  it("keys derived from 300 distinct 1 MB arguments leave no digest memo behind", { timeout: 60_000 }, () => {
    const result = measure("digests")
    assert.isBelow(result.retainedBytes!, 16 * MB)
  })
})
