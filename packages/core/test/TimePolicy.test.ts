import { assert, describe, it } from "@effect/vitest"
import { CacheEntry, TimePolicy } from "@stalewise/core"
import { Duration, Effect, Either, TestClock } from "effect"

describe("TimePolicy", () => {
  describe("validation", () => {
    it.effect("rejects lifetime > timeToLive with InvalidCombination", () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(TimePolicy.make({ lifetime: "2 minutes", timeToLive: "1 minute" }))
        assert.strictEqual(error._tag, "PolicyError")
        assert.strictEqual(error.reason, "InvalidCombination")
        assert.strictEqual(error.option, "timeToLive")
      }))

    const invalid: ReadonlyArray<readonly [string, Duration.DurationInput, string]> = [
      ["zero", 0, "lifetime"],
      ["negative millis", -5, "lifetime"],
      ["NaN", NaN, "lifetime"],
      ["a zero duration", Duration.zero, "lifetime"],
      ["a negative string", "-1 seconds" as Duration.DurationInput, "lifetime"],
      ["an unparseable string", "5 parsecs" as Duration.DurationInput, "lifetime"]
    ]
    for (const [name, lifetime, option] of invalid) {
      it(`rejects ${name} with InvalidDuration`, () => {
        const result = TimePolicy.make({ lifetime })
        assert.isTrue(Either.isLeft(result))
        const error = (result as Either.Left<any, any>).left
        assert.strictEqual(error.reason, "InvalidDuration")
        assert.strictEqual(error.option, option)
      })
    }

    it("rejects an invalid timeToLive by name", () => {
      const result = TimePolicy.make({ lifetime: "1 second", timeToLive: 0 })
      assert.isTrue(Either.isLeft(result) && result.left.option === "timeToLive")
    })

    it("accepts lifetime = timeToLive, an infinite timeToLive, and defaults timeToLive to lifetime", () => {
      assert.isTrue(Either.isRight(TimePolicy.make({ lifetime: "1 minute", timeToLive: "60 seconds" })))
      const infinite = Either.getOrThrow(TimePolicy.make({ lifetime: "1 minute", timeToLive: Duration.infinity }))
      assert.isFalse(Duration.isFinite(infinite.timeToLive))
      const defaulted = Either.getOrThrow(TimePolicy.make({ lifetime: "1 minute" }))
      assert.isTrue(Duration.equals(defaulted.timeToLive, Duration.minutes(1)))
    })
  })

  describe("classification from Clock", () => {
    // lifetime 10 s, timeToLive 60 s, value fetched at the test clock's current time
    const setup = Effect.gen(function*() {
      const policy = yield* TimePolicy.make({ lifetime: "10 seconds", timeToLive: "60 seconds" })
      yield* TestClock.adjust("1 hour") // start away from the epoch
      return yield* TimePolicy.entry(policy, "value")
    })

    const at = (millisAfterFetch: number, expected: CacheEntry.Freshness) =>
      it.effect(`${millisAfterFetch} ms after the fetch is ${expected}`, () =>
        Effect.gen(function*() {
          const entry = yield* setup
          yield* TestClock.adjust(Duration.millis(millisAfterFetch))
          assert.strictEqual(yield* TimePolicy.classify(entry), expected)
          assert.strictEqual(
            Duration.toMillis(CacheEntry.age(entry, entry.createdAt + millisAfterFetch)),
            millisAfterFetch
          )
        }))

    at(0, "Fresh")
    at(9_999, "Fresh")
    at(10_000, "Stale")
    at(10_001, "Stale")
    at(59_999, "Stale")
    at(60_000, "Expired")
    at(60_001, "Expired")

    it.effect("entries carry absolute timestamps measured from createdAt", () =>
      Effect.gen(function*() {
        const entry = yield* setup
        assert.strictEqual(entry.createdAt, 3_600_000)
        assert.strictEqual(entry.staleAt, 3_610_000)
        assert.strictEqual(entry.expiresAt, 3_660_000)
      }))

    it.effect("an infinite timeToLive never expires", () =>
      Effect.gen(function*() {
        const policy = yield* TimePolicy.make({ lifetime: "1 second", timeToLive: Duration.infinity })
        const entry = yield* TimePolicy.entry(policy, 1)
        yield* TestClock.adjust("3650 days")
        assert.strictEqual(yield* TimePolicy.classify(entry), "Stale")
        assert.strictEqual(CacheEntry.remainingMillis(entry, 0), undefined)
      }))

    it("freshness is dual", () => {
      const entry = CacheEntry.make({ value: 1, createdAt: 0, staleAt: 10, expiresAt: 20 })
      assert.strictEqual(CacheEntry.freshness(10)(entry), "Stale")
      assert.isTrue(CacheEntry.isExpired(entry, 20))
      assert.isFalse(CacheEntry.isExpired(19)(entry))
    })
  })
})
