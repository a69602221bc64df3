import { KeyValueStore } from "@effect/platform"
import { assert, describe, it } from "@effect/vitest"
import { CacheControl, CacheMetrics, CacheStore, Failover } from "@stalewise/core"
import { SpanRecorder } from "@stalewise/testing"
import type { Duration } from "effect"
import { Effect, FastCheck as fc, Fiber, Option, Ref, TestClock } from "effect"

type Behaviour = { readonly value: string; readonly after?: Duration.DurationInput } | "hang"

/** An upstream whose answer is the current behaviour: a value after a delay, or hanging forever. */
const makeUpstream = Effect.gen(function*() {
  const behaviour = yield* Ref.make<Behaviour>({ value: "v1" })
  const calls = yield* Ref.make(0)
  const interrupted = yield* Ref.make(0)
  const lookup = (id: string) =>
    Effect.gen(function*() {
      yield* Ref.update(calls, (n) => n + 1)
      const b = yield* Ref.get(behaviour)
      if (b === "hang") return yield* Effect.never
      if (b.after !== undefined) yield* Effect.sleep(b.after)
      return `${b.value}:${id}`
    }).pipe(Effect.onInterrupt(() => Ref.update(interrupted, (n) => n + 1)))
  return { calls, interrupted, lookup, behave: (b: Behaviour) => Ref.set(behaviour, b) }
})

const memory = Effect.provide(CacheStore.layerMemory)
let names = 0
const uniqueName = () => `edges${names++}`

describe("Failover edges", () => {
  it.scoped("a hung call runs at most backgroundTimeout (default 30 s), then the next caller asks again", () =>
    Effect.gen(function*() {
      const upstream = yield* makeUpstream
      const failover = yield* Failover.make({ name: uniqueName(), timeout: "1 second", lookup: upstream.lookup })
      yield* failover.get("a")
      yield* upstream.behave("hang")
      const first = yield* Effect.fork(failover.getWithOutcome("a"))
      yield* TestClock.adjust("1 second")
      assert.strictEqual((yield* Fiber.join(first)).status, "failover")
      // the upstream recovers while the hung call is still running: callers still fail over to the old value
      yield* upstream.behave({ value: "v2" })
      yield* TestClock.adjust("28 seconds")
      assert.strictEqual((yield* failover.getWithOutcome("a")).value, "v1:a")
      assert.strictEqual(yield* Ref.get(upstream.calls), 2)
      yield* TestClock.adjust("1 second") // 30 s after the hung call started
      assert.strictEqual(yield* Ref.get(upstream.interrupted), 1, "the hung call is interrupted")
      const next = yield* failover.getWithOutcome("a")
      assert.strictEqual(next.status, "miss")
      assert.strictEqual(next.value, "v2:a")
      assert.strictEqual(yield* Ref.get(upstream.calls), 3)
    }).pipe(memory))

  it.scoped("backgroundTimeout is an option, validated", () =>
    Effect.gen(function*() {
      const upstream = yield* makeUpstream
      const failover = yield* Failover.make({
        name: uniqueName(),
        timeout: "1 second",
        backgroundTimeout: "5 seconds",
        lookup: upstream.lookup
      })
      yield* failover.get("a")
      yield* upstream.behave("hang")
      yield* Effect.fork(failover.get("a"))
      yield* TestClock.adjust("4999 millis")
      assert.strictEqual(yield* Ref.get(upstream.interrupted), 0)
      yield* TestClock.adjust("1 millis")
      assert.strictEqual(yield* Ref.get(upstream.interrupted), 1)
      const error = yield* Effect.flip(
        Failover.make({ name: "x", timeout: "1 second", backgroundTimeout: 0, lookup: upstream.lookup })
      )
      assert.strictEqual(error.option, "backgroundTimeout")
    }).pipe(memory))

  it.scoped("a value is never served past its timeToLive, even while a call hangs", () =>
    Effect.gen(function*() {
      const upstream = yield* makeUpstream
      const failover = yield* Failover.make({
        name: uniqueName(),
        timeout: "1 second",
        timeToLive: "1 hour",
        requestTimeout: "5 seconds",
        backgroundTimeout: "3 hours",
        lookup: upstream.lookup
      })
      yield* failover.get("a")
      yield* upstream.behave("hang")
      const first = yield* Effect.fork(failover.getWithOutcome("a"))
      yield* TestClock.adjust("1 second")
      assert.strictEqual((yield* Fiber.join(first)).status, "failover")
      yield* TestClock.adjust("30 minutes")
      assert.strictEqual((yield* failover.getWithOutcome("a")).status, "failover", "younger than 1 h: served")
      yield* TestClock.adjust("90 minutes") // 2 h after the value was fetched
      const late = yield* Effect.fork(Effect.flip(failover.getWithOutcome("a")))
      yield* TestClock.adjust("5 seconds")
      const error = yield* Fiber.join(late)
      assert.strictEqual(error._tag, "RequestTimeoutError", "the expired value is not a fallback")
    }).pipe(memory))

  it.scoped("a value expiring while a caller waits is not served at the deadline", () =>
    Effect.gen(function*() {
      const upstream = yield* makeUpstream
      const failover = yield* Failover.make({
        name: uniqueName(),
        timeout: "10 seconds",
        timeToLive: "1 minute",
        requestTimeout: "30 seconds",
        lookup: upstream.lookup
      })
      yield* failover.get("a")
      yield* TestClock.adjust("55 seconds")
      yield* upstream.behave({ value: "v2", after: "20 seconds" })
      const fiber = yield* Effect.fork(failover.getWithOutcome("a"))
      yield* TestClock.adjust("10 seconds")
      assert.isTrue(Option.isNone(yield* Fiber.poll(fiber)), "the value expired at 60 s: keep waiting")
      yield* TestClock.adjust("10 seconds")
      const outcome = yield* Fiber.join(fiber)
      assert.strictEqual(outcome.status, "miss")
      assert.strictEqual(outcome.value, "v2:a")
    }).pipe(memory))

  it.scoped("onAbandon complete (default): a call whose only waiter is interrupted finishes and is stored", () =>
    Effect.gen(function*() {
      const upstream = yield* makeUpstream
      const failover = yield* Failover.make({ name: uniqueName(), timeout: "1 second", lookup: upstream.lookup })
      yield* upstream.behave({ value: "late", after: "5 seconds" })
      const waiter = yield* Effect.fork(failover.get("a"))
      yield* TestClock.adjust("1 second")
      yield* Fiber.interrupt(waiter)
      yield* TestClock.adjust("4 seconds")
      assert.strictEqual(yield* Ref.get(upstream.interrupted), 0)
      assert.strictEqual(Option.getOrThrow(yield* failover.peek("a")).value, "late:a")
    }).pipe(memory))

  it.scoped("onAbandon interrupt: the call ends when its last waiter leaves, never before", () =>
    Effect.gen(function*() {
      const upstream = yield* makeUpstream
      const failover = yield* Failover.make({
        name: uniqueName(),
        timeout: "1 second",
        onAbandon: "interrupt",
        lookup: upstream.lookup
      })
      yield* upstream.behave({ value: "late", after: "5 seconds" })
      const one = yield* Effect.fork(failover.get("a"))
      const two = yield* Effect.fork(failover.get("a"))
      const three = yield* Effect.fork(failover.get("a"))
      yield* TestClock.adjust("1 second")
      yield* Fiber.interrupt(one)
      yield* Fiber.interrupt(two)
      assert.strictEqual(yield* Ref.get(upstream.interrupted), 0, "a waiter remains: the call goes on")
      yield* TestClock.adjust("4 seconds")
      assert.strictEqual(yield* Fiber.join(three), "late:a")
      assert.strictEqual(yield* Ref.get(upstream.calls), 1)

      yield* upstream.behave({ value: "later", after: "5 seconds" })
      const four = yield* Effect.fork(failover.get("b"))
      const five = yield* Effect.fork(failover.get("b"))
      yield* TestClock.adjust("1 second")
      yield* Fiber.interrupt(four)
      assert.strictEqual(yield* Ref.get(upstream.interrupted), 0)
      yield* Fiber.interrupt(five)
      assert.strictEqual(yield* Ref.get(upstream.interrupted), 1, "the last waiter left: interrupted")
      yield* TestClock.adjust("10 seconds")
      assert.isTrue(Option.isNone(yield* failover.peek("b")), "nothing stored")
      // the next caller starts a fresh call
      yield* upstream.behave({ value: "v3" })
      assert.strictEqual(yield* failover.get("b"), "v3:b")
    }).pipe(memory))

  it.scoped("bypass asks the upstream and stores nothing; forceRefresh waits for it, without fallback", () =>
    Effect.gen(function*() {
      const upstream = yield* makeUpstream
      const name = uniqueName()
      const failover = yield* Failover.make({ name, timeout: "1 second", lookup: upstream.lookup })
      yield* failover.get("a")
      yield* upstream.behave({ value: "v2" })
      assert.strictEqual(yield* CacheControl.bypass(failover.get("a")), "v2:a")
      assert.strictEqual(Option.getOrThrow(yield* failover.peek("a")).value, "v1:a", "bypass stores nothing")
      assert.strictEqual((yield* CacheMetrics.outcomeCounts({ name })).bypass, 1)
      // forceRefresh: no fallback at the timeout, the caller waits and the answer is stored
      yield* upstream.behave({ value: "v3", after: "3 seconds" })
      const forced = yield* Effect.fork(failover.getWithOutcome("a").pipe(CacheControl.forceRefresh))
      yield* TestClock.adjust("3 seconds")
      const outcome = yield* Fiber.join(forced)
      assert.strictEqual(outcome.status, "miss")
      assert.strictEqual(outcome.value, "v3:a")
      assert.strictEqual(Option.getOrThrow(yield* failover.peek("a")).value, "v3:a")
    }).pipe(memory))

  it.scoped("set stores a fallback; preload fetches and stores many keys, counting failures", () =>
    Effect.gen(function*() {
      const upstream = yield* makeUpstream
      const failover = yield* Failover.make({
        name: uniqueName(),
        timeout: "1 second",
        lookup: (id: string) => id === "bad" ? Effect.fail("nope" as const) : upstream.lookup(id)
      })
      yield* failover.set(["x"], "manual")
      assert.strictEqual(Option.getOrThrow(yield* failover.peek("x")).value, "manual")
      const preloaded = yield* failover.preload([["a"], ["b"], ["bad"]])
      assert.deepStrictEqual(preloaded, { loaded: 2, failed: 1 })
      assert.strictEqual(Option.getOrThrow(yield* failover.peek("b")).value, "v1:b")
      assert.isTrue(Option.isNone(yield* failover.peek("bad")))
    }).pipe(memory))

  it.scoped("a cached undefined is a fallback in a serialising store", () =>
    Effect.gen(function*() {
      const fail = yield* Ref.make(false)
      const failover = yield* Failover.make({
        name: uniqueName(),
        timeout: "1 second",
        lookup: (_: string) => Effect.flatMap(Ref.get(fail), (f) => f ? Effect.fail("down") : Effect.void)
      })
      yield* failover.get("a")
      yield* Ref.set(fail, true)
      const outcome = yield* failover.getWithOutcome("a")
      assert.strictEqual(outcome.status, "failover")
      assert.isUndefined(outcome.value)
    }).pipe(Effect.provide(CacheStore.layerKeyValueStore), Effect.provide(KeyValueStore.layerMemory)))

  it.scoped("outcomes carry the cache's name; each call has a stalewise.get span without values", () =>
    Effect.gen(function*() {
      const upstream = yield* makeUpstream
      const name = uniqueName()
      const recorder = yield* SpanRecorder.make
      const spans = recorder.spans
      const recording = recorder.tracer
      const failover = yield* Failover.make({ name, namespace: "rates", timeout: "1 second", lookup: upstream.lookup })
      yield* failover.get("secret-arg").pipe(Effect.withTracer(recording))
      yield* upstream.behave("hang")
      const late = yield* Effect.fork(failover.get("secret-arg").pipe(Effect.withTracer(recording)))
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(late)
      const gets = spans.filter((span) => span.name === "stalewise.get")
      assert.strictEqual(gets.length, 2)
      const attributes = Object.fromEntries(gets[1]!.attributes)
      assert.strictEqual(attributes["stalewise.strategy"], "failover")
      assert.strictEqual(attributes["stalewise.name"], name)
      assert.strictEqual(attributes["stalewise.namespace"], "rates")
      assert.strictEqual(attributes["stalewise.status"], "failover")
      assert.strictEqual(attributes["stalewise.reason"], "timeout")
      assert.match(String(attributes["stalewise.key_digest"]), /^[0-9a-f]{8}$/)
      for (const span of spans) {
        for (const value of span.attributes.values()) assert.notInclude(String(value), "secret-arg")
      }
      const counts = yield* CacheMetrics.outcomeCounts({ name, namespace: "rates" })
      assert.deepStrictEqual(counts, { miss: 1, failover: 1 })
      assert.deepStrictEqual(yield* CacheMetrics.hitRatio({ name }), Option.some(0.5))
    }).pipe(memory))

  it.effect.prop(
    "onAbandon interrupt: whatever the order waiters leave in, the call ends exactly when the last one does",
    [fc.integer({ min: 1, max: 6 }).chain((n) => fc.tuple(fc.constant(n), fc.shuffledSubarray([...Array(n).keys()])))],
    ([[waiters, leaving]]) =>
      Effect.gen(function*() {
        const upstream = yield* makeUpstream
        const failover = yield* Failover.make({
          name: uniqueName(),
          timeout: "1 second",
          onAbandon: "interrupt",
          lookup: upstream.lookup
        })
        yield* upstream.behave({ value: "late", after: "5 seconds" })
        const fibers = yield* Effect.forEach([...Array(waiters).keys()], () => Effect.fork(failover.get("a")))
        yield* TestClock.adjust("1 second")
        for (const [i, index] of leaving.entries()) {
          yield* Fiber.interrupt(fibers[index]!)
          const everyoneLeft = i === waiters - 1
          assert.strictEqual(yield* Ref.get(upstream.interrupted), everyoneLeft ? 1 : 0, `after ${i + 1} left`)
        }
        yield* TestClock.adjust("4 seconds")
        assert.strictEqual(yield* Ref.get(upstream.calls), 1)
        const stayed = fibers.filter((_, index) => !leaving.includes(index))
        for (const fiber of stayed) assert.strictEqual(yield* Fiber.join(fiber), "late:a")
      }).pipe(Effect.scoped, memory),
    { fastCheck: { numRuns: 40 } }
  )
})
