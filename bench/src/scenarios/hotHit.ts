/**
 * Hot hit: one fiber reads the same present key over and over. This is the cost of the read path
 * itself, with nothing to load, decode or coordinate, and it shows what each cache adds on top of
 * a plain LRU lookup wrapped in an Effect.
 *
 * Every contender holds the key before the clock starts and runs the same loop (`repeat`, one
 * fiber, one `Effect.runPromise` per run); only the read differs. Each read builds its Effect per
 * call, as a keyed `get(key)` must, so the floor pays that allocation too.
 *
 * @since 0.1.0
 */
import { CacheEntry, CacheStore } from "@stalewise/core"
import * as Cache from "effect/Cache"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { LRUCache } from "lru-cache"
import * as Harness from "../harness.js"

const capacity = 10_000
const key = "users:get:1"
const value = { id: 1, name: "Ada Lovelace" }
// Far enough that nothing expires during a run, finite so expiry is really checked.
const dayMillis = 24 * 60 * 60 * 1000

/**
 * @since 0.1.0
 * @category scenarios
 */
export const hotHit: Harness.ThroughputScenario = Harness.throughput({
  name: "hot-hit",
  description: "hot hit from the memory store inside one Effect fiber",
  unit: "reads",
  size: 1_000_000,
  quickSize: 100_000,
  contenders: [
    {
      name: "lru-cache in Effect.sync",
      baseline: true,
      setup: (reads) =>
        Effect.sync(() => {
          const lru = new LRUCache<string, typeof value>({ max: capacity })
          lru.set(key, value)
          if (lru.get(key) !== value) throw new Error("lru-cache: the key is not loaded")
          return Harness.repeat(reads, () => Effect.sync(() => lru.get(key)))
        })
    },
    {
      name: "effect Cache.get",
      setup: (reads) =>
        Effect.gen(function*() {
          const cache = yield* Cache.make({
            capacity,
            timeToLive: "1 day",
            lookup: (_key: string) => Effect.succeed(value)
          })
          yield* cache.get(key)
          if (!(yield* cache.contains(key))) return yield* Effect.dieMessage("Cache: the key is not loaded")
          return Harness.repeat(reads, () => cache.get(key))
        })
    },
    {
      name: "stalewise memory store.get",
      target: 0.5,
      setup: (reads) =>
        Effect.gen(function*() {
          const store = yield* CacheStore.makeMemory({ capacity })
          const now = Date.now()
          yield* store.set(
            key,
            CacheEntry.make({ value, createdAt: now, staleAt: now + dayMillis, expiresAt: now + dayMillis })
          )
          if (Option.isNone(yield* store.get(key))) return yield* Effect.dieMessage("store: the key is not loaded")
          return Harness.repeat(reads, () => store.get(key))
        })
    }
  ]
})
