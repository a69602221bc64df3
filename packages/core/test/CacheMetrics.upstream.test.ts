import { assert, describe, it } from "@effect/vitest"
import { CacheMetrics } from "@stalewise/core"
import { Effect, Fiber, Metric, TestClock } from "effect"

// A strategy label of its own per test: the metric is global and tests run concurrently.
const histogram = (strategy: string) =>
  Effect.map(Metric.value(Metric.tagged(CacheMetrics.upstreamDuration, "strategy", strategy)), (state) => state)

describe("stalewise_upstream_duration", () => {
  it.effect("records calls that fail or die as well as calls that succeed, with their duration", () =>
    Effect.gen(function*() {
      const strategy = `test-${crypto.randomUUID()}`
      const time = <A, E>(effect: Effect.Effect<A, E>) =>
        CacheMetrics.timeUpstream({ strategy }, "k", Effect.zipRight(Effect.sleep("2 seconds"), effect))

      for (const call of [Effect.succeed(1), Effect.fail("down"), Effect.die("boom")] as const) {
        const fiber = yield* Effect.fork(Effect.exit(time(call as Effect.Effect<unknown, unknown>)))
        yield* TestClock.adjust("2 seconds")
        yield* Fiber.join(fiber)
      }
      const state = yield* histogram(strategy)
      assert.strictEqual(state.count, 3)
      assert.strictEqual(state.min, 2_000)
      assert.strictEqual(state.max, 2_000)
    }))

  it.effect("does not record a call that was interrupted", () =>
    Effect.gen(function*() {
      const strategy = `test-${crypto.randomUUID()}`
      const fiber = yield* Effect.fork(CacheMetrics.timeUpstream({ strategy }, "k", Effect.never))
      yield* TestClock.adjust("1 second")
      yield* Fiber.interrupt(fiber)
      assert.strictEqual((yield* histogram(strategy)).count, 0)
    }))
})
