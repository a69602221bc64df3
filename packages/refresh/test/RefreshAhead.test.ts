/**
 * Refresh-ahead: a hit after `refreshAhead` of the lifetime requests one background refresh, so
 * a key read often never goes stale; one refresh per key, whatever the number of readers.
 */
import { assert, describe, it } from "@effect/vitest"
import { CacheStore, InvalidationBus } from "@stalewise/core"
import { Job, RefreshPolicy } from "@stalewise/refresh"
import { Context, Duration, Effect, Either, Layer, TestClock } from "effect"
import { eventually, FibersEnv, makeLostQueue, makeUpstream, settle, stored, unique, withEnv } from "./utils.js"

describe("Job: refresh-ahead", () => {
  it("refreshAhead must be a fraction in (0, 1)", () => {
    for (const bad of [0, 1, -0.5, 1.5, Number.NaN]) {
      const result = RefreshPolicy.make({ refreshAhead: bad })
      assert.isTrue(Either.isLeft(result), `${bad} accepted`)
      const error = (result as Either.Left<any, any>).left
      assert.deepStrictEqual([error._tag, error.reason, error.option], ["PolicyError", "InvalidValue", "refreshAhead"])
    }
    assert.strictEqual(Either.getOrThrow(RefreshPolicy.make({ refreshAhead: 0.8 })).refreshAhead, 0.8)
  })

  it.effect("before the fraction a hit requests nothing; after it, a hit requests one refresh", () => {
    const upstream = makeUpstream()
    return withEnv(
      FibersEnv,
      Effect.gen(function*() {
        const job = yield* Job.make({
          name: unique(),
          fetch: upstream.fetch,
          lifetime: "10 minutes",
          timeToLive: "1 hour",
          refreshAhead: 0.8
        })
        yield* job.get("a")
        yield* TestClock.adjust(Duration.millis(8 * 60_000 - 1))
        assert.strictEqual((yield* job.getWithOutcome("a")).status, "hit")
        yield* settle
        assert.strictEqual(upstream.state.calls, 1)

        yield* TestClock.adjust(Duration.millis(1))
        const late = yield* job.getWithOutcome("a")
        assert.deepStrictEqual([late.status, late.value], ["hit", "a#1"])
        yield* eventually(Effect.map(stored(job, "a"), (entry) => entry?.value === "a#2"))
        assert.strictEqual(upstream.state.calls, 2)
      })
    )
  })

  it.effect("a hot key read every minute never goes stale", () => {
    const upstream = makeUpstream()
    return withEnv(
      FibersEnv,
      Effect.gen(function*() {
        const job = yield* Job.make({
          name: unique(),
          fetch: upstream.fetch,
          lifetime: "10 minutes",
          timeToLive: "1 hour",
          refreshAhead: 0.8
        })
        yield* job.get("hot")
        const statuses = new Set<string>()
        for (let minute = 1; minute <= 120; minute++) {
          yield* TestClock.adjust("1 minute")
          statuses.add((yield* job.getWithOutcome("hot")).status)
          yield* settle
        }
        assert.deepStrictEqual([...statuses], ["hit"])
        // one refresh per 8 minutes or so, not one per read
        assert.isAtMost(upstream.state.calls, 120 / 8 + 2)
        assert.isAtLeast(upstream.state.calls, 120 / 10)
      })
    )
  })

  it.effect("concurrent readers request one refresh per key", () => {
    const upstream = makeUpstream()
    return withEnv(
      FibersEnv,
      Effect.gen(function*() {
        const job = yield* Job.make({
          name: unique(),
          fetch: upstream.fetch,
          lifetime: "10 minutes",
          timeToLive: "1 hour",
          refreshAhead: 0.5
        })
        yield* job.get("a")
        upstream.state.delay = "5 seconds"
        yield* TestClock.adjust("6 minutes")
        const outcomes = yield* Effect.forEach(
          Array.from({ length: 100 }, () => job.getWithOutcome("a")),
          (read) => read,
          { concurrency: "unbounded" }
        )
        assert.isTrue(outcomes.every((outcome) => outcome.status === "hit" && outcome.value === "a#1"))
        yield* settle
        // and more readers while that refresh runs
        yield* Effect.forEach(Array.from({ length: 20 }, () => job.get("a")), (read) => read, {
          concurrency: "unbounded"
        })
        yield* TestClock.adjust("5 seconds")
        yield* eventually(Effect.map(stored(job, "a"), (entry) => entry?.value === "a#2"))
        assert.strictEqual(upstream.state.calls, 2)
      })
    )
  })

  it.scoped("two instances over one store: the lease lets one of them request the refresh", () =>
    Effect.gen(function*() {
      const upstream = makeUpstream()
      const store = yield* CacheStore.makeMemory()
      const bus = yield* InvalidationBus.makeLocal
      const shared = Context.make(CacheStore.CacheStore, store).pipe(Context.add(InvalidationBus.InvalidationBus, bus))
      const name = unique()
      const instance = (queue: ReturnType<typeof makeLostQueue>) =>
        Effect.flatMap(
          Layer.build(queue.layer),
          (context) =>
            Job.make({ name, fetch: upstream.fetch, lifetime: "10 minutes", refreshAhead: 0.8 }).pipe(
              Effect.provide(Context.merge(shared, context))
            )
        )
      const queueA = makeLostQueue()
      const queueB = makeLostQueue()
      const a = yield* instance(queueA)
      const b = yield* instance(queueB)
      yield* a.get("k")
      yield* TestClock.adjust("9 minutes")
      yield* Effect.forEach([...Array(50).keys()], (i) => (i % 2 === 0 ? a : b).get("k"), {
        concurrency: "unbounded"
      })
      assert.strictEqual(queueA.offered.length + queueB.offered.length, 1)
    }))
})
