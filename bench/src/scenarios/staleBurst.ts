/**
 * Stale burst: 1,000 concurrent reads of a key whose value is stale, by Promise callers (code not
 * written in Effect: the 1,000 calls are made in one synchronous loop, each awaited on its own),
 * against an upstream that takes 50 ms of wall-clock time and counts its calls. Each contender
 * serves the stale value at once and refreshes it behind the callers' backs; a call's latency is
 * from the moment it is made to the moment its promise resolves. Phase `hit` is the same wave
 * over a fresh key, just before.
 *
 * The floor is lru-cache's `fetch()` with `allowStale`. Ours is `Facade.make` over a `Job`
 * (memory store, fibers queue) on a `ManagedRuntime`: its stale reads answer without starting a
 * fiber and request one refresh; the `key: identity` variant takes the argument as the key's id
 * (no canonical encoding, no digest): what the rest of the read costs. Every run starts from nothing (fresh upstream, fresh caches and
 * runtime); a run of ours fails unless the stale wave made exactly one upstream call.
 *
 * @since 0.1.0
 */
import { cachified } from "@epic-web/cachified"
import type { CacheEntry } from "@epic-web/cachified"
import { CacheStore, Facade } from "@stalewise/core"
import { Job, RefreshQueue } from "@stalewise/refresh"
import { createCache } from "async-cache-dedupe"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import type * as Scope from "effect/Scope"
import { LRUCache } from "lru-cache"
import * as Harness from "../harness.js"
import * as Peers from "../peers.js"

const upstreamMillis = 50
const dayMillis = 24 * 60 * 60 * 1000
const shortMillis = 1
const staleAfter = Duration.millis(5)
const settle = Duration.millis(upstreamMillis + 10)

interface Item {
  readonly key: string
  readonly call: number
}

type Upstream = (key: string) => Promise<Item>

/** One contender's Promise reads over fresh caches: of the key with a long lifetime, and of the short one. */
interface Reads {
  readonly hit: () => Promise<Item | undefined>
  readonly stale: () => Promise<Item | undefined>
}

interface StaleBurstContender {
  readonly name: string
  readonly baseline?: boolean
  readonly refreshesOnce?: boolean
  readonly phaseTargets?: { readonly [phase: string]: Harness.Target }
  readonly make: (
    upstream: Upstream,
    keys: { readonly hit: string; readonly stale: string }
  ) => Effect.Effect<Reads, unknown, Scope.Scope>
}

/** `calls` calls made in one synchronous loop; each one's latency until its promise resolves with `key`'s value. */
const wave = (calls: number, read: () => Promise<Item | undefined>, key: string, name: string) =>
  Effect.promise(async () => {
    const latencies = new Array<number>(calls)
    const pending = new Array<Promise<void>>(calls)
    for (let i = 0; i < calls; i++) {
      const start = performance.now()
      pending[i] = read().then((item) => {
        latencies[i] = performance.now() - start
        if (item?.key !== key) throw new Error(`${name}: served ${JSON.stringify(item)} for ${key}`)
      })
    }
    await Promise.all(pending)
    return latencies
  })

let runs = 0

const run = (contender: StaleBurstContender, calls: number): Effect.Effect<Harness.LatencyRun, unknown> =>
  Effect.scoped(Effect.gen(function*() {
    const id = runs++
    const keys = { hit: `burst:${id}:hit`, stale: `burst:${id}:stale` }
    let upstreamCalls = 0
    const upstream: Upstream = (key) => Peers.delay(upstreamMillis, { key, call: ++upstreamCalls })
    const count = () => upstreamCalls
    const reads = yield* contender.make(upstream, keys)
    yield* Effect.promise(() => Promise.all([reads.hit(), reads.stale()]))
    yield* Effect.sleep(staleAfter)
    upstreamCalls = 0
    const hit = yield* wave(calls, reads.hit, keys.hit, contender.name)
    if (count() !== 0) return yield* Effect.dieMessage(`${contender.name}: the hit wave made ${count()} upstream calls`)
    const stale = yield* wave(calls, reads.stale, keys.stale, contender.name)
    yield* Effect.sleep(settle)
    if (contender.refreshesOnce === true && count() !== 1) {
      return yield* Effect.dieMessage(`${contender.name}: the stale wave made ${count()} upstream calls`)
    }
    return { latencies: { hit, stale }, counts: { "upstream calls": count() } }
  }))

const toContender = (contender: StaleBurstContender): Harness.Contender<Harness.LatencyRun> => ({
  name: contender.name,
  baseline: contender.baseline,
  phaseTargets: contender.phaseTargets,
  setup: (calls) => Effect.succeed(run(contender, calls))
})

// `fetch` with `allowStale`: a stale entry is returned at once while `fetchMethod` refreshes it.
const lruCache: StaleBurstContender = {
  name: "lru-cache fetch allowStale",
  baseline: true,
  make: (upstream, keys) =>
    Effect.sync(() => {
      const lru = new LRUCache<string, Item>({
        max: 1_000,
        ttl: dayMillis,
        allowStale: true,
        fetchMethod: (key) => upstream(key)
      })
      return {
        hit: () => lru.fetch(keys.hit, { ttl: dayMillis }),
        stale: () => lru.fetch(keys.stale, { ttl: shortMillis })
      }
    })
}

class Jobs extends Context.Tag("bench/stale-burst/Jobs")<Jobs, {
  readonly hit: Job.Job<[key: string], Item, never>
  readonly stale: Job.Job<[key: string], Item, never>
}>() {}

// Two jobs (a lifetime is a job's own) over one memory store and fibers queue, in a ManagedRuntime
// disposed with the run's scope; read through `Facade.make`.
const stalewise = (byId: boolean): StaleBurstContender => ({
  name: byId ? "stalewise Facade(Job), key: identity" : "stalewise Facade(Job)",
  refreshesOnce: true,
  phaseTargets: { hit: 2, stale: 2 },
  make: (upstream, keys) =>
    Effect.gen(function*() {
      const fetch = (key: string) => Effect.promise(() => upstream(key))
      // `key: identity`: the argument is the key's id, no canonical encoding or digest
      const key = byId ? { key: (id: string) => id } : {}
      const JobsLive = Layer.scoped(
        Jobs,
        Effect.all({
          hit: Job.make({ name: "hit", fetch, lifetime: Duration.days(1), timeToLive: Duration.days(2), ...key }),
          stale: Job.make({
            name: "stale",
            fetch,
            lifetime: Duration.millis(shortMillis),
            timeToLive: Duration.days(2),
            ...key
          })
        })
      ).pipe(Layer.provide(Layer.merge(CacheStore.layerMemory, RefreshQueue.layerFibers())))
      const runtime = yield* Effect.acquireRelease(
        Effect.sync(() => ManagedRuntime.make(JobsLive)),
        (runtime) => Effect.promise(() => runtime.dispose())
      )
      const built = yield* Effect.promise(() => runtime.runPromise(Jobs))
      const hit = Facade.make(runtime, built.hit)
      const stale = Facade.make(runtime, built.stale)
      return { hit: () => hit(keys.hit), stale: () => stale(keys.stale) }
    })
})

const cachifiedSwr: StaleBurstContender = {
  name: "cachified staleWhileRevalidate",
  make: (upstream, keys) =>
    Effect.sync(() => {
      const cache = new Map<string, CacheEntry<Item>>()
      const read = (key: string, ttl: number) => () =>
        cachified({ key, cache, ttl, staleWhileRevalidate: dayMillis, getFreshValue: () => upstream(key) })
      return { hit: read(keys.hit, dayMillis), stale: read(keys.stale, shortMillis) }
    })
}

const asyncCacheDedupe: StaleBurstContender = {
  name: "async-cache-dedupe stale",
  make: (upstream, keys) =>
    Effect.sync(() => {
      const cache = createCache({ storage: { type: "memory", options: { size: 1_000 } } })
        .define("hit", { ttl: dayMillis / 1000, stale: 60 }, (key: string) => upstream(key))
        .define("stale", { ttl: () => 0, stale: 60 }, (key: string) => upstream(key))
      return { hit: () => cache.hit(keys.hit), stale: () => cache.stale(keys.stale) }
    })
}

/**
 * @since 0.1.0
 * @category scenarios
 */
export const staleBurst: Harness.LatencyScenario = Harness.latency({
  name: "stale-burst",
  description: "1,000 concurrent Promise reads of a stale key, upstream 50 ms, against each contender's own hit",
  unit: "calls per wave",
  size: 1_000,
  quickSize: 1_000,
  phases: ["hit", "stale"],
  ownPhase: "hit",
  contenders: [lruCache, stalewise(false), stalewise(true), cachifiedSwr, asyncCacheDedupe].map(toContender)
})
