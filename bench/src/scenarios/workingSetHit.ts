/**
 * Hits over a working set of many keys, inside one Effect fiber: the read path when the key of
 * each read differs from the last (key derivation cannot rely on one memoised digest, the store's
 * lookups spread over its entries), as a service with 10,000 or 100,000 live keys sees it.
 *
 * Two kinds of scenario:
 * - `working-set-job` and `working-set-cache-first`: one strategy, its hit on one key (the floor)
 *   against its hit over 10k and 100k keys. Target: within 10 % of the one-key hit (≥ 0.91×).
 * - `working-set-hit-10k` and `working-set-hit-100k`: the same working set through
 *   lru-cache in `Effect.sync` (the floor), effect's `Cache.get` (the reference), `Job.get` and
 *   `CacheFirst.get`.
 *
 * Every contender is loaded with its whole working set in setup (and checked), then each run
 * reads `size` times, key `i × 7919 mod keys` for the `i`-th read: every key of the set is read
 * in turn, in an order that does not follow the order of insertion.
 *
 * @since 0.1.0
 */
import { CacheFirst, CacheStore } from "@stalewise/core"
import { Job, RefreshQueue } from "@stalewise/refresh"
import * as Cache from "effect/Cache"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import { LRUCache } from "lru-cache"
import * as Harness from "../harness.js"

interface User {
  readonly id: number
  readonly name: string
}

const userOf = (id: number): User => ({ id, name: `user ${id}` })
const capacity = 200_000
// a stride coprime with both working sets: every key is read once per `keys` reads
const stride = 7_919

type Read = (id: number) => Effect.Effect<unknown, unknown>

/** `reads` reads cycling over `keys` keys, from a counter local to the run. */
const cycle = (reads: number, keys: number, read: Read): Effect.Effect<void, unknown> =>
  Effect.suspend(() => {
    let i = 0
    return Harness.repeat(reads, () => read((i++ * stride) % keys))
  })

/** Loads keys 0 … keys−1 through `read` and checks that they are all held. */
const load = (keys: number, read: Read, holds: (id: number) => Effect.Effect<boolean, unknown>) =>
  Effect.gen(function*() {
    for (let id = 0; id < keys; id++) yield* read(id)
    for (const id of [0, keys >> 1, keys - 1]) {
      if (!(yield* holds(id))) return yield* Effect.dieMessage(`key ${id} of ${keys} is not loaded`)
    }
  })

const job = (keys: number): Effect.Effect<Read, unknown, Scope.Scope> =>
  Effect.gen(function*() {
    const services = yield* Layer.build(
      Layer.merge(CacheStore.layerMemoryWith({ capacity }), RefreshQueue.layerFibers())
    )
    const users = yield* Job.make({
      name: "user",
      fetch: (id: number) => Effect.succeed(userOf(id)),
      lifetime: Duration.days(1)
    }).pipe(Effect.provide(services))
    yield* load(keys, users.get, (id) => Effect.map(users.getWithOutcome(id), (o) => o.status === "hit"))
    return users.get
  })

const cacheFirst = (keys: number): Effect.Effect<Read, unknown, Scope.Scope> =>
  Effect.gen(function*() {
    const users = yield* CacheFirst.make({
      name: "user",
      lookup: (id: number) => Effect.succeed(userOf(id)),
      timeToLive: Duration.days(1),
      capacity
    })
    yield* load(keys, users.get, (id) => Effect.map(users.getWithOutcome(id), (o) => o.status === "hit"))
    return users.get
  })

const effectCache = (keys: number): Effect.Effect<Read, unknown, Scope.Scope> =>
  Effect.gen(function*() {
    const cache = yield* Cache.make({
      capacity,
      timeToLive: "1 day",
      lookup: (id: number) => Effect.succeed(userOf(id))
    })
    // effect's Cache methods read `this`
    const read = (id: number) => cache.get(id)
    yield* load(keys, read, (id) => cache.contains(id))
    return read
  })

const lru = (keys: number): Effect.Effect<Read> =>
  Effect.sync(() => {
    const cache = new LRUCache<string, User>({ max: capacity })
    for (let id = 0; id < keys; id++) cache.set(`users:get:${id}`, userOf(id))
    if (cache.get(`users:get:${keys - 1}`)?.id !== keys - 1) throw new Error("lru-cache: the keys are not loaded")
    return (id: number) => Effect.sync(() => cache.get(`users:get:${id}`))
  })

const ownTarget = 1 / 1.1

const perStrategy = (
  name: string,
  label: string,
  build: (keys: number) => Effect.Effect<Read, unknown, Scope.Scope>,
  target: number | "none" = ownTarget
): Harness.ThroughputScenario =>
  Harness.throughput({
    name,
    description: `${label} hit over 10k and 100k keys against its hit on one key, inside one Effect fiber`,
    unit: "reads",
    size: 200_000,
    quickSize: 50_000,
    rounds: 10,
    contenders: [1, 10_000, 100_000].map((keys) => ({
      name: `${label}, ${keys === 1 ? "1 key" : `${keys / 1000}k keys`}`,
      ...(keys === 1 ? { baseline: true } : target === "none" ? {} : { target }),
      setup: (reads: number) => Effect.map(build(keys), (read) => cycle(reads, keys, read))
    }))
  })

/**
 * @since 0.1.0
 * @category scenarios
 */
export const workingSetJob: Harness.ThroughputScenario = perStrategy("working-set-job", "stalewise Job.get", job)

/**
 * @since 0.1.0
 * @category scenarios
 */
export const workingSetCacheFirst: Harness.ThroughputScenario = perStrategy(
  "working-set-cache-first",
  "stalewise CacheFirst.get",
  cacheFirst
)

const withPeers = (keys: number): Harness.ThroughputScenario =>
  Harness.throughput({
    name: `working-set-hit-${keys / 1000}k`,
    description: `hits over ${keys / 1000}k keys inside one Effect fiber, with the peers`,
    unit: "reads",
    size: 200_000,
    quickSize: 50_000,
    rounds: 10,
    contenders: [
      {
        name: "lru-cache in Effect.sync",
        baseline: true,
        setup: (reads) => Effect.map(lru(keys), (read) => cycle(reads, keys, read))
      },
      {
        name: "effect Cache.get",
        reference: true,
        setup: (reads) => Effect.map(effectCache(keys), (read) => cycle(reads, keys, read))
      },
      {
        name: "stalewise Job.get",
        setup: (reads) => Effect.map(job(keys), (read) => cycle(reads, keys, read))
      },
      {
        name: "stalewise CacheFirst.get",
        setup: (reads) => Effect.map(cacheFirst(keys), (read) => cycle(reads, keys, read))
      }
    ]
  })

/**
 * @since 0.1.0
 * @category scenarios
 */
export const workingSetHit10k: Harness.ThroughputScenario = withPeers(10_000)

/**
 * @since 0.1.0
 * @category scenarios
 */
export const workingSetHit100k: Harness.ThroughputScenario = withPeers(100_000)

/**
 * The same shape for lru-cache alone (no target): what a larger working set costs a plain
 * in-process LRU read — CPU caches, not key derivation — for comparison with the rows above.
 *
 * @since 0.1.0
 * @category scenarios
 */
export const workingSetLruCache: Harness.ThroughputScenario = perStrategy(
  "working-set-lru-cache",
  "lru-cache get in Effect.sync",
  lru,
  "none"
)
