import { assert, describe, it } from "@effect/vitest"
import { RefreshPolicy } from "@stalewise/refresh"
import { Duration, Effect } from "effect"

describe("RefreshPolicy durations", () => {
  it.effect("a fetch timeout of Infinity is rejected: a timeout must run out", () =>
    Effect.gen(function*() {
      for (const timeout of [Infinity, Duration.infinity]) {
        const error = yield* Effect.flip(RefreshPolicy.make({ lifetime: "1 minute", timeout }))
        assert.strictEqual(error.option, "timeout")
        assert.include(error.message, "is not finite")
      }
    }))

  it.effect("a negative duration string is reported as written", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(RefreshPolicy.make({ lifetime: "-5 seconds" }))
      assert.strictEqual(error.message, "Invalid option lifetime: \"-5 seconds\" is not positive")
    }))
})
