/**
 * Stale read: 1,000 concurrent reads of a key whose value is stale, against an upstream that
 * takes 50 ms of wall-clock time (a real `setTimeout`) and counts its calls. A
 * stale-while-revalidate cache serves the stale value at once and makes one upstream call
 * behind the callers' backs; what it costs a caller is measured against the same contender's
 * own fresh hit, read by the same 1,000-call wave just before (phase `hit`).
 *
 * Every run starts from nothing: a fresh upstream and a fresh contender (cache, store, queue)
 * built in the run's own scope. Two keys are loaded by one call each (two misses, concurrently):
 * one with a lifetime of a day (phase `hit`) and one with a lifetime of 1 ms (phase `stale`),
 * with the same configuration otherwise. After 5 ms, the second is stale; the upstream's counter
 * is reset, the `hit` wave reads the first key, the `stale` wave the second, and the run waits
 * for the refresh to land (60 ms) before it counts the upstream calls and closes its scope.
 *
 * @since 0.1.0
 */
import { cachified } from "@epic-web/cachified"
import type { CacheEntry } from "@epic-web/cachified"
import { CacheStore } from "@stalewise/core"
import { Job, RefreshQueue } from "@stalewise/refresh"
import { createCache } from "async-cache-dedupe"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import { LRUCache } from "lru-cache"
import * as Harness from "../harness.js"
import * as Peers from "../peers.js"

const upstreamMillis = 50
const dayMillis = 24 * 60 * 60 * 1000
// The short lifetime: stale a millisecond after the value is fetched
const shortMillis = 1
// Long enough for the 1 ms lifetime to run out
const staleAfter = Duration.millis(5)
// Long enough for the refresh requested by the stale wave to land
const settle = Duration.millis(upstreamMillis + 10)

interface Item {
  readonly key: string
  /** The upstream call that produced it, from 1. */
  readonly call: number
}

/** The upstream of one run: the key's item after 50 ms, counting its calls. */
type Upstream = (key: string) => Promise<Item>

/** One contender's reads over a fresh cache: of the key with a long lifetime, and of the key with a short one. */
interface Reads {
  readonly hit: Effect.Effect<Item | undefined, unknown>
  readonly stale: Effect.Effect<Item | undefined, unknown>
}

interface StaleReadContender {
  readonly name: string
  readonly baseline?: boolean
  /** Ours: the run fails unless the stale wave made exactly one upstream call. */
  readonly refreshesOnce?: boolean
  readonly phaseTargets?: { readonly [phase: string]: Harness.Target }
  /** Builds the contender over the run's upstream, in the run's scope, for the run's two keys. */
  readonly make: (
    upstream: Upstream,
    keys: { readonly hit: string; readonly stale: string }
  ) => Effect.Effect<Reads, unknown, Scope.Scope>
}

let runs = 0

/** The same run for every contender: load both keys, wait for staleness, the hit wave, the stale wave, settle. */
const run = (contender: StaleReadContender, wave: number): Effect.Effect<Harness.LatencyRun, unknown> =>
  Effect.scoped(Effect.gen(function*() {
    const id = runs++
    const keys = { hit: `swr:${id}:hit`, stale: `swr:${id}:stale` }
    let upstreamCalls = 0
    const upstream: Upstream = (key) => Peers.delay(upstreamMillis, { key, call: ++upstreamCalls })
    // read through a function: the waves change the count behind the type checker's back
    const calls = () => upstreamCalls
    const reads = yield* contender.make(upstream, keys)
    // Every read must serve the key's value: a contender that failed or answered nothing would
    // otherwise look fast.
    const served = (read: Effect.Effect<Item | undefined, unknown>, key: string) =>
      Effect.flatMap(read, (item) =>
        item?.key === key
          ? Effect.void
          : Effect.dieMessage(`${contender.name}: served ${JSON.stringify(item)} for ${key}`))
    yield* Effect.all([served(reads.hit, keys.hit), served(reads.stale, keys.stale)], { concurrency: 2 })
    yield* Effect.sleep(staleAfter)
    upstreamCalls = 0
    const hit = yield* Harness.concurrentLatencies(wave, () => served(reads.hit, keys.hit))
    if (calls() !== 0) {
      return yield* Effect.dieMessage(`${contender.name}: the hit wave made ${calls()} upstream calls`)
    }
    const stale = yield* Harness.concurrentLatencies(wave, () => served(reads.stale, keys.stale))
    yield* Effect.sleep(settle)
    if (contender.refreshesOnce === true && calls() !== 1) {
      return yield* Effect.dieMessage(`${contender.name}: the stale wave made ${calls()} upstream calls`)
    }
    return { latencies: { hit, stale }, counts: { "upstream calls": calls() } }
  }))

const toContender = (contender: StaleReadContender): Harness.Contender<Harness.LatencyRun> => ({
  name: contender.name,
  baseline: contender.baseline,
  phaseTargets: contender.phaseTargets,
  setup: (wave) => Effect.succeed(run(contender, wave))
})

/**
 * The floor: stale-while-revalidate written by hand in Effect, the least machinery with the
 * semantics: the value and the moment it goes stale in a `Map`; a read past that moment serves
 * the value and, unless a refresh of the key is running, forks one into the run's scope. No key
 * derivation, store, lease, queue, outcome or metrics.
 */
const handWritten: StaleReadContender = {
  name: "hand-written SWR in Effect",
  baseline: true,
  make: (upstream, keys) =>
    Effect.gen(function*() {
      const scope = yield* Effect.scope
      const held = new Map<string, { readonly item: Item; readonly staleAt: number }>()
      const refreshing = new Set<string>()
      const fetch = (key: string, lifetime: number) =>
        Effect.map(Effect.promise(() => upstream(key)), (item) => {
          held.set(key, { item, staleAt: Date.now() + lifetime })
          return item
        })
      const read = (key: string, lifetime: number) =>
        Effect.suspend(() => {
          const entry = held.get(key)
          if (entry === undefined) return fetch(key, lifetime)
          if (Date.now() < entry.staleAt || refreshing.has(key)) return Effect.succeed(entry.item)
          refreshing.add(key)
          const refresh = Effect.ensuring(fetch(key, lifetime), Effect.sync(() => refreshing.delete(key)))
          return Effect.as(Effect.forkIn(refresh, scope), entry.item)
        })
      return { hit: read(keys.hit, dayMillis), stale: read(keys.stale, shortMillis) }
    })
}

/**
 * Ours: two jobs (a job's lifetime is its own) over one memory store and one fibers queue, built
 * in the run's scope; `get`, with the key derived from the argument as by default.
 */
const stalewise: StaleReadContender = {
  name: "stalewise Job.get",
  refreshesOnce: true,
  phaseTargets: { stale: { ownRatio: 1.2 } },
  make: (upstream, keys) =>
    Effect.gen(function*() {
      // built in the run's scope, which the queue's fibers live in (`Effect.provide` of a layer
      // would close it as soon as the jobs are defined)
      const services = yield* Layer.build(Layer.merge(CacheStore.layerMemory, RefreshQueue.layerFibers()))
      const fetch = (key: string) => Effect.promise(() => upstream(key))
      const hit = yield* Job.make({ name: "hit", fetch, lifetime: Duration.days(1), timeToLive: Duration.days(2) })
        .pipe(Effect.provide(services))
      const stale = yield* Job.make({
        name: "stale",
        fetch,
        lifetime: Duration.millis(shortMillis),
        timeToLive: Duration.days(2)
      }).pipe(Effect.provide(services))
      return { hit: hit.get(keys.hit), stale: stale.get(keys.stale) }
    })
}

// Logical TTL a day or 1 ms, grace a day (the stale entry stays available), no soft timeout:
// bentocache's stale-while-revalidate mode (a stale entry is returned at once and the factory
// runs in the background).
const bentocache: StaleReadContender = {
  name: "bentocache getOrSet grace",
  make: (upstream, keys) =>
    Effect.map(Peers.bento(1_000), (bento) => {
      const read = (key: string, ttl: number) =>
        Effect.promise(() => bento.getOrSet({ key, factory: () => upstream(key), ttl, grace: "1d" }))
      return { hit: read(keys.hit, dayMillis), stale: read(keys.stale, shortMillis) }
    })
}

// ttl a day or 1 ms, staleWhileRevalidate a day: a stale read returns the cached value and
// refreshes in the background.
const cachifiedSwr: StaleReadContender = {
  name: "cachified staleWhileRevalidate",
  make: (upstream, keys) =>
    Effect.sync(() => {
      const cache = new Map<string, CacheEntry<Item>>()
      const read = (key: string, ttl: number) =>
        Effect.promise(() =>
          cachified({ key, cache, ttl, staleWhileRevalidate: dayMillis, getFreshValue: () => upstream(key) })
        )
      return { hit: read(keys.hit, dayMillis), stale: read(keys.stale, shortMillis) }
    })
}

// `fetch` with `allowStale`: a stale entry is returned at once while `fetchMethod` refreshes it;
// the entry's TTL (a day or 1 ms) is set by the `fetch` that loads it.
const lruCache: StaleReadContender = {
  name: "lru-cache fetch allowStale",
  make: (upstream, keys) =>
    Effect.sync(() => {
      const lru = new LRUCache<string, Item>({
        max: 1_000,
        ttl: dayMillis,
        allowStale: true,
        fetchMethod: (key) => upstream(key)
      })
      const read = (key: string, ttl: number) => Effect.promise(() => lru.fetch(key, { ttl }))
      return { hit: read(keys.hit, dayMillis), stale: read(keys.stale, shortMillis) }
    })
}

// TTLs are whole seconds here: `stale: 60` keeps an entry 60 s past its `ttl` and serves it while
// one background refresh runs. The hit key has `ttl` a day; the stale key `ttl` 0 (as a function
// of the result: a plain 0 turns caching off), so it is stale as soon as it is written.
// Concurrent calls of one key share one promise (its in-flight dedupe), as it always does.
const asyncCacheDedupe: StaleReadContender = {
  name: "async-cache-dedupe stale",
  make: (upstream, keys) =>
    Effect.sync(() => {
      const cache = createCache({ storage: { type: "memory", options: { size: 1_000 } } })
        .define("hit", { ttl: dayMillis / 1000, stale: 60 }, (key: string) => upstream(key))
        .define("stale", { ttl: () => 0, stale: 60 }, (key: string) => upstream(key))
      return {
        hit: Effect.promise(() => cache.hit(keys.hit)),
        stale: Effect.promise(() => cache.stale(keys.stale))
      }
    })
}

/**
 * @since 0.1.0
 * @category scenarios
 */
export const staleRead: Harness.LatencyScenario = Harness.latency({
  name: "stale-read",
  description: "1,000 concurrent reads of a stale key, upstream 50 ms, against each contender's own hit",
  unit: "calls per wave",
  size: 1_000,
  quickSize: 1_000,
  phases: ["hit", "stale"],
  ownPhase: "hit",
  contenders: [handWritten, stalewise, bentocache, cachifiedSwr, lruCache, asyncCacheDedupe].map(toContender)
})
