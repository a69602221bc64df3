/**
 * SingleFlight on the TestClock, through two persisted CacheFirst instances (as two processes)
 * sharing a store and a bus: a cold key costs one upstream call, a later flight of a key this
 * instance is already fetching does not wait for itself, and `leaseWait` bounds a wait.
 */
import { assert, describe, it } from "@effect/vitest"
import { CacheFirst, CacheMetrics, CacheStore, InvalidationBus } from "@stalewise/core"
import { Context, Effect, Fiber, Metric, MetricLabel, TestClock } from "effect"

const settle = Effect.repeatN(Effect.yieldNow(), 50)

const leaseWaits = (name: string, result: "landed" | "took-over" | "budget") =>
  Effect.map(
    Metric.value(
      Metric.taggedWithLabels(CacheMetrics.leaseWaits, [
        MetricLabel.make("result", result),
        MetricLabel.make("strategy", "cache-first"),
        MetricLabel.make("namespace", "cache-first"),
        MetricLabel.make("name", name)
      ])
    ),
    (state) => state.count
  )

const twoInstances = (name: string, lookup: (id: number) => Effect.Effect<string>) =>
  Effect.gen(function*() {
    const context = Context.make(CacheStore.CacheStore, yield* CacheStore.makeMemory()).pipe(
      Context.add(InvalidationBus.InvalidationBus, yield* InvalidationBus.makeLocal)
    )
    const make = CacheFirst.makePersisted({ name, timeToLive: "1 hour", leaseWait: "2 seconds", lookup })
    return [yield* Effect.provide(make, context), yield* Effect.provide(make, context)] as const
  })

describe("SingleFlight (CacheFirst over a shared store)", () => {
  it.scoped("a cold key read by two instances: one upstream call, the other woken by the bus", () =>
    Effect.gen(function*() {
      const name = `sf${crypto.randomUUID().slice(0, 8)}`
      let calls = 0
      const [a, b] = yield* twoInstances(name, (id) =>
        Effect.suspend(() => {
          const call = ++calls
          return Effect.as(Effect.sleep("1 second"), `${id}#${call}`)
        }))
      const first = yield* Effect.fork(a.get(1))
      yield* settle
      const second = yield* Effect.fork(b.get(1))
      yield* settle
      assert.strictEqual(calls, 1, "the second instance waits instead of calling")
      yield* TestClock.adjust("1 second")
      assert.deepStrictEqual([yield* Fiber.join(first), yield* Fiber.join(second)], ["1#1", "1#1"])
      assert.strictEqual(calls, 1)
      assert.strictEqual(yield* leaseWaits(name, "landed"), 1)
    }))

  it.scoped("after an invalidation, an instance does not wait for its own older load", () =>
    Effect.gen(function*() {
      const name = `sf${crypto.randomUUID().slice(0, 8)}`
      let calls = 0
      const [a] = yield* twoInstances(name, (id) =>
        Effect.suspend(() => {
          const call = ++calls
          return call === 1 ? Effect.never : Effect.succeed(`${id}#${call}`)
        }))
      yield* Effect.fork(a.get(1)) // holds the lease, never lands
      yield* settle
      yield* a.invalidate(1)
      // a new load of the key: this instance is the holder, so it calls at once
      assert.strictEqual(yield* a.get(1), "1#2")
      assert.strictEqual(yield* leaseWaits(name, "budget"), 0)
    }))

  it.effect("leaseWait must be positive and finite", () =>
    Effect.gen(function*() {
      for (const leaseWait of [0, Infinity]) {
        const error = yield* Effect.flip(
          CacheFirst.makePersisted({ name: "f", timeToLive: "1 minute", leaseWait, lookup: () => Effect.succeed(1) })
        )
        assert.strictEqual(error._tag, "PolicyError")
      }
    }).pipe(Effect.scoped, Effect.provide(CacheStore.layerMemory)))
})
