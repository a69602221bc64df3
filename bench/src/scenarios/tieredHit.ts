/**
 * Tiered hit: one fiber reads the same present key over and over from a `TieredStore` whose
 * memory tier holds it, against the memory store's own `store.get` (the floor): a hit of the
 * tiered store should cost what a memory hit costs, the Redis tier never being asked. The
 * tiered store is connected to a local `redis-server` (its command and subscriber connections
 * open), as in production.
 *
 * Both hold the same value before the clock starts (the tiered store through `set`, which writes
 * Redis and fills its memory tier) and check that it is there; the tiered store's memory copy
 * lives for an hour (`memoryTimeToLive`), so no read of a run falls through to Redis. Same loop
 * (`repeat`, one fiber) for both.
 *
 * @since 0.1.0
 */
import { CacheEntry, CacheStore, InvalidationBus } from "@stalewise/core"
import { RedisClient, RedisInvalidationBus, TieredStore } from "@stalewise/redis"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Harness from "../harness.js"
import * as RedisServer from "../redisServer.js"
import { stalewiseClient, user } from "./redisHit.js"

const capacity = 10_000
const key = "users:get:1"
const value = user(1)
const dayMillis = 24 * 60 * 60 * 1000

const entry = () => {
  const now = Date.now()
  return CacheEntry.make({ value, createdAt: now, staleAt: now + dayMillis, expiresAt: now + dayMillis })
}

/**
 * @since 0.1.0
 * @category scenarios
 */
export const tieredHit: Harness.ThroughputScenario = Harness.throughput({
  name: "tiered-hit",
  description: "TieredStore hit from its memory tier inside one Effect fiber, against the memory store",
  unit: "reads",
  size: 500_000,
  quickSize: 100_000,
  skip: RedisServer.unavailable,
  contenders: [
    {
      name: "stalewise memory store.get",
      baseline: true,
      setup: (reads) =>
        Effect.gen(function*() {
          const store = yield* CacheStore.makeMemory({ capacity })
          yield* store.set(key, entry())
          if (Option.isNone(yield* store.get(key))) return yield* Effect.dieMessage("store: the key is not loaded")
          return Harness.repeat(reads, () => store.get(key))
        })
    },
    {
      name: "stalewise TieredStore store.get (memory tier)",
      target: 0.9,
      setup: (reads) =>
        Effect.gen(function*() {
          const address = yield* RedisServer.acquire
          const redis = yield* stalewiseClient(address)
          const bus = yield* Effect.provideService(
            RedisInvalidationBus.make({ channel: "tiered:invalidate" }),
            RedisClient.RedisClient,
            redis
          )
          const store = yield* TieredStore.make({
            keyPrefix: "tiered:",
            memory: { capacity },
            memoryTimeToLive: Duration.hours(1)
          }).pipe(
            Effect.provideService(RedisClient.RedisClient, redis),
            Effect.provideService(InvalidationBus.InvalidationBus, bus)
          )
          yield* store.set(key, entry())
          if (Option.isNone(yield* store.peekMemory(key))) {
            return yield* Effect.dieMessage("tiered store: the key is not in the memory tier")
          }
          return Harness.repeat(reads, () => store.get(key))
        })
    }
  ]
})
