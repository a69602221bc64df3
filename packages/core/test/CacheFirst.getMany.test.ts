/**
 * CacheFirst.getMany: in process first, then one store round trip, then one `lookupMany` call
 * for the misses; a key loading is joined, and a concurrent `get` joins the batch.
 */
import { assert, describe, it } from "@effect/vitest"
import { CacheFirst, CacheStore } from "@stalewise/core"
import { Effect, Exit, Fiber, TestClock } from "effect"

const settle = Effect.repeatN(Effect.yieldNow(), 100)

const countingStore = Effect.map(CacheStore.makeMemory({ capacity: 10_000 }), (memory) => {
  const calls = { get: 0, getMany: 0, keysRead: 0 }
  const store: CacheStore.CacheStore.Service = {
    ...memory,
    get: (key, schema) => Effect.suspend(() => (calls.get++, memory.get(key, schema))),
    getMany: (keys, schema) =>
      Effect.suspend(() => {
        calls.getMany++
        calls.keysRead += keys.length
        return CacheStore.getMany(memory, keys, schema)
      })
  }
  return { store, calls }
})

const makeUpstream = () => {
  const state = { lookup: 0, lookupMany: 0, sizes: [] as Array<number>, failing: false }
  return {
    state,
    lookup: (id: string) => Effect.sync(() => (state.lookup++, `${id}:one`)),
    lookupMany: (argsList: ReadonlyArray<[string]>) =>
      Effect.zipRight(
        Effect.sleep("1 second"),
        Effect.suspend(() => {
          state.lookupMany++
          state.sizes.push(argsList.length)
          return state.failing ? Effect.fail("down" as const) : Effect.succeed(argsList.map(([id]) => `${id}:batch`))
        })
      )
  }
}

const ids: ReadonlyArray<[string]> = Array.from({ length: 100 }, (_, i) => [`k${i}`])

describe("CacheFirst.getMany", () => {
  it.scoped("persisted, 100 keys, 30 in the store: 1 store round trip, 1 upstream call for 70; a get joins", () =>
    Effect.gen(function*() {
      const { calls, store } = yield* countingStore
      const upstream = makeUpstream()
      const build = CacheFirst.makePersisted({
        name: "fn",
        timeToLive: "1 hour",
        lookup: upstream.lookup,
        lookupMany: upstream.lookupMany
      }).pipe(Effect.provideService(CacheStore.CacheStore, store))
      const writer = yield* build
      yield* Effect.forEach(ids.slice(0, 30), ([id]) => writer.set([id], `${id}:stored`), { discard: true })
      const reader = yield* build
      calls.get = 0

      const many = yield* Effect.fork(reader.getManyWithOutcome(ids))
      yield* settle
      const one = yield* Effect.fork(reader.getWithOutcome("k50"))
      yield* settle
      yield* TestClock.adjust("1 second")
      const outcomes = yield* Fiber.join(many)
      const joined = yield* Fiber.join(one)
      assert.deepStrictEqual([calls.getMany, calls.keysRead, calls.get], [1, 100, 0])
      assert.deepStrictEqual([upstream.state.lookupMany, upstream.state.sizes, upstream.state.lookup], [1, [70], 0])
      assert.deepStrictEqual(
        outcomes.map((o) => o.value),
        ids.map(([id], i) => `${id}:${i < 30 ? "stored" : "batch"}`)
      )
      assert.deepStrictEqual([...new Set(outcomes.slice(0, 30).map((o) => o.status))], ["hit"])
      assert.deepStrictEqual([...new Set(outcomes.slice(30).map((o) => o.status))], ["miss"])
      assert.strictEqual(joined.value, "k50:batch")
      // all in process now: no store read, no upstream call
      const again = yield* reader.getManyWithOutcome(ids)
      assert.isTrue(again.every((o) => o.status === "hit"))
      assert.deepStrictEqual([calls.getMany, upstream.state.lookupMany], [1, 1])
    }))

  it.scoped("in process: a key loading by get is joined; a failing lookupMany fails the call and caches nothing", () =>
    Effect.gen(function*() {
      const upstream = makeUpstream()
      const cached = yield* CacheFirst.make({
        name: "fn",
        timeToLive: "1 hour",
        lookup: (id: string) => Effect.zipRight(Effect.sleep("1 second"), upstream.lookup(id)),
        lookupMany: upstream.lookupMany
      })
      const single = yield* Effect.fork(cached.get("a"))
      yield* settle
      const many = yield* Effect.fork(cached.getMany([["a"], ["b"], ["b"]]))
      yield* settle
      yield* TestClock.adjust("1 second")
      assert.strictEqual(yield* Fiber.join(single), "a:one")
      assert.deepStrictEqual(yield* Fiber.join(many), ["a:one", "b:batch", "b:batch"])
      assert.deepStrictEqual([upstream.state.lookup, upstream.state.sizes], [1, [1]])

      upstream.state.failing = true
      const failing = yield* Effect.fork(Effect.exit(cached.getMany([["c"], ["d"]])))
      yield* TestClock.adjust("1 second")
      assert.isTrue(Exit.isFailure(yield* Fiber.join(failing)))
      upstream.state.failing = false
      const again = yield* Effect.fork(cached.getMany([["c"], ["d"]]))
      yield* TestClock.adjust("1 second")
      assert.deepStrictEqual(yield* Fiber.join(again), ["c:batch", "d:batch"])
    }))
})
