/**
 * Cache-first hot hit: one fiber reads the same present key over and over through
 * `CacheFirst.get`, next to effect's `Cache.get` (which `CacheFirst` is built on), the memory
 * store's `store.get` and a plain LRU lookup wrapped in an Effect (the floor, as in `hot-hit`).
 *
 * `CacheFirst.get` derives the key of every call from its arguments (a canonical encoding and a
 * SHA-256 digest) unless the function has a `key` option; both are measured, so the table shows
 * what key derivation costs apart from the rest of the hit path. The persisted variant
 * (`makePersisted`, a `CacheStore` behind the in-process tier) hits the in-process tier too. The
 * `traceHits` variant runs every hit in a `stalewise.get` span: what a span costs a hit.
 *
 * @since 0.1.0
 */
import { CacheEntry, CacheFirst, CacheStore } from "@stalewise/core"
import * as Cache from "effect/Cache"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import { LRUCache } from "lru-cache"
import * as Harness from "../harness.js"

const capacity = 10_000
const id = 1
const storeKey = "cache-first:user:1"
const user = { id: 1, name: "Ada Lovelace" }
const dayMillis = 24 * 60 * 60 * 1000

const lookup = (userId: number) => Effect.succeed({ ...user, id: userId })

/** Builds a `CacheFirst` function, loads the key and checks that the next read is a hit. */
const cacheFirst = (
  persisted: boolean,
  key: ((userId: number) => string) | undefined,
  traceHits = false
): Effect.Effect<(userId: number) => Effect.Effect<unknown, unknown>, unknown, Scope.Scope> =>
  Effect.gen(function*() {
    const options = {
      name: "user",
      lookup,
      timeToLive: Duration.days(1),
      capacity,
      traceHits,
      ...(key === undefined ? {} : { key })
    }
    const users = persisted
      ? yield* CacheFirst.makePersisted(options).pipe(Effect.provide(CacheStore.layerMemory))
      : yield* CacheFirst.make(options)
    yield* users.get(id)
    const outcome = yield* users.getWithOutcome(id)
    if (outcome.status !== "hit") return yield* Effect.dieMessage(`CacheFirst: expected a hit, got ${outcome.status}`)
    return users.get
  })

/**
 * @since 0.1.0
 * @category scenarios
 */
export const cacheFirstHit: Harness.ThroughputScenario = Harness.throughput({
  name: "cache-first-hit",
  description: "hot hit through CacheFirst.get inside one Effect fiber",
  unit: "reads",
  size: 100_000,
  quickSize: 20_000,
  contenders: [
    {
      name: "lru-cache in Effect.sync",
      baseline: true,
      setup: (reads) =>
        Effect.sync(() => {
          const lru = new LRUCache<string, typeof user>({ max: capacity })
          lru.set(storeKey, user)
          if (lru.get(storeKey) !== user) throw new Error("lru-cache: the key is not loaded")
          return Harness.repeat(reads, () => Effect.sync(() => lru.get(storeKey)))
        })
    },
    {
      name: "stalewise memory store.get",
      reference: true,
      setup: (reads) =>
        Effect.gen(function*() {
          const store = yield* CacheStore.makeMemory({ capacity })
          const now = Date.now()
          yield* store.set(
            storeKey,
            CacheEntry.make({ value: user, createdAt: now, staleAt: now + dayMillis, expiresAt: now + dayMillis })
          )
          if (Option.isNone(yield* store.get(storeKey))) return yield* Effect.dieMessage("store: the key is not loaded")
          return Harness.repeat(reads, () => store.get(storeKey))
        })
    },
    {
      name: "effect Cache.get",
      setup: (reads) =>
        Effect.gen(function*() {
          const cache = yield* Cache.make({ capacity, timeToLive: "1 day", lookup })
          yield* cache.get(id)
          if (!(yield* cache.contains(id))) return yield* Effect.dieMessage("Cache: the key is not loaded")
          return Harness.repeat(reads, () => cache.get(id))
        })
    },
    {
      name: "stalewise CacheFirst.get",
      setup: (reads) => Effect.map(cacheFirst(false, undefined), (get) => Harness.repeat(reads, () => get(id)))
    },
    {
      name: "stalewise CacheFirst.get, key: String",
      setup: (reads) => Effect.map(cacheFirst(false, String), (get) => Harness.repeat(reads, () => get(id)))
    },
    {
      // what a `stalewise.get` span costs a hit (effect's native tracer): why `traceHits` is off by default
      name: "stalewise CacheFirst.get, key: String, traceHits",
      setup: (reads) => Effect.map(cacheFirst(false, String, true), (get) => Harness.repeat(reads, () => get(id)))
    },
    {
      name: "stalewise CacheFirst.makePersisted get",
      setup: (reads) => Effect.map(cacheFirst(true, undefined), (get) => Harness.repeat(reads, () => get(id)))
    },
    {
      name: "stalewise CacheFirst.makePersisted get, key: String",
      setup: (reads) => Effect.map(cacheFirst(true, String), (get) => Harness.repeat(reads, () => get(id)))
    }
  ]
})
