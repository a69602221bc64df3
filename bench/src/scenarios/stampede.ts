/**
 * Stampede: many concurrent calls on keys nobody holds yet, against an upstream that takes 20 ms
 * of wall-clock time (a real `setTimeout`). A cache that coalesces makes one upstream call per
 * key and every caller gets its value about 20 ms after it asked; the floor is the bare upstream
 * call itself, made by every caller (no cache, one upstream call per caller).
 *
 * Two shapes: 1,000 callers on one cold key, and 100 cold keys with 100 callers each (10,000
 * calls in flight, the callers of a key spread over the wave). Every run uses keys never seen
 * before, so every run starts cold; the number of upstream calls of each run is reported for
 * every contender, and ours must make exactly one per key (a run that makes more fails).
 *
 * @since 0.1.0
 */
import { cachified } from "@epic-web/cachified"
import type { CacheEntry } from "@epic-web/cachified"
import { CacheFirst, CacheStore, Failover } from "@stalewise/core"
import * as Cache from "effect/Cache"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import { LRUCache } from "lru-cache"
import * as Harness from "../harness.js"
import * as Peers from "../peers.js"

const upstreamMillis = 20
// Room for every key of every run: nothing is evicted while a run is in flight.
const capacity = 10_000
const dayMillis = 24 * 60 * 60 * 1000

interface Item {
  readonly key: string
}

/** The upstream: the key's item after 20 ms, counting its calls. */
interface Upstream {
  readonly promise: (key: string) => Promise<Item>
  readonly effect: (key: string) => Effect.Effect<Item>
}

/** A contender: builds its cache over `upstream` once (in the scenario's scope) and returns one call. */
interface StampedeContender {
  readonly name: string
  readonly baseline?: boolean
  /** Ours: the run fails unless the upstream was called exactly once per key. */
  readonly coalesces?: boolean
  readonly target?: number
  readonly make: (
    upstream: Upstream
  ) => Effect.Effect<(key: string) => Effect.Effect<unknown, unknown>, unknown, Scope.Scope>
}

let runs = 0

/** The same run for every contender: `calls` fibers at once, caller `i` asking for key `i mod keys`. */
const toContender = (keys: number) => (contender: StampedeContender): Harness.Contender<Harness.LatencyRun> => ({
  name: contender.name,
  baseline: contender.baseline,
  target: contender.target,
  setup: (calls) =>
    Effect.gen(function*() {
      const state = { calls: 0 }
      const upstream: Upstream = {
        promise: (key) => {
          state.calls++
          return Peers.delay(upstreamMillis, { key })
        },
        effect: (key) => Effect.promise(() => upstream.promise(key))
      }
      const get = yield* contender.make(upstream)
      return Effect.gen(function*() {
        const run = runs++
        const names = Array.from({ length: keys }, (_, i) => `stampede:${run}:${i}`)
        state.calls = 0
        const latencies = yield* Harness.concurrentLatencies(calls, (i) => {
          const key = names[i % keys]!
          return Effect.flatMap(get(key), (item) =>
            (item as Item | undefined)?.key === key
              ? Effect.void
              : Effect.dieMessage(`${contender.name}: served ${JSON.stringify(item)} for ${key}`))
        })
        if (contender.coalesces === true && state.calls !== keys) {
          return yield* Effect.dieMessage(`${contender.name}: ${state.calls} upstream calls for ${keys} keys`)
        }
        return { latencies, counts: { "upstream calls": state.calls } }
      })
    })
})

const contenders = (target: number): ReadonlyArray<StampedeContender> => [
  {
    name: "bare upstream call",
    baseline: true,
    make: (upstream) => Effect.succeed(upstream.effect)
  },
  {
    name: "stalewise Failover.get",
    coalesces: true,
    target,
    make: (upstream) =>
      Effect.map(
        Failover.make({ name: "item", lookup: upstream.effect, timeout: "50 millis" }),
        (failover) => failover.get
      ).pipe(Effect.provide(CacheStore.layerMemoryWith({ capacity }).pipe(Layer.orDie)))
  },
  {
    name: "stalewise CacheFirst.get",
    coalesces: true,
    target,
    make: (upstream) =>
      Effect.map(
        CacheFirst.make({ name: "item", lookup: upstream.effect, timeToLive: "1 day", capacity }),
        (cacheFirst) => cacheFirst.get
      )
  },
  {
    name: "bentocache getOrSet",
    make: (upstream) =>
      Effect.map(
        Peers.bento(capacity),
        (bento) => (key: string) =>
          Effect.promise(() => bento.getOrSet({ key, factory: () => upstream.promise(key), ttl: "1d" }))
      )
  },
  {
    name: "cachified",
    make: (upstream) =>
      Effect.sync(() => {
        const cache = new Map<string, CacheEntry<Item>>()
        return (key: string) =>
          Effect.promise(() => cachified({ key, cache, ttl: dayMillis, getFreshValue: () => upstream.promise(key) }))
      })
  },
  {
    name: "lru-cache fetch",
    make: (upstream) =>
      Effect.sync(() => {
        const lru = new LRUCache<string, Item>({ max: capacity, fetchMethod: (key) => upstream.promise(key) })
        return (key: string) => Effect.promise(() => lru.fetch(key))
      })
  },
  {
    name: "effect Cache.get",
    make: (upstream) =>
      Effect.map(
        Cache.make({ capacity, timeToLive: "1 day", lookup: upstream.effect }),
        (cache) => (key: string) => cache.get(key)
      )
  }
]

/**
 * @since 0.1.0
 * @category scenarios
 */
export const stampedeColdKey: Harness.LatencyScenario = Harness.latency({
  name: "stampede-cold-key",
  description: "1,000 concurrent calls on one cold key, upstream 20 ms",
  unit: "calls",
  size: 1_000,
  quickSize: 1_000,
  contenders: contenders(1.1).map(toContender(1))
})

/**
 * @since 0.1.0
 * @category scenarios
 */
export const stampedeManyKeys: Harness.LatencyScenario = Harness.latency({
  name: "stampede-100-keys",
  description: "100 cold keys × 100 concurrent callers each, upstream 20 ms",
  unit: "calls",
  size: 10_000,
  quickSize: 10_000,
  // a run takes about half a second per contender
  rounds: 8,
  contenders: contenders(1.2).map(toContender(100))
})
