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
})
