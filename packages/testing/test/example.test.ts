// The example of docs/testing.md, run: a service's cache survives a flaky store and an upstream
// that goes down, under TestClock.
import { assert, describe, it } from "@effect/vitest"
import { CacheStore, Failover } from "@stalewise/core"
import { ChaosStore, TestUpstream } from "@stalewise/testing"
import { Data, Effect, Fiber, Layer, Option, TestClock } from "effect"

class RatesDown extends Data.TaggedError("RatesDown")<{}> {}

// A store that fails one write in five, repeatably (seed).
const FlakyStore = ChaosStore.layer({ seed: 7, operations: { set: { failureRate: 0.2 } } }).pipe(
  Layer.provide(CacheStore.layerMemory)
)

describe("rates, with a flaky store and an upstream that goes down", () => {
  it.scoped("serve the last good rate while the upstream is down; a dead store is never fatal", () =>
    Effect.gen(function*() {
      const upstream = yield* TestUpstream.make<[currency: string], number, RatesDown>(() => 1.08)
      const rates = yield* Failover.make({ name: "rate", lookup: upstream.lookup, timeout: "1 second" })

      assert.strictEqual(yield* rates.get("EUR"), 1.08)

      yield* upstream.hang // the upstream stops answering
      const callers = Array.from({ length: 5 }, () => rates.getWithOutcome("EUR"))
      const answers = yield* Effect.fork(Effect.all(callers, { concurrency: "unbounded" }))
      yield* TestClock.adjust("1 second") // the timeout: every caller gets the stored rate
      for (const outcome of yield* Fiber.join(answers)) {
        assert.strictEqual(outcome.value, 1.08)
        assert.strictEqual(outcome.status, "failover")
      }

      const chaos = yield* ChaosStore.ChaosStore
      yield* chaos.configure({ failureRate: 1 }) // now the store is down too
      yield* upstream.succeed()
      assert.strictEqual(yield* rates.get("EUR"), 1.08) // answered by the upstream; store errors are logged
      assert.isTrue(Option.isNone(yield* rates.peek("EUR"))) // a store that is down reads as empty
      assert.isAtLeast((yield* chaos.injected).failures, 1)
    }).pipe(Effect.provide(FlakyStore)))
})
