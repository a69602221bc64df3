/**
 * `getMany` on jobs: one store round trip for every key, one `fetchMany` call for the misses,
 * single flight per key kept (a key already loading is joined, and joins the batch).
 */
import { assert, describe, it } from "@effect/vitest"
import { CacheStore } from "@stalewise/core"
import { Job, RefreshQueue } from "@stalewise/refresh"
import { Context, Effect, Exit, Fiber, Layer, TestClock } from "effect"
import { settle, unique, UpstreamError } from "./utils.js"

/** A memory store counting its reads. */
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

const setup = (options: { readonly batch: boolean }) =>
  Effect.gen(function*() {
    const { calls, store } = yield* countingStore
    const upstream = { fetch: 0, fetchMany: 0, batchSizes: [] as Array<number>, failing: false }
    const queue = yield* Layer.build(RefreshQueue.layerFibers())
    const job = yield* Job.make({
      name: unique(),
      lifetime: "1 hour",
      fetch: (id: string) => Effect.sync(() => (upstream.fetch++, `${id}:one`)),
      fetchMany: options.batch
        ? (argsList: ReadonlyArray<readonly [string]>) =>
          Effect.zipRight(
            Effect.sleep("1 second"),
            Effect.suspend(() => {
              upstream.fetchMany++
              upstream.batchSizes.push(argsList.length)
              return upstream.failing
                ? Effect.fail(new UpstreamError({ call: upstream.fetchMany }))
                : Effect.succeed(argsList.map(([id]) => `${id}:batch`))
            })
          )
        : undefined
    }).pipe(Effect.provide(Context.add(queue, CacheStore.CacheStore, store)))
    return { job, calls, upstream }
  })

const ids: ReadonlyArray<[string]> = Array.from({ length: 100 }, (_, i) => [`k${i}`])

describe("Job.getMany", () => {
  it.scoped("100 keys, 30 cached: 1 store round trip, 1 upstream call for the 70 others; a concurrent get joins", () =>
    Effect.gen(function*() {
      const { calls, job, upstream } = yield* setup({ batch: true })
      yield* Effect.forEach(ids.slice(0, 30), ([id]) => job.set([id], `${id}:cached`), { discard: true })
      calls.get = 0

      const many = yield* Effect.fork(job.getManyWithOutcome(ids))
      yield* settle
      const one = yield* Effect.fork(job.getWithOutcome("k50"))
      yield* settle
      yield* TestClock.adjust("1 second")
      const outcomes = yield* Fiber.join(many)
      const joined = yield* Fiber.join(one)

      assert.deepStrictEqual([calls.getMany, calls.keysRead], [1, 100])
      assert.strictEqual(calls.get, 1, "only the concurrent get's own read")
      assert.deepStrictEqual([upstream.fetchMany, upstream.batchSizes, upstream.fetch], [1, [70], 0])
      assert.deepStrictEqual(outcomes.slice(0, 30).map((o) => o.status), Array(30).fill("hit"))
      assert.deepStrictEqual(outcomes.slice(30).map((o) => o.status), Array(70).fill("miss"))
      assert.deepStrictEqual(outcomes.map((o) => o.value), ids.map(([id], i) => `${id}:${i < 30 ? "cached" : "batch"}`))
      assert.deepStrictEqual([joined.status, joined.value], ["miss", "k50:batch"])
      // stored: the next getMany is all hits, without an upstream call
      const again = yield* job.getManyWithOutcome(ids)
      assert.isTrue(again.every((o) => o.status === "hit"))
      assert.strictEqual(upstream.fetchMany, 1)
    }))

  it.scoped("a key loading by get is joined by getMany, not fetched again; duplicates load once", () =>
    Effect.gen(function*() {
      const { job, upstream } = yield* setup({ batch: true })
      const first = yield* Effect.fork(job.getMany([["a"], ["b"]]))
      yield* settle
      const second = yield* Effect.fork(job.getMany([["b"], ["c"], ["c"], ["a"]]))
      yield* settle
      yield* TestClock.adjust("1 second")
      assert.deepStrictEqual(yield* Fiber.join(first), ["a:batch", "b:batch"])
      assert.deepStrictEqual(yield* Fiber.join(second), ["b:batch", "c:batch", "c:batch", "a:batch"])
      assert.deepStrictEqual([...upstream.batchSizes].sort(), [1, 2])
    }))

  it.scoped("a failing fetchMany fails the call; nothing is stored, the next call asks again", () =>
    Effect.gen(function*() {
      const { job, upstream } = yield* setup({ batch: true })
      upstream.failing = true
      const failed = yield* Effect.fork(Effect.exit(job.getMany([["a"], ["b"]])))
      yield* TestClock.adjust("1 second")
      const exit = yield* Fiber.join(failed)
      assert.isTrue(Exit.isFailure(exit))
      upstream.failing = false
      const again = yield* Effect.fork(job.getMany([["a"], ["b"]]))
      yield* TestClock.adjust("1 second")
      assert.deepStrictEqual(yield* Fiber.join(again), ["a:batch", "b:batch"])
      assert.strictEqual(upstream.fetchMany, 2)
    }))

  it.scoped("without fetchMany: one store round trip, one fetch per missing key", () =>
    Effect.gen(function*() {
      const { calls, job, upstream } = yield* setup({ batch: false })
      yield* job.set(["k0"], "k0:cached")
      const values = yield* job.getMany(ids.slice(0, 10))
      assert.deepStrictEqual(values, ids.slice(0, 10).map(([id], i) => i === 0 ? "k0:cached" : `${id}:one`))
      assert.strictEqual(calls.getMany, 1)
      assert.strictEqual(upstream.fetch, 9)
    }))
})
