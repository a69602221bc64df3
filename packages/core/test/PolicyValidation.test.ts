import { assert, describe, it } from "@effect/vitest"
import { CacheStore, Failover, TimePolicy } from "@stalewise/core"
import { Duration, Effect, Either } from "effect"

describe("duration options", () => {
  it("a negative duration string is reported as written, not as the zero it decodes to", () => {
    const error = Either.getLeft(TimePolicy.positiveDuration("lifetime", "-5 seconds"))
    assert.isTrue(error._tag === "Some")
    if (error._tag === "Some") {
      assert.strictEqual(error.value.reason, "InvalidDuration")
      assert.strictEqual(error.value.message, "Invalid option lifetime: \"-5 seconds\" is not positive")
    }
  })

  it("an infinite duration is not a finite budget", () => {
    for (const input of [Infinity, Duration.infinity]) {
      const error = Either.getLeft(TimePolicy.finiteDuration("timeout", input))
      assert.isTrue(error._tag === "Some" && error.value.message.includes("is not finite"))
    }
  })

  for (const option of ["timeout", "requestTimeout"] as const) {
    it.effect(`Failover rejects ${option}: Infinity with a PolicyError`, () =>
      Effect.gen(function*() {
        const error = yield* Failover.make({
          name: "rate",
          lookup: (currency: string) => Effect.succeed(currency.length),
          timeout: "1 second",
          [option]: Infinity
        }).pipe(Effect.scoped, Effect.flip)
        assert.strictEqual(error._tag, "PolicyError")
        assert.strictEqual(error.option, option)
      }).pipe(Effect.provide(CacheStore.layerMemory)))
  }
})
