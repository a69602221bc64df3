/**
 * CacheFirst's refresh-ahead: a hit late in its `timeToLive` starts one background reload, so a
 * key read often never misses.
 */
import { assert, describe, it } from "@effect/vitest"
import { CacheFirst, CacheStore } from "@stalewise/core"
import type { Duration } from "effect"
import { Effect, Exit, Ref, TestClock } from "effect"

const settle = Effect.repeatN(Effect.yieldNow(), 100)

const makeUpstream = Effect.gen(function*() {
  const calls = yield* Ref.make(0)
  const delay = yield* Ref.make<Duration.DurationInput>("0 millis")
  const lookup = (id: string) =>
    Effect.gen(function*() {
      const n = yield* Ref.updateAndGet(calls, (c) => c + 1)
      yield* Effect.sleep(yield* Ref.get(delay))
      return `${id}#${n}`
    })
  return { calls, delay, lookup }
})

describe("CacheFirst: refresh-ahead", () => {
  it.scoped("refreshAhead outside (0, 1) is a PolicyError", () =>
    Effect.gen(function*() {
      for (const bad of [0, 1, 2, -1, Number.NaN]) {
        const exit = yield* Effect.exit(
          CacheFirst.make({ name: "fn", timeToLive: "1 minute", refreshAhead: bad, lookup: Effect.succeed })
        )
        assert.isTrue(Exit.isFailure(exit), `${bad} accepted`)
        assert.include(String(Exit.isFailure(exit) && exit.cause), "refreshAhead")
      }
    }))

  it.scoped("a hot key read every second never misses; one reload per key under concurrent readers", () =>
    Effect.gen(function*() {
      const upstream = yield* makeUpstream
      const cached = yield* CacheFirst.make({
        name: "fn",
        timeToLive: "10 seconds",
        refreshAhead: 0.8,
        lookup: upstream.lookup
      })
      yield* cached.get("a")
      yield* TestClock.adjust("7 seconds")
      yield* cached.get("a")
      yield* settle
      assert.strictEqual(yield* Ref.get(upstream.calls), 1, "no reload before 80% of timeToLive")

      yield* Ref.set(upstream.delay, "500 millis")
      const statuses = new Set<string>()
      for (let second = 1; second <= 60; second++) {
        yield* TestClock.adjust("1 second")
        const outcomes = yield* Effect.forEach([1, 2, 3, 4, 5], () => cached.getWithOutcome("a"), {
          concurrency: "unbounded"
        })
        for (const outcome of outcomes) statuses.add(outcome.status)
        yield* settle
      }
      assert.deepStrictEqual([...statuses], ["hit"])
      // about one reload per 8 seconds, not one per reader
      const calls = yield* Ref.get(upstream.calls)
      assert.isAtMost(calls, 1 + 60 / 8 + 1)
      assert.isAtLeast(calls, 1 + 60 / 10)
    }))

  it.scoped("persisted: two instances over one store, one reload (the lease)", () =>
    Effect.gen(function*() {
      const upstream = yield* makeUpstream
      const store = yield* CacheStore.makeMemory()
      const make = CacheFirst.makePersisted({
        name: "fn",
        timeToLive: "10 seconds",
        refreshAhead: 0.5,
        lookup: upstream.lookup
      }).pipe(Effect.provideService(CacheStore.CacheStore, store))
      const a = yield* make
      const b = yield* make
      yield* a.get("k")
      yield* b.get("k") // from the store
      assert.strictEqual(yield* Ref.get(upstream.calls), 1)
      yield* Ref.set(upstream.delay, "1 second")
      yield* TestClock.adjust("6 seconds")
      yield* Effect.forEach([a, b, a, b], (instance) => instance.get("k"), { concurrency: "unbounded" })
      yield* settle
      yield* TestClock.adjust("1 second")
      yield* settle
      assert.strictEqual(yield* Ref.get(upstream.calls), 2)
    }))
})
