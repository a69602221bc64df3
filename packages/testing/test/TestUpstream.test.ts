import { assert, describe, it } from "@effect/vitest"
import { TestUpstream } from "@stalewise/testing"
import { Data, Effect, Fiber, Option, TestClock } from "effect"

class Down extends Data.TaggedError("Down")<{}> {}

describe("TestUpstream", () => {
  it.effect("answers, fails, delays on the Clock and hangs on cue, and counts its calls", () =>
    Effect.gen(function*() {
      const upstream = yield* TestUpstream.make<[id: number], string, Down>((id) => `user ${id}`)
      assert.strictEqual(yield* upstream.lookup(1), "user 1")

      yield* upstream.fail(new Down())
      assert.strictEqual((yield* Effect.flip(upstream.lookup(2)))._tag, "Down")

      yield* upstream.succeed("1 second")
      const slow = yield* Effect.fork(upstream.lookup(3))
      yield* TestClock.adjust("999 millis")
      assert.isTrue(Option.isNone(yield* Fiber.poll(slow)))
      assert.strictEqual(yield* upstream.inFlight, 1)
      yield* TestClock.adjust("1 millis")
      assert.strictEqual(yield* Fiber.join(slow), "user 3")

      yield* upstream.hang
      const hung = yield* Effect.fork(upstream.lookup(4))
      yield* TestClock.adjust("1 hour")
      yield* Fiber.interrupt(hung)

      assert.strictEqual(yield* upstream.calls, 4)
      assert.strictEqual(yield* upstream.inFlight, 0)
      assert.strictEqual(yield* upstream.interrupted, 1)
      assert.deepStrictEqual(yield* upstream.history, [[1], [2], [3], [4]])
    }))

  it.effect("dies with the given defect", () =>
    Effect.gen(function*() {
      const upstream = yield* TestUpstream.make((id: number) => id)
      yield* upstream.behave({ _tag: "die", defect: "boom" })
      const exit = yield* Effect.exit(upstream.lookup(1))
      assert.isTrue(exit._tag === "Failure")
    }))
})
