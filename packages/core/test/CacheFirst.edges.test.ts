import { assert, describe, it } from "@effect/vitest"
import { CacheControl, CacheFirst, CacheMetrics, CacheStore } from "@stalewise/core"
import { SpanRecorder } from "@stalewise/testing"
import { Cache, Duration, Effect, FastCheck as fc, Fiber, Option, Ref, TestClock } from "effect"

let names = 0
const uniqueName = () => `cfedges${names++}`

/** An upstream whose calls are counted; `delay` runs on TestClock, ids starting with "missing" fail NotFound. */
const makeUpstream = Effect.gen(function*() {
  const calls = yield* Ref.make(0)
  const interrupted = yield* Ref.make(0)
  const delay = yield* Ref.make<Duration.DurationInput>(Duration.zero)
  const version = yield* Ref.make(1)
  const lookup = (id: string) =>
    Effect.gen(function*() {
      const n = yield* Ref.updateAndGet(calls, (c) => c + 1)
      yield* Effect.sleep(yield* Ref.get(delay))
      if (id.startsWith("missing")) return yield* Effect.fail({ _tag: "NotFound" as const, id })
      if (id.startsWith("broken")) return yield* Effect.fail({ _tag: "Broken" as const, id })
      return `${id}#${n}v${yield* Ref.get(version)}`
    }).pipe(Effect.onInterrupt(() => Ref.update(interrupted, (n) => n + 1)))
  return { calls, interrupted, delay, version, lookup }
})

/** The documented policy: least recently used first, a hit counts as a use. */
const referenceLru = (capacity: number) => {
  const order: Array<string> = []
  return (key: string): "hit" | "miss" => {
    const at = order.indexOf(key)
    if (at !== -1) {
      order.splice(at, 1)
      order.push(key)
      return "hit"
    }
    order.push(key)
    if (order.length > capacity) order.shift()
    return "miss"
  }
}

describe("CacheFirst edges", () => {
  it.scoped("the in-process tier is least recently used: capacity 2, reads a, b, a, a, c evict b", () =>
    Effect.gen(function*() {
      const upstream = yield* makeUpstream
      const cached = yield* CacheFirst.make({
        name: uniqueName(),
        timeToLive: "1 hour",
        capacity: 2,
        lookup: upstream.lookup
      })
      for (const key of ["a", "b", "a", "a", "c"]) yield* cached.get(key)
      assert.strictEqual((yield* cached.getWithOutcome("a")).status, "hit", "a was used last but one")
      assert.strictEqual((yield* cached.getWithOutcome("b")).status, "miss", "b was least recently used")
    }))

  it.effect("why the tier is not effect's Cache alone: its eviction ignores hits (a, b, a, a, c evicts a)", () =>
    Effect.gen(function*() {
      const cache = yield* Cache.make({
        capacity: 2,
        timeToLive: "1 hour",
        lookup: (key: string) => Effect.succeed(key)
      })
      for (const key of ["a", "b", "a", "a", "c"]) yield* cache.get(key)
      assert.isFalse(yield* cache.contains("a"), "effect 3.22's Cache evicted the most used key")
      assert.isTrue(yield* cache.contains("b"))
    }))

  it.effect.prop(
    "eviction matches a reference LRU model",
    [fc.integer({ min: 1, max: 4 }), fc.array(fc.constantFrom("a", "b", "c", "d", "e", "f"), { maxLength: 60 })],
    ([capacity, reads]) =>
      Effect.gen(function*() {
        const upstream = yield* makeUpstream
        const cached = yield* CacheFirst.make({
          name: uniqueName(),
          timeToLive: "1 hour",
          capacity,
          lookup: upstream.lookup
        })
        const model = referenceLru(capacity)
        for (const [i, key] of reads.entries()) {
          const outcome = yield* cached.getWithOutcome(key)
          assert.strictEqual(outcome.status, model(key), `read ${i} (${key}) of ${JSON.stringify(reads)}`)
        }
      }).pipe(Effect.scoped),
    { fastCheck: { numRuns: 100 } }
  )

  it.scoped("across a rebuild of effect's Cache (every capacity + 1,024 loads): LRU order, hits and a load in flight hold", () =>
    Effect.gen(function*() {
      const upstream = yield* makeUpstream
      const cached = yield* CacheFirst.make({
        name: uniqueName(),
        timeToLive: "1 hour",
        capacity: 3,
        lookup: upstream.lookup
      })
      const model = referenceLru(3)
      // a load in flight while the Cache is rebuilt: it finishes into the new one
      yield* Ref.set(upstream.delay, "1 second")
      const slow = yield* Effect.fork(cached.getWithOutcome("slow"))
      yield* TestClock.adjust("1 millis")
      yield* Ref.set(upstream.delay, Duration.zero)
      // k0, read every third time, stays (capacity 3) and is read again after the replacement
      let hits = 0
      for (let i = 0; i < 2_100; i++) {
        const key = i % 3 === 0 ? "k0" : `k${1 + (i % 700)}`
        const outcome = yield* cached.getWithOutcome(key)
        assert.strictEqual(outcome.status, model(key), `read ${i} (${key})`)
        if (outcome.status === "hit") hits++
      }
      assert.isAtLeast(hits, 690)
      yield* TestClock.adjust("1 second")
      assert.strictEqual((yield* Fiber.join(slow)).status, "miss")
      model("slow")
      // "slow" landed in the rebuilt Cache: a hit, no call
      const calls = yield* Ref.get(upstream.calls)
      assert.strictEqual((yield* cached.getWithOutcome("slow")).status, model("slow"))
      assert.strictEqual((yield* cached.getWithOutcome("k700")).status, model("k700"))
      assert.strictEqual(yield* Ref.get(upstream.calls), calls)
      assert.strictEqual((yield* cached.getWithOutcome("k2")).status, model("k2"))
    }))

  it.scoped("onAbandon interrupt: the load ends when its last waiter leaves, never before", () =>
    Effect.gen(function*() {
      const upstream = yield* makeUpstream
      const cached = yield* CacheFirst.make({
        name: uniqueName(),
        timeToLive: "1 hour",
        onAbandon: "interrupt",
        lookup: upstream.lookup
      })
      yield* Ref.set(upstream.delay, "5 seconds")
      const one = yield* Effect.fork(cached.get("a"))
      const two = yield* Effect.fork(cached.get("a"))
      yield* TestClock.adjust("1 second")
      yield* Fiber.interrupt(one)
      assert.strictEqual(yield* Ref.get(upstream.interrupted), 0, "one waiter remains")
      yield* Fiber.interrupt(two)
      assert.strictEqual(yield* Ref.get(upstream.interrupted), 1, "the last waiter left")
      yield* Ref.set(upstream.delay, Duration.zero)
      assert.isTrue(Option.isNone(yield* cached.peek("a")), "nothing cached")
      assert.strictEqual((yield* cached.getWithOutcome("a")).status, "miss", "the next caller loads afresh")
      assert.strictEqual(yield* Ref.get(upstream.calls), 2)
    }))

  it.scoped("onAbandon complete (default): the abandoned load lands and is served", () =>
    Effect.gen(function*() {
      const upstream = yield* makeUpstream
      const cached = yield* CacheFirst.make({ name: uniqueName(), timeToLive: "1 hour", lookup: upstream.lookup })
      yield* Ref.set(upstream.delay, "5 seconds")
      const one = yield* Effect.fork(cached.get("a"))
      yield* TestClock.adjust("1 second")
      yield* Fiber.interrupt(one)
      yield* TestClock.adjust("4 seconds")
      assert.strictEqual(yield* Ref.get(upstream.interrupted), 0)
      assert.strictEqual((yield* cached.getWithOutcome("a")).status, "hit")
    }))

  it.scoped("a hung load nobody waits for runs at most backgroundTimeout (default 30 s); the next caller loads afresh", () =>
    Effect.gen(function*() {
      const upstream = yield* makeUpstream
      const cached = yield* CacheFirst.make({ name: uniqueName(), timeToLive: "1 hour", lookup: upstream.lookup })
      yield* Ref.set(upstream.delay, "1 day") // hangs
      const waiter = yield* Effect.fork(cached.get("a"))
      yield* TestClock.adjust("1 second")
      yield* Fiber.interrupt(waiter)
      // a caller joining the abandoned load keeps it going; when it leaves, the bound still holds
      const joiner = yield* Effect.fork(cached.get("a"))
      yield* TestClock.adjust("28 seconds")
      yield* Fiber.interrupt(joiner)
      assert.strictEqual(yield* Ref.get(upstream.interrupted), 0, "29 s: still running")
      yield* TestClock.adjust("1 second")
      assert.strictEqual(yield* Ref.get(upstream.interrupted), 1, "30 s after it started: interrupted")
      yield* Ref.set(upstream.delay, Duration.zero)
      const next = yield* cached.getWithOutcome("a")
      assert.deepStrictEqual([next.status, next.value], ["miss", "a#2v1"])
      const error = yield* Effect.flip(
        CacheFirst.make({ name: "x", timeToLive: "1 hour", backgroundTimeout: 0, lookup: upstream.lookup })
      )
      assert.strictEqual(error.option, "backgroundTimeout")
    }))

  it.scoped("negative caching keeps chosen failures for their own timeToLive, counted as negative", () =>
    Effect.gen(function*() {
      const upstream = yield* makeUpstream
      const name = uniqueName()
      const cached = yield* CacheFirst.make({
        name,
        timeToLive: "1 hour",
        lookup: upstream.lookup,
        negative: { when: (error) => error._tag === "NotFound", timeToLive: "30 seconds" }
      })
      assert.strictEqual((yield* Effect.flip(cached.get("missing-1")))._tag, "NotFound")
      yield* TestClock.adjust("29 seconds")
      assert.strictEqual((yield* Effect.flip(cached.get("missing-1")))._tag, "NotFound")
      assert.strictEqual(yield* Ref.get(upstream.calls), 1, "served from the negative cache")
      yield* TestClock.adjust("1 second")
      yield* Effect.flip(cached.get("missing-1"))
      assert.strictEqual(yield* Ref.get(upstream.calls), 2, "expired: asked again")
      // other failures are never cached
      yield* Effect.flip(cached.get("broken-1"))
      yield* Effect.flip(cached.get("broken-1"))
      assert.strictEqual(yield* Ref.get(upstream.calls), 4)
      // set and invalidate replace a cached failure
      yield* cached.set(["missing-1"], "found after all")
      assert.strictEqual(yield* cached.get("missing-1"), "found after all")
      const counts = yield* CacheMetrics.outcomeCounts({ name })
      assert.strictEqual(counts.negative, 1)
      assert.strictEqual(counts.hit, 1)
    }))

  it.scoped("set, peek, preload and invalidate work on a cache kept only in process", () =>
    Effect.gen(function*() {
      const upstream = yield* makeUpstream
      const cached = yield* CacheFirst.make({ name: uniqueName(), timeToLive: "1 minute", lookup: upstream.lookup })
      yield* cached.set(["x"], "manual")
      assert.strictEqual(Option.getOrThrow(yield* cached.peek("x")).value, "manual")
      assert.strictEqual((yield* cached.getWithOutcome("x")).status, "hit")
      assert.deepStrictEqual(yield* cached.preload([["a"], ["b"], ["missing-1"]]), { loaded: 2, failed: 1 })
      assert.strictEqual((yield* cached.getWithOutcome("a")).status, "hit")
      yield* cached.invalidate("a")
      assert.isTrue(Option.isNone(yield* cached.peek("a")))
      yield* cached.invalidateAll
      assert.isTrue(Option.isNone(yield* cached.peek("b")))
      yield* TestClock.adjust("1 minute")
      assert.isTrue(Option.isNone(yield* cached.peek("x")), "peek never shows an expired value")
    }))

  it.scoped("bypass skips the cache; forceRefresh fetches now and stores, in process and in the store", () =>
    Effect.gen(function*() {
      const upstream = yield* makeUpstream
      const name = uniqueName()
      const cached = yield* CacheFirst.makePersisted({ name, timeToLive: "1 hour", lookup: upstream.lookup })
      assert.strictEqual(yield* cached.get("a"), "a#1v1")
      yield* Ref.set(upstream.version, 2)
      assert.strictEqual(yield* CacheControl.bypass(cached.get("a")), "a#2v2")
      assert.strictEqual(yield* cached.get("a"), "a#1v1", "bypass stored nothing")
      const forced = yield* cached.getWithOutcome("a").pipe(CacheControl.forceRefresh)
      assert.strictEqual(forced.status, "miss")
      assert.strictEqual(forced.value, "a#3v2")
      assert.strictEqual(yield* cached.get("a"), "a#3v2")
      // another instance over the same store sees the refreshed value
      const other = yield* CacheFirst.makePersisted({ name, timeToLive: "1 hour", lookup: upstream.lookup })
      yield* TestClock.adjust("1 second")
      assert.strictEqual(Option.getOrThrow(yield* other.peek("a")).value, "a#3v2", "peek reads the store")
      const seen = yield* other.getWithOutcome("a")
      assert.deepStrictEqual([seen.status, seen.value], ["hit", "a#3v2"])
      assert.strictEqual((yield* CacheMetrics.outcomeCounts({ name })).bypass, 1)
    }).pipe(Effect.provide(CacheStore.layerMemory)))

  it.scoped("misses run in a stalewise.get span; hits only with traceHits", () =>
    Effect.gen(function*() {
      const upstream = yield* makeUpstream
      const recorder = yield* SpanRecorder.make
      const spans = recorder.spans
      const recording = recorder.tracer
      const quiet = yield* CacheFirst.make({ name: uniqueName(), timeToLive: "1 hour", lookup: upstream.lookup })
      yield* quiet.get("a").pipe(Effect.withTracer(recording))
      yield* quiet.get("a").pipe(Effect.withTracer(recording))
      const gets = () => spans.filter((span) => span.name === "stalewise.get")
      assert.deepStrictEqual(gets().map((span) => span.attributes.get("stalewise.status")), ["miss"])
      const traced = yield* CacheFirst.make({
        name: uniqueName(),
        timeToLive: "1 hour",
        traceHits: true,
        lookup: upstream.lookup
      })
      yield* traced.get("a").pipe(Effect.withTracer(recording))
      yield* traced.get("a").pipe(Effect.withTracer(recording))
      assert.deepStrictEqual(gets().map((span) => span.attributes.get("stalewise.status")), ["miss", "miss", "hit"])
      assert.strictEqual(gets()[2]!.attributes.get("stalewise.strategy"), "cache-first")
    }))

  it.effect.prop(
    "onAbandon interrupt: whatever the order waiters leave in, the load ends exactly when the last one does",
    [fc.integer({ min: 1, max: 6 }).chain((n) => fc.tuple(fc.constant(n), fc.shuffledSubarray([...Array(n).keys()])))],
    ([[waiters, leaving]]) =>
      Effect.gen(function*() {
        const upstream = yield* makeUpstream
        const cached = yield* CacheFirst.make({
          name: uniqueName(),
          timeToLive: "1 hour",
          onAbandon: "interrupt",
          lookup: upstream.lookup
        })
        yield* Ref.set(upstream.delay, "5 seconds")
        const fibers = yield* Effect.forEach([...Array(waiters).keys()], () => Effect.fork(cached.get("a")))
        yield* TestClock.adjust("1 second")
        for (const [i, index] of leaving.entries()) {
          yield* Fiber.interrupt(fibers[index]!)
          const everyoneLeft = i === waiters - 1
          assert.strictEqual(yield* Ref.get(upstream.interrupted), everyoneLeft ? 1 : 0, `after ${i + 1} left`)
        }
        yield* TestClock.adjust("4 seconds")
        assert.strictEqual(yield* Ref.get(upstream.calls), 1)
        if (leaving.length < waiters) {
          const stayed = fibers.filter((_, index) => !leaving.includes(index))
          for (const fiber of stayed) assert.strictEqual(yield* Fiber.join(fiber), "a#1v1")
        }
      }).pipe(Effect.scoped),
    { fastCheck: { numRuns: 40 } }
  )
})
