import { assert, describe, it } from "@effect/vitest"
import { RefreshPolicy } from "@stalewise/refresh"
import { Duration, Either } from "effect"

const errorOf = (options: RefreshPolicy.Options) => {
  const result = RefreshPolicy.make(options)
  assert.isTrue(Either.isLeft(result), "expected a PolicyError")
  return (result as Either.Left<any, any>).left
}

describe("RefreshPolicy", () => {
  it("defaults to cacheback's: 10 minutes, 30 days, a 60 s lease, fetch on miss", () => {
    const policy = Either.getOrThrow(RefreshPolicy.make())
    assert.isTrue(Duration.equals(policy.time.lifetime, Duration.minutes(10)))
    assert.isTrue(Duration.equals(policy.time.timeToLive, Duration.days(30)))
    assert.isTrue(Duration.equals(policy.refreshLease, Duration.seconds(60)))
    assert.isUndefined(policy.syncRefreshAfter)
    assert.isTrue(policy.fetchOnMiss)
    assert.isTrue(policy.staleIfError)
    assert.strictEqual(policy.jitter, 0)
    assert.isUndefined(policy.timeout)
    assert.isTrue(Duration.equals(policy.refreshBackoff.initial, Duration.seconds(5)))
    assert.isTrue(Duration.equals(policy.refreshBackoff.max, Duration.minutes(5)))
  })

  it("rejects lifetime > timeToLive", () => {
    const error = errorOf({ lifetime: "2 days", timeToLive: "1 day" })
    assert.strictEqual(error.reason, "InvalidCombination")
    assert.strictEqual(error.option, "timeToLive")
  })

  it("rejects non-positive and infinite leases", () => {
    assert.strictEqual(errorOf({ refreshLease: 0 }).reason, "InvalidDuration")
    assert.strictEqual(errorOf({ refreshLease: Duration.infinity }).option, "refreshLease")
  })

  it("syncRefreshAfter must lie in [lifetime, timeToLive)", () => {
    const base = { lifetime: "1 minute", timeToLive: "1 hour" } as const
    assert.strictEqual(errorOf({ ...base, syncRefreshAfter: "59 seconds" }).option, "syncRefreshAfter")
    assert.strictEqual(errorOf({ ...base, syncRefreshAfter: "1 hour" }).option, "syncRefreshAfter")
    assert.isTrue(Either.isRight(RefreshPolicy.make({ ...base, syncRefreshAfter: "1 minute" })))
    assert.isTrue(Either.isRight(RefreshPolicy.make({ ...base, syncRefreshAfter: "59 minutes" })))
  })

  it("jitter must lie in [0, 1)", () => {
    assert.strictEqual(errorOf({ jitter: -0.1 }).option, "jitter")
    assert.strictEqual(errorOf({ jitter: 1 }).option, "jitter")
    assert.strictEqual(errorOf({ jitter: Number.NaN }).option, "jitter")
    assert.strictEqual(Either.getOrThrow(RefreshPolicy.make({ jitter: 0.99 })).jitter, 0.99)
  })

  it("timeout and back-off durations must be positive, the back-off's initial at most its max", () => {
    assert.strictEqual(errorOf({ timeout: "0 seconds" }).option, "timeout")
    assert.strictEqual(errorOf({ refreshBackoff: { initial: -1 } }).option, "refreshBackoff.initial")
    assert.strictEqual(errorOf({ refreshBackoff: { initial: "2 minutes", max: "1 minute" } }).option, "refreshBackoff")
    assert.strictEqual(errorOf({ refreshBackoff: { max: Duration.infinity } }).option, "refreshBackoff")
  })

  it("the back-off doubles with each failure, up to its max", () => {
    const policy = Either.getOrThrow(RefreshPolicy.make({ refreshBackoff: { initial: "1 second", max: "5 seconds" } }))
    assert.deepStrictEqual([1, 2, 3, 4, 10].map((n) => RefreshPolicy.backoffMillis(policy, n)), [
      1_000,
      2_000,
      4_000,
      5_000,
      5_000
    ])
  })
})
