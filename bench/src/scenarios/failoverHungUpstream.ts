/**
 * Failover with a hung upstream: each contender holds a value for the key, then the upstream
 * stops answering (it hangs, it does not fail). Two waves of 100 concurrent calls follow, one
 * after the other, each contender configured to give up on the upstream after 50 ms and serve
 * the value it holds. Wave 1 can do no better than the timeout; wave 2 shows whether a contender
 * remembers that the upstream is already overdue or makes every caller wait the timeout again.
 *
 * Every run starts from nothing: a fresh upstream, a fresh contender built in the run's own scope
 * (closed at the end of the run, which interrupts our hung fibers; the peers' hung promises hold
 * no timer and are dropped with their cache), one seeding call while the upstream answers, 5 ms
 * so that peers with a 1 ms logical TTL hold a stale entry, then the two waves.
 *
 * @since 0.1.0
 */
import { cachified } from "@epic-web/cachified"
import type { CacheEntry } from "@epic-web/cachified"
import { CacheStore, Failover } from "@stalewise/core"
import * as Cache from "effect/Cache"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import type * as Scope from "effect/Scope"
import { LRUCache } from "lru-cache"
import * as Harness from "../harness.js"
import * as Peers from "../peers.js"

const timeoutMillis = 50
const timeout = Duration.millis(timeoutMillis)
const key = "rates:EUR"
const dayMillis = 24 * 60 * 60 * 1000
// Long enough for a 1 ms logical TTL to run out, so the peers that need it hold a stale entry
const staleAfter = Duration.millis(5)

interface Rate {
  readonly currency: string
  readonly rate: number
}

const rate: Rate = { currency: "EUR", rate: 1.08 }

/**
 * The upstream of one run: answers at once until it hangs, then never answers: `Effect.never`
 * for Effect callers, a promise that never settles for the peers. Counts the calls it receives
 * while hung.
 */
interface Upstream {
  readonly effect: (key: string) => Effect.Effect<Rate>
  readonly promise: (key: string) => Promise<Rate>
}

const makeUpstream = () => {
  const state = { hung: false, calls: 0 }
  const upstream: Upstream = {
    effect: () =>
      Effect.suspend(() => {
        if (!state.hung) return Effect.succeed(rate)
        state.calls++
        return Effect.never
      }),
    promise: () => {
      if (!state.hung) return Promise.resolve(rate)
      state.calls++
      return Peers.hang()
    }
  }
  return { upstream, state }
}

/** A contender: builds its cache over the run's upstream, in the run's scope, and returns one call. */
interface FailoverContender {
  readonly name: string
  readonly baseline?: boolean
  readonly phaseTargets?: { readonly [phase: string]: Harness.Target }
  readonly make: (
    upstream: Upstream
  ) => Effect.Effect<(key: string) => Effect.Effect<unknown, unknown>, unknown, Scope.Scope>
}

/** The same run for every contender: seed, hang, wait for staleness, wave 1, wave 2. */
const run = (contender: FailoverContender, calls: number): Effect.Effect<Harness.LatencyRun, unknown> =>
  Effect.scoped(Effect.gen(function*() {
    const { state, upstream } = makeUpstream()
    const get = yield* contender.make(upstream)
    // Every call must serve the held value: a contender that failed or answered nothing would
    // otherwise look fast.
    const served = Effect.flatMap(
      Effect.suspend(() => get(key)),
      (value) =>
        (value as Rate | undefined)?.rate === rate.rate
          ? Effect.void
          : Effect.dieMessage(`${contender.name}: served ${JSON.stringify(value)} instead of the held value`)
    )
    yield* served
    state.hung = true
    yield* Effect.sleep(staleAfter)
    const wave1 = yield* Harness.concurrentLatencies(calls, () => served)
    const wave2 = yield* Harness.concurrentLatencies(calls, () => served)
    return { latencies: { "wave 1": wave1, "wave 2": wave2 }, counts: { "upstream calls": state.calls } }
  }))

const toContender = (contender: FailoverContender): Harness.Contender<Harness.LatencyRun> => ({
  name: contender.name,
  baseline: contender.baseline,
  phaseTargets: contender.phaseTargets,
  setup: (calls) => Effect.succeed(run(contender, calls))
})

/** One upstream call shared by the callers of its key while it runs; overdue once a caller gave up on it. */
interface InFlight {
  readonly deferred: Deferred.Deferred<Rate>
  overdue: boolean
}

/**
 * The floor: failover written by hand in a dozen lines, the least machinery that has the
 * semantics (one shared upstream call per key, `Effect.timeout` on the wait, the last value in a
 * map, later callers served at once while the call is overdue). No key derivation, no store
 * abstraction, no outcome, no metrics.
 */
const handWritten: FailoverContender = {
  name: "hand-written failover in Effect",
  baseline: true,
  make: (upstream) =>
    Effect.gen(function*() {
      const scope = yield* Effect.scope
      const held = new Map<string, Rate>()
      const inflight = new Map<string, InFlight>()
      const start = (key: string) =>
        Effect.suspend(() => {
          const call: InFlight = { deferred: Deferred.unsafeMake(FiberId.none), overdue: false }
          inflight.set(key, call)
          const fetch = upstream.effect(key).pipe(
            Effect.tap((value) => Effect.sync(() => held.set(key, value))),
            Effect.exit,
            Effect.flatMap((exit: Exit.Exit<Rate>) => {
              inflight.delete(key)
              return Deferred.done(call.deferred, exit)
            })
          )
          return Effect.as(Effect.forkIn(fetch, scope), call)
        })
      return (key: string) =>
        Effect.suspend(() => {
          const value = held.get(key)
          const running = inflight.get(key)
          if (value !== undefined && running?.overdue === true) return Effect.succeed(value)
          return Effect.flatMap(running === undefined ? start(key) : Effect.succeed(running), (call) =>
            value === undefined
              ? Deferred.await(call.deferred)
              : Effect.timeoutTo(Deferred.await(call.deferred), {
                duration: timeout,
                onSuccess: (fresh): Rate => fresh,
                onTimeout: () => {
                  call.overdue = true
                  return value
                }
              }))
        })
    })
}

const stalewise: FailoverContender = {
  name: "stalewise Failover.get",
  // wave 1: at most 1.1× the 50 ms budget (issue 13); wave 2: served at once
  phaseTargets: { "wave 1": { p50Millis: 55 }, "wave 2": { p50Millis: 1 } },
  make: (upstream) =>
    Failover.make({ name: "rate", lookup: upstream.effect, timeout }).pipe(
      Effect.map((failover) => failover.get),
      Effect.provide(CacheStore.layerMemory)
    )
}

// Logical TTL 1 ms (the entry is stale at once, so every call runs the factory, as failover
// asks the upstream every time), grace 1 day (the stale entry stays available), soft timeout
// 50 ms (past it, the graced value is returned and the factory goes on).
const bentocache: FailoverContender = {
  name: "bentocache getOrSet grace+timeout",
  make: (upstream) =>
    Effect.map(
      Peers.bento(1_000),
      (bento) => (key: string) =>
        Effect.promise(() =>
          bento.getOrSet({ key, factory: () => upstream.promise(key), ttl: 1, grace: "1d", timeout: timeoutMillis })
        )
    )
}

// lru-cache's documented soft-timeout recipe: the caller's signal aborts after 50 ms, the stale
// value is returned on abort, and the fetch goes on (its result would still be cached).
const lruCache: FailoverContender = {
  name: "lru-cache fetch allowStaleOnFetchAbort",
  make: (upstream) =>
    Effect.sync(() => {
      const lru = new LRUCache<string, Rate>({ max: 1_000, ttl: 1, fetchMethod: (key) => upstream.promise(key) })
      return (key: string) =>
        Effect.promise(() =>
          lru.fetch(key, {
            signal: AbortSignal.timeout(timeoutMillis),
            allowStaleOnFetchAbort: true,
            ignoreFetchAbort: true
          })
        )
    })
}

// cachified has no timeout. Its failover is `forceFresh` (always ask) with `fallbackToCache`
// (serve the cached value when the fresh one fails); the 50 ms deadline is composed by hand
// around the upstream call, which rejects `getFreshValue` and triggers the fallback.
const cachifiedFallback: FailoverContender = {
  name: "cachified forceFresh+fallbackToCache",
  make: (upstream) =>
    Effect.sync(() => {
      const cache = new Map<string, CacheEntry<Rate>>()
      return (key: string) =>
        Effect.promise(() =>
          cachified({
            key,
            cache,
            ttl: dayMillis,
            forceFresh: true,
            fallbackToCache: true,
            getFreshValue: () => Peers.withDeadline(upstream.promise(key), timeoutMillis)
          })
        )
    })
}

// effect's Cache has no timeout and no fallback. Composed by hand: `refresh` asks the upstream
// and keeps the old value readable while it runs; it is forked into the run's scope because
// interrupting a refresh (as `Effect.timeout` on it would) drops the entry altogether. The
// caller waits for it at most 50 ms, then reads the entry: fresh, or the old value.
const effectCache: FailoverContender = {
  name: "effect Cache refresh+timeout",
  make: (upstream) =>
    Effect.gen(function*() {
      const scope = yield* Effect.scope
      const cache = yield* Cache.make({ capacity: 1_000, timeToLive: "1 day", lookup: upstream.effect })
      return (key: string) =>
        Effect.flatMap(Effect.forkIn(cache.refresh(key), scope), (refresh) =>
          Effect.zipRight(Effect.ignore(Effect.timeout(Fiber.join(refresh), timeout)), cache.get(key)))
    })
}

/**
 * @since 0.1.0
 * @category scenarios
 */
export const failoverHungUpstream: Harness.LatencyScenario = Harness.latency({
  name: "failover-hung-upstream",
  description: "a held value, the upstream hangs: two waves of 100 concurrent calls, timeout 50 ms",
  unit: "calls per wave",
  size: 100,
  quickSize: 100,
  phases: ["wave 1", "wave 2"],
  contenders: [handWritten, stalewise, bentocache, lruCache, cachifiedFallback, effectCache].map(toContender)
})
