import { Error as PlatformError, KeyValueStore } from "@effect/platform"
import { assert, describe, it } from "@effect/vitest"
import { CacheFirst, CacheStore } from "@stalewise/core"
import { Duration, Effect, Exit, Fiber, Layer, Ref, Schema, TestClock } from "effect"

/** An upstream whose calls are counted; `delay` runs on TestClock, `failNext` fails calls. */
const makeUpstream = Effect.gen(function*() {
  const calls = yield* Ref.make(0)
  const interrupted = yield* Ref.make(0)
  const failing = yield* Ref.make(false)
  const delay = yield* Ref.make<Duration.DurationInput>(Duration.zero)
  const lookup = (id: string) =>
    Effect.gen(function*() {
      const n = yield* Ref.updateAndGet(calls, (c) => c + 1)
      yield* Effect.sleep(yield* Ref.get(delay))
      if (yield* Ref.get(failing)) return yield* Effect.fail(`failed:${id}` as const)
      return `${id}#${n}`
    }).pipe(Effect.onInterrupt(() => Ref.update(interrupted, (n) => n + 1)))
  return { calls, interrupted, failing, delay, lookup }
})

const setup = (options: { readonly timeToLive?: Duration.DurationInput; readonly capacity?: number } = {}) =>
  Effect.gen(function*() {
    const upstream = yield* makeUpstream
    const cached = yield* CacheFirst.make({ name: "fn", timeToLive: "10 seconds", ...options, lookup: upstream.lookup })
    return { upstream, cached }
  })

describe("CacheFirst", () => {
  it.scoped("a hit never calls the upstream and reports the value's age", () =>
    Effect.gen(function*() {
      const { cached, upstream } = yield* setup()
      const first = yield* cached.getWithOutcome("a")
      assert.strictEqual(first.status, "miss")
      assert.isTrue(first.fetchedSynchronously)
      yield* TestClock.adjust("3 seconds")
      const second = yield* cached.getWithOutcome("a")
      assert.strictEqual(second.status, "hit")
      assert.strictEqual(second.value, "a#1")
      assert.isFalse(second.fetchedSynchronously)
      assert.isTrue(Duration.equals(second.age, Duration.seconds(3)))
      assert.strictEqual(yield* Ref.get(upstream.calls), 1)
    }))

  it.scoped("1,000 concurrent misses make one upstream call", () =>
    Effect.gen(function*() {
      const { cached, upstream } = yield* setup()
      yield* Ref.set(upstream.delay, "20 millis")
      const fiber = yield* Effect.fork(
        Effect.all(Array.from({ length: 1_000 }, () => cached.get("a")), { concurrency: "unbounded" })
      )
      yield* TestClock.adjust("20 millis")
      const values = yield* Fiber.join(fiber)
      assert.isTrue(values.every((v) => v === "a#1"))
      assert.strictEqual(yield* Ref.get(upstream.calls), 1)
    }))

  it.scoped("failures are not cached: concurrent waiters share one failure, the next call asks again", () =>
    Effect.gen(function*() {
      const { cached, upstream } = yield* setup()
      yield* Ref.set(upstream.failing, true)
      yield* Ref.set(upstream.delay, "10 millis")
      const fiber = yield* Effect.fork(
        Effect.all(Array.from({ length: 10 }, () => Effect.flip(cached.get("a"))), { concurrency: "unbounded" })
      )
      yield* TestClock.adjust("10 millis")
      assert.isTrue((yield* Fiber.join(fiber)).every((e) => e === "failed:a"))
      assert.strictEqual(yield* Ref.get(upstream.calls), 1)
      yield* Ref.set(upstream.failing, false)
      yield* Ref.set(upstream.delay, Duration.zero)
      // same instant: a failure kept for "zero" time would still be served here
      assert.strictEqual(yield* cached.get("a"), "a#2")
    }))

  it.scoped("timeToLive applies to each call's entry, measured from its fetch", () =>
    Effect.gen(function*() {
      const { cached, upstream } = yield* setup({ timeToLive: "10 seconds" })
      yield* cached.get("a")
      yield* TestClock.adjust("5 seconds")
      yield* cached.get("b")
      yield* TestClock.adjust("4999 millis")
      assert.strictEqual(yield* cached.get("a"), "a#1", "a alive at 9.999 s")
      yield* TestClock.adjust("1 millis")
      assert.strictEqual(yield* cached.get("a"), "a#3", "a expired at 10 s")
      assert.strictEqual(yield* cached.get("b"), "b#2", "b, fetched 5 s later, still alive")
      yield* TestClock.adjust("5 seconds")
      assert.strictEqual(yield* cached.get("b"), "b#4")
      assert.strictEqual(yield* Ref.get(upstream.calls), 4)
    }))

  it.scoped("capacity applies to calls: the least recently used call's value is evicted", () =>
    Effect.gen(function*() {
      const { cached, upstream } = yield* setup({ capacity: 2 })
      yield* cached.get("a")
      yield* cached.get("b")
      yield* cached.get("c")
      assert.strictEqual(yield* Ref.get(upstream.calls), 3)
      assert.strictEqual(yield* cached.get("c"), "c#3")
      assert.strictEqual(yield* cached.get("a"), "a#4", "a was evicted")
    }))

  it.scoped("interrupting one waiter does not cancel the lookup the others wait on", () =>
    Effect.gen(function*() {
      const { cached, upstream } = yield* setup()
      yield* Ref.set(upstream.delay, "1 second")
      const first = yield* Effect.fork(cached.get("a"))
      yield* TestClock.adjust("10 millis")
      const second = yield* Effect.fork(cached.get("a"))
      yield* TestClock.adjust("10 millis")
      yield* Fiber.interrupt(first) // the caller that started the lookup
      yield* TestClock.adjust("1 second")
      assert.strictEqual(yield* Fiber.join(second), "a#1")
      assert.strictEqual(yield* Ref.get(upstream.interrupted), 0)
      assert.strictEqual(yield* Ref.get(upstream.calls), 1)
    }))

  it.scoped("a lookup whose only caller was interrupted still lands in the cache", () =>
    Effect.gen(function*() {
      const { cached, upstream } = yield* setup()
      yield* Ref.set(upstream.delay, "1 second")
      const only = yield* Effect.fork(cached.get("a"))
      yield* TestClock.adjust("10 millis")
      assert.isTrue(Exit.isInterrupted(yield* Fiber.interrupt(only)))
      yield* TestClock.adjust("1 second")
      assert.strictEqual((yield* cached.getWithOutcome("a")).status, "hit")
      assert.strictEqual(yield* Ref.get(upstream.calls), 1)
    }))

  it.scoped("invalidate and invalidateAll make the next call ask again", () =>
    Effect.gen(function*() {
      const { cached } = yield* setup()
      yield* cached.get("a")
      yield* cached.get("b")
      yield* cached.invalidate("a")
      assert.strictEqual(yield* cached.get("a"), "a#3")
      assert.strictEqual(yield* cached.get("b"), "b#2")
      yield* cached.invalidateAll
      assert.strictEqual(yield* cached.get("b"), "b#4")
    }))

  it.scoped("timeToLive and capacity are validated", () =>
    Effect.gen(function*() {
      assert.strictEqual((yield* Effect.flip(setup({ timeToLive: 0 }))).option, "lifetime")
      assert.strictEqual((yield* Effect.flip(setup({ capacity: 0 }))).option, "capacity")
    }))

  it.scoped("an argument that cannot be keyed fails before the upstream is called", () =>
    Effect.gen(function*() {
      const upstream = yield* makeUpstream
      const cached = yield* CacheFirst.make({
        name: "fn",
        timeToLive: "1 minute",
        lookup: (_: symbol) => upstream.lookup("x")
      })
      const error = yield* Effect.flip(cached.get(Symbol("s")))
      assert.isTrue(typeof error === "object" && error._tag === "CacheKeyError" && error.reason === "Unkeyable")
      assert.strictEqual(yield* Ref.get(upstream.calls), 0)
    }))

  describe("persisted in a CacheStore", () => {
    const persisted = (upstream: Effect.Effect.Success<typeof makeUpstream>) =>
      CacheFirst.makePersisted({
        name: "user",
        timeToLive: "1 minute",
        schema: Schema.String,
        lookup: upstream.lookup
      })

    it.scoped("a value fetched by one process is a hit for another sharing the store", () =>
      Effect.gen(function*() {
        const upstreamA = yield* makeUpstream
        const upstreamB = yield* makeUpstream
        const processA = yield* persisted(upstreamA)
        const processB = yield* persisted(upstreamB)
        yield* processA.get("a")
        yield* TestClock.adjust("5 seconds")
        const outcome = yield* processB.getWithOutcome("a")
        assert.strictEqual(outcome.status, "hit")
        assert.strictEqual(outcome.value, "a#1")
        assert.isTrue(Duration.equals(outcome.age, Duration.seconds(5)))
        assert.strictEqual(yield* Ref.get(upstreamB.calls), 0)
        // invalidation reaches the store
        yield* processB.invalidate("a")
        yield* processA.invalidate("a")
        assert.strictEqual(yield* processA.get("a"), "a#2")
      }).pipe(Effect.provide(CacheStore.layerKeyValueStore), Effect.provide(KeyValueStore.layerMemory)))

    it.scoped("a store that is down is treated as empty: the upstream answers", () =>
      Effect.gen(function*() {
        const upstream = yield* makeUpstream
        const cached = yield* persisted(upstream)
        assert.strictEqual(yield* cached.get("a"), "a#1")
        assert.strictEqual(yield* cached.get("a"), "a#1", "the in-process tier still serves")
      }).pipe(Effect.provide(Layer.effect(
        CacheStore.CacheStore,
        CacheStore.makeKeyValueStore().pipe(Effect.provide(Layer.succeed(KeyValueStore.KeyValueStore, broken)))
      ))))
  })
})

const down = (method: string) =>
  Effect.fail(
    new PlatformError.SystemError({ reason: "Unknown", module: "KeyValueStore", method, description: "gone" })
  )
const broken = KeyValueStore.makeStringOnly({
  get: () => down("get"),
  set: () => down("set"),
  remove: () => down("remove"),
  clear: down("clear"),
  size: down("size")
})
