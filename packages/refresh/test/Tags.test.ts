/**
 * Tags on jobs: `invalidateTag` makes every entry with the tag stale (soft) or a miss (hard), in
 * one store write, checked lazily on read against the entry's `createdAt`.
 */
import { assert, describe, it } from "@effect/vitest"
import { CacheStore, CacheTags, InvalidationBus } from "@stalewise/core"
import { Job, RefreshQueue } from "@stalewise/refresh"
import { Context, Effect, Layer, TestClock } from "effect"
import { eventually, FibersEnv, makeUpstream, settle, stored, unique, withEnv } from "./utils.js"

/** A memory store counting its calls by method. */
const countingStore = Effect.map(CacheStore.makeMemory({ capacity: 100_000 }), (memory) => {
  const calls = { get: 0, set: 0, delete: 0 }
  const store: CacheStore.CacheStore.Service = {
    ...memory,
    get: (key, schema) => Effect.suspend(() => (calls.get++, memory.get(key, schema))),
    set: (key, entry, schema) => Effect.suspend(() => (calls.set++, memory.set(key, entry, schema))),
    delete: (key) => Effect.suspend(() => (calls.delete++, memory.delete(key)))
  }
  return { store, calls }
})

describe("Job: tags", () => {
  it.effect("soft: tagged entries read as stale (one refresh each), untagged ones are untouched", () => {
    const upstream = makeUpstream()
    return withEnv(
      FibersEnv,
      Effect.gen(function*() {
        const users = yield* Job.make({ name: unique(), fetch: upstream.fetch, lifetime: "1 hour", tags: ["users"] })
        const other = yield* Job.make({ name: unique(), fetch: upstream.fetch, lifetime: "1 hour" })
        yield* users.get("a")
        yield* other.get("b")
        yield* TestClock.adjust("1 second")
        yield* users.invalidateTag("users")
        const stale = yield* users.getWithOutcome("a")
        assert.deepStrictEqual([stale.status, stale.value], ["stale", "a#1"])
        assert.strictEqual((yield* other.getWithOutcome("b")).status, "hit")
        yield* eventually(Effect.map(stored(users, "a"), (entry) => entry?.value === "a#3"))
        const fresh = yield* users.getWithOutcome("a")
        assert.deepStrictEqual([fresh.status, fresh.value], ["hit", "a#3"])
      })
    )
  })

  it.effect("soft, upstream down: the tagged value is still served (stale-if-error)", () => {
    const upstream = makeUpstream()
    return withEnv(
      FibersEnv,
      Effect.gen(function*() {
        const job = yield* Job.make({ name: unique(), fetch: upstream.fetch, lifetime: "1 hour", tags: ["t"] })
        yield* job.get("a")
        yield* TestClock.adjust("1 second")
        upstream.state.failing = true
        yield* job.invalidateTag("t", { mode: "soft" })
        for (let i = 0; i < 3; i++) {
          const outcome = yield* job.getWithOutcome("a")
          assert.deepStrictEqual([outcome.status, outcome.value], ["stale", "a#1"])
          yield* settle
        }
      })
    )
  })

  it.effect("hard: tagged entries are misses, fetched synchronously; entries written after are valid", () => {
    const upstream = makeUpstream()
    return withEnv(
      FibersEnv,
      Effect.gen(function*() {
        const job = yield* Job.make({ name: unique(), fetch: upstream.fetch, lifetime: "1 hour", tags: ["t"] })
        yield* job.get("a")
        yield* job.get("b")
        yield* TestClock.adjust("1 second")
        yield* job.invalidateTag("t", { mode: "hard" })
        const miss = yield* job.getWithOutcome("a")
        assert.deepStrictEqual([miss.status, miss.value], ["miss", "a#3"])
        const hit = yield* job.getWithOutcome("a")
        assert.deepStrictEqual([hit.status, hit.value], ["hit", "a#3"])
        assert.strictEqual((yield* job.getWithOutcome("b")).status, "miss")
        // set after the invalidation: valid
        yield* TestClock.adjust("1 second")
        yield* job.set(["c"], "set")
        assert.strictEqual((yield* job.getWithOutcome("c")).status, "hit")
      })
    )
  })

  it.effect("tags computed from the arguments and the value", () => {
    const upstream = makeUpstream()
    return withEnv(
      FibersEnv,
      Effect.gen(function*() {
        const job = yield* Job.make({
          name: unique(),
          fetch: upstream.fetch,
          lifetime: "1 hour",
          tags: ([id], value) => [`user:${id}`, value.endsWith("#1") ? "first" : "later"]
        })
        yield* job.get("a") // a#1: user:a, first
        yield* job.get("b") // b#2: user:b, later
        assert.deepStrictEqual((yield* stored(job, "a"))?.tags, ["user:a", "first"])
        yield* TestClock.adjust("1 second")
        yield* job.invalidateTag("user:b", { mode: "hard" })
        assert.strictEqual((yield* job.getWithOutcome("a")).status, "hit")
        assert.strictEqual((yield* job.getWithOutcome("b")).status, "miss")
        yield* TestClock.adjust("1 second")
        yield* job.invalidateTag("first", { mode: "hard" })
        assert.strictEqual((yield* job.getWithOutcome("a")).status, "miss")
        assert.strictEqual((yield* job.getWithOutcome("b")).status, "hit")
      })
    )
  })

  it.scoped("1,000 tagged entries invalidated in one store write; reads add no tag round trip", () =>
    Effect.gen(function*() {
      const upstream = makeUpstream()
      const { calls, store } = yield* countingStore
      const queue = yield* Layer.build(RefreshQueue.layerFibers())
      const job = yield* Job.make({ name: unique(), fetch: upstream.fetch, lifetime: "1 hour", tags: ["bulk"] }).pipe(
        Effect.provide(Context.add(queue, CacheStore.CacheStore, store))
      )
      const ids = Array.from({ length: 1_000 }, (_, i) => `k${i}`)
      yield* Effect.forEach(ids, (id) => job.get(id), { discard: true })
      yield* TestClock.adjust("1 second")
      const before = { ...calls }
      yield* job.invalidateTag("bulk", { mode: "hard" })
      assert.deepStrictEqual([calls.set - before.set, calls.get - before.get, calls.delete], [1, 1, 0])
      // a thousand reads: one get each, the tag known in process
      calls.get = 0
      const fetchedBefore = upstream.state.calls
      yield* Effect.forEach(ids, (id) => job.get(id), { discard: true })
      assert.strictEqual(upstream.state.calls - fetchedBefore, 1_000)
      // one get per read: the tag's times are known in process, no store read for them
      assert.strictEqual(calls.get, 1_000)
    }))

  it.scoped("two instances: the bus makes the other forget its tag times; without a message, refreshInterval bounds it", () =>
    Effect.gen(function*() {
      const upstream = makeUpstream()
      const store = yield* CacheStore.makeMemory()
      const controlled = yield* InvalidationBus.makeControlled
      const name = unique()
      const instance = Effect.gen(function*() {
        const queue = yield* Layer.build(RefreshQueue.layerFibers())
        const shared = Context.make(CacheStore.CacheStore, store).pipe(
          Context.add(InvalidationBus.InvalidationBus, controlled.bus)
        )
        const tags = yield* CacheTags.make({ refreshInterval: "10 seconds" }).pipe(Effect.provide(shared))
        return yield* Job.make({ name, fetch: upstream.fetch, lifetime: "1 hour", tags: ["t"] }).pipe(
          Effect.provide(Context.merge(shared, queue).pipe(Context.add(CacheTags.CacheTags, tags)))
        )
      })
      const a = yield* instance
      const b = yield* instance
      yield* a.get("x")
      assert.strictEqual((yield* b.getWithOutcome("x")).status, "hit") // b now knows tag t
      yield* TestClock.adjust("1 second")
      yield* a.invalidateTag("t", { mode: "hard" })
      assert.isAbove(controlled.inFlight().length, 0, "the message is on its way")
      assert.strictEqual((yield* b.getWithOutcome("x")).status, "hit", "b has not heard yet")
      controlled.deliverAll()
      assert.strictEqual((yield* b.getWithOutcome("x")).status, "miss", "heard: b re-reads the tag")

      // a lost message: b learns within refreshInterval
      yield* TestClock.adjust("1 second")
      yield* a.invalidateTag("t", { mode: "hard" })
      while (controlled.inFlight().length > 0) controlled.drop(0)
      assert.strictEqual((yield* b.getWithOutcome("x")).status, "hit")
      yield* TestClock.adjust("9 seconds")
      assert.strictEqual((yield* b.getWithOutcome("x")).status, "miss")
    }))
})
