import { KeyValueStore } from "@effect/platform"
import { assert, describe, it } from "@effect/vitest"
import { CacheStore, Failover } from "@stalewise/core"
import { Data, Duration, Effect, Exit, Fiber, Layer, Option, Ref, Schema, TestClock } from "effect"

class Boom extends Data.TaggedError("Boom")<{ readonly code: number }> {}

type Behaviour =
  | { readonly _tag: "succeed"; readonly value: string; readonly after?: Duration.DurationInput }
  | { readonly _tag: "fail"; readonly code: number; readonly after?: Duration.DurationInput }
  | { readonly _tag: "die" }
  | { readonly _tag: "interrupt" }

/**
 * A controllable upstream: each call runs the current behaviour (delays run on TestClock) and is
 * counted; `interrupted` counts calls that were interrupted.
 */
const makeUpstream = Effect.gen(function*() {
  const behaviour = yield* Ref.make<Behaviour>({ _tag: "succeed", value: "v1" })
  const calls = yield* Ref.make(0)
  const interrupted = yield* Ref.make(0)
  const lookup = (id: string) =>
    Effect.gen(function*() {
      yield* Ref.update(calls, (n) => n + 1)
      const b = yield* Ref.get(behaviour)
      switch (b._tag) {
        case "succeed":
          if (b.after) yield* Effect.sleep(b.after)
          return `${b.value}:${id}`
        case "fail":
          if (b.after) yield* Effect.sleep(b.after)
          return yield* new Boom({ code: b.code })
        case "die":
          return yield* Effect.dieMessage("upstream defect")
        case "interrupt":
          return yield* Effect.interrupt
      }
    }).pipe(Effect.onInterrupt(() => Ref.update(interrupted, (n) => n + 1)))
  return { behaviour, calls, interrupted, lookup, set: (b: Behaviour) => Ref.set(behaviour, b) }
})

const setup = (options: Partial<Omit<Failover.Options<[string], string, Boom, never>, "lookup">> = {}) =>
  Effect.gen(function*() {
    const upstream = yield* makeUpstream
    const failover = yield* Failover.make({ name: "fn", timeout: "1 second", ...options, lookup: upstream.lookup })
    return { upstream, failover }
  })

const memory = Effect.provide(CacheStore.layerMemory)

const assertBoom = (error: unknown, code: number) => {
  assert.instanceOf(error, Boom)
  assert.strictEqual((error as Boom).code, code)
}

describe("Failover", () => {
  it.scoped("always asks the upstream and stores every success", () =>
    Effect.gen(function*() {
      const { failover, upstream } = yield* setup()
      const first = yield* failover.getWithOutcome("a")
      assert.strictEqual(first.status, "miss")
      assert.strictEqual(first.value, "v1:a")
      yield* upstream.set({ _tag: "succeed", value: "v2" })
      assert.strictEqual(yield* failover.get("a"), "v2:a", "asked again although a value was stored")
      assert.strictEqual(yield* Ref.get(upstream.calls), 2)
      assert.strictEqual(Option.getOrThrow(yield* failover.peek("a")).value, "v2:a")
    }).pipe(memory))

  it.scoped("an upstream failure serves the stored value, with reason error and its age", () =>
    Effect.gen(function*() {
      const { failover, upstream } = yield* setup()
      yield* failover.get("a")
      yield* TestClock.adjust("30 seconds")
      yield* upstream.set({ _tag: "fail", code: 503 })
      const outcome = yield* failover.getWithOutcome("a")
      assert.strictEqual(outcome.status, "failover")
      assert.strictEqual(outcome.reason, "error")
      assert.strictEqual(outcome.value, "v1:a")
      assert.isTrue(Duration.equals(outcome.age, Duration.seconds(30)))
      assert.isTrue(outcome.fetchedSynchronously)
    }).pipe(memory))

  it.scoped("without a stored value the upstream's error reaches the caller unchanged", () =>
    Effect.gen(function*() {
      const { failover, upstream } = yield* setup()
      yield* upstream.set({ _tag: "fail", code: 500 })
      const error = yield* Effect.flip(failover.get("a"))
      assertBoom(error, 500)
    }).pipe(memory))

  it.scoped("errors are never stored", () =>
    Effect.gen(function*() {
      const { failover, upstream } = yield* setup()
      yield* failover.get("a")
      yield* upstream.set({ _tag: "fail", code: 500 })
      yield* failover.get("a")
      yield* Effect.flip(failover.get("b"))
      assert.strictEqual(Option.getOrThrow(yield* failover.peek("a")).value, "v1:a")
      assert.isTrue(Option.isNone(yield* failover.peek("b")))
    }).pipe(memory))

  it.scoped("a reply slower than timeout serves the stored value after exactly timeout", () =>
    Effect.gen(function*() {
      const { failover, upstream } = yield* setup({ timeout: "1 second" })
      yield* failover.get("a")
      yield* upstream.set({ _tag: "succeed", value: "slow", after: "10 seconds" })
      const fiber = yield* Effect.fork(failover.getWithOutcome("a"))
      yield* TestClock.adjust("999 millis")
      assert.isTrue(Option.isNone(yield* Fiber.poll(fiber)), "still waiting at 999 ms")
      yield* TestClock.adjust("1 millis")
      const outcome = yield* Fiber.join(fiber)
      assert.strictEqual(outcome.status, "failover")
      assert.strictEqual(outcome.reason, "timeout")
      assert.strictEqual(outcome.value, "v1:a")
    }).pipe(memory))

  it.scoped("the call that timed out finishes in the background and its success is stored", () =>
    Effect.gen(function*() {
      const { failover, upstream } = yield* setup({ timeout: "1 second" })
      yield* failover.get("a")
      yield* upstream.set({ _tag: "succeed", value: "late", after: "5 seconds" })
      const fiber = yield* Effect.fork(failover.get("a"))
      yield* TestClock.adjust("1 second")
      assert.strictEqual(yield* Fiber.join(fiber), "v1:a")
      yield* TestClock.adjust("4 seconds")
      assert.strictEqual(Option.getOrThrow(yield* failover.peek("a")).value, "late:a")
      assert.strictEqual(yield* Ref.get(upstream.calls), 2)
      assert.strictEqual(yield* Ref.get(upstream.interrupted), 0)
    }).pipe(memory))

  it.scoped("onTimeout interrupt interrupts the late call and stores nothing", () =>
    Effect.gen(function*() {
      const { failover, upstream } = yield* setup({ timeout: "1 second", onTimeout: "interrupt" })
      yield* failover.get("a")
      yield* upstream.set({ _tag: "succeed", value: "late", after: "5 seconds" })
      const fiber = yield* Effect.fork(failover.get("a"))
      yield* TestClock.adjust("1 second")
      assert.strictEqual(yield* Fiber.join(fiber), "v1:a")
      yield* TestClock.adjust("10 seconds")
      assert.strictEqual(yield* Ref.get(upstream.interrupted), 1)
      assert.strictEqual(Option.getOrThrow(yield* failover.peek("a")).value, "v1:a")
    }).pipe(memory))

  it.scoped("while a call is past its deadline, later callers get the stored value at once", () =>
    Effect.gen(function*() {
      const { failover, upstream } = yield* setup({ timeout: "1 second" })
      yield* failover.get("a")
      yield* upstream.set({ _tag: "succeed", value: "late", after: "60 seconds" })
      const first = yield* Effect.fork(failover.get("a"))
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(first)
      // no clock movement: these must not wait another timeout
      const later = yield* Effect.all(Array.from({ length: 10 }, () => failover.getWithOutcome("a")))
      for (const outcome of later) {
        assert.strictEqual(outcome.status, "failover")
        assert.strictEqual(outcome.reason, "timeout")
        assert.isFalse(outcome.fetchedSynchronously)
      }
      assert.strictEqual(yield* Ref.get(upstream.calls), 2, "they joined the overdue call")
    }).pipe(memory))

  it.scoped("one deadline per call: 100 callers of a hung call, joining over 400 ms, are all served at its deadline", () =>
    Effect.gen(function*() {
      const { failover, upstream } = yield* setup({ timeout: "1 second" })
      yield* failover.get("a")
      yield* upstream.set({ _tag: "succeed", value: "late", after: "1 hour" })
      const first = yield* Effect.fork(failover.getWithOutcome("a"))
      const callers = [first]
      // the others join the running call 4 ms apart: each would otherwise wait its own second
      for (let i = 1; i < 100; i++) {
        yield* TestClock.adjust("4 millis")
        callers.push(yield* Effect.fork(failover.getWithOutcome("a")))
      }
      // one timer for the call (the deadline), not one per caller; the hung upstream's sleep is the other
      assert.strictEqual((yield* TestClock.sleeps()).length, 2)
      yield* TestClock.adjust("603 millis") // 999 ms after the call started
      for (const caller of callers) {
        assert.isTrue(Option.isNone(yield* Fiber.poll(caller)), "nobody before the deadline")
      }
      yield* TestClock.adjust("1 millis")
      for (const caller of callers) {
        const outcome = Option.getOrThrow(yield* Fiber.poll(caller))
        assert.isTrue(Exit.isSuccess(outcome), "every caller is answered at the deadline")
        const value = Exit.isSuccess(outcome) ? outcome.value : undefined
        assert.strictEqual(value?.status, "failover")
        assert.strictEqual(value?.reason, "timeout")
        assert.strictEqual(value?.value, "v1:a")
      }
      assert.strictEqual(yield* Ref.get(upstream.calls), 2, "one upstream call for the 100 callers")
      assert.strictEqual(yield* Ref.get(upstream.interrupted), 0, "the call goes on in the background")
    }).pipe(memory))

  it.scoped("a call that answers before its deadline answers every caller; the deadline is its call's alone", () =>
    Effect.gen(function*() {
      const { failover, upstream } = yield* setup({ timeout: "1 second" })
      yield* failover.get("a")
      yield* upstream.set({ _tag: "succeed", value: "v2", after: "500 millis" })
      const callers = yield* Effect.all(Array.from({ length: 10 }, () => Effect.fork(failover.getWithOutcome("a"))))
      yield* TestClock.adjust("500 millis")
      for (const caller of callers) {
        const outcome = yield* Fiber.join(caller)
        assert.strictEqual(outcome.status, "miss")
        assert.strictEqual(outcome.value, "v2:a")
      }
      // a new call at 500 ms has its own deadline (1.5 s), not the ended call's (1 s)
      yield* upstream.set({ _tag: "succeed", value: "slow", after: "1 hour" })
      const next = yield* Effect.fork(failover.getWithOutcome("a"))
      yield* TestClock.adjust("999 millis")
      assert.isTrue(Option.isNone(yield* Fiber.poll(next)), "still waiting at 1,499 ms")
      yield* TestClock.adjust("1 millis")
      const outcome = yield* Fiber.join(next)
      assert.strictEqual(outcome.status, "failover")
      assert.strictEqual(outcome.value, "v2:a")
    }).pipe(memory))

  it.scoped("onTimeout interrupt: the deadline interrupts the call once and serves every waiting caller", () =>
    Effect.gen(function*() {
      const { failover, upstream } = yield* setup({ timeout: "1 second", onTimeout: "interrupt" })
      yield* failover.get("a")
      yield* upstream.set({ _tag: "succeed", value: "late", after: "1 hour" })
      const first = yield* Effect.fork(failover.getWithOutcome("a"))
      yield* TestClock.adjust("500 millis")
      const second = yield* Effect.fork(failover.getWithOutcome("a"))
      yield* TestClock.adjust("500 millis")
      for (const caller of [first, second]) {
        const outcome = yield* Fiber.join(caller)
        assert.strictEqual(outcome.status, "failover")
        assert.strictEqual(outcome.reason, "timeout")
      }
      yield* Effect.yieldNow()
      assert.strictEqual(yield* Ref.get(upstream.interrupted), 1)
    }).pipe(memory))

  it.scoped("fallbackOn decides which failures fall back", () =>
    Effect.gen(function*() {
      const { failover, upstream } = yield* setup({ fallbackOn: (error) => error.code >= 500 })
      yield* failover.get("a")
      yield* upstream.set({ _tag: "fail", code: 404 })
      assertBoom(yield* Effect.flip(failover.get("a")), 404)
      yield* upstream.set({ _tag: "fail", code: 503 })
      assert.strictEqual((yield* failover.getWithOutcome("a")).status, "failover")
    }).pipe(memory))

  it.scoped("defects reach the caller unless fallbackOnDefect", () =>
    Effect.gen(function*() {
      const strict = yield* setup()
      yield* strict.failover.get("a")
      yield* strict.upstream.set({ _tag: "die" })
      const exit = yield* Effect.exit(strict.failover.get("a"))
      assert.isTrue(Exit.isFailure(exit) && Exit.causeOption(exit).pipe(Option.exists((c) => c._tag === "Die")))

      const lenient = yield* setup({ fallbackOnDefect: true })
      yield* lenient.failover.get("a")
      yield* lenient.upstream.set({ _tag: "die" })
      assert.strictEqual((yield* lenient.failover.getWithOutcome("a")).status, "failover")
    }).pipe(memory))

  it.scoped("interruption of the upstream never falls back", () =>
    Effect.gen(function*() {
      const { failover, upstream } = yield* setup()
      yield* failover.get("a")
      yield* upstream.set({ _tag: "interrupt" })
      const exit = yield* Effect.exit(failover.get("a"))
      assert.isTrue(Exit.isInterrupted(exit))
    }).pipe(memory))

  it.scoped("no stored value: waits for the upstream as long as it takes by default", () =>
    Effect.gen(function*() {
      const { failover, upstream } = yield* setup()
      yield* upstream.set({ _tag: "succeed", value: "slow", after: "1 hour" })
      const fiber = yield* Effect.fork(failover.get("a"))
      yield* TestClock.adjust("59 minutes")
      assert.isTrue(Option.isNone(yield* Fiber.poll(fiber)))
      yield* TestClock.adjust("1 minute")
      assert.strictEqual(yield* Fiber.join(fiber), "slow:a")
    }).pipe(memory))

  it.scoped("no stored value: requestTimeout bounds the wait with a typed error", () =>
    Effect.gen(function*() {
      const { failover, upstream } = yield* setup({ requestTimeout: "2 seconds" })
      yield* upstream.set({ _tag: "succeed", value: "slow", after: "1 hour" })
      const fiber = yield* Effect.fork(Effect.flip(failover.get("a")))
      yield* TestClock.adjust("1999 millis")
      assert.isTrue(Option.isNone(yield* Fiber.poll(fiber)))
      yield* TestClock.adjust("1 millis")
      const error = yield* Fiber.join(fiber)
      assert.strictEqual(error._tag, "RequestTimeoutError")
      assert.include(error.message, "2s")
      // nobody waits any more and backgroundTimeout defaults to requestTimeout: the call is cut
      yield* TestClock.adjust("1 hour")
      assert.strictEqual(yield* Ref.get(upstream.interrupted), 1)
      assert.isTrue(Option.isNone(yield* failover.peek("a")))
    }).pipe(memory))

  it.scoped("no stored value: with a longer backgroundTimeout the call that timed out still lands", () =>
    Effect.gen(function*() {
      const { failover, upstream } = yield* setup({ requestTimeout: "2 seconds", backgroundTimeout: "2 hours" })
      yield* upstream.set({ _tag: "succeed", value: "slow", after: "1 hour" })
      const error = yield* Effect.fork(Effect.flip(failover.get("a")))
      yield* TestClock.adjust("2 seconds")
      assert.strictEqual((yield* Fiber.join(error))._tag, "RequestTimeoutError")
      yield* TestClock.adjust("1 hour")
      assert.strictEqual(Option.getOrThrow(yield* failover.peek("a")).value, "slow:a")
      assert.strictEqual(yield* Ref.get(upstream.interrupted), 0)
    }).pipe(memory))

  it.scoped("a non-positive timeout or requestTimeout is a PolicyError", () =>
    Effect.gen(function*() {
      for (const timeout of [0, -1, "0 seconds" as const]) {
        const error = yield* Effect.flip(setup({ timeout }))
        assert.strictEqual(error._tag, "PolicyError")
        assert.strictEqual(error.option, "timeout")
      }
      assert.strictEqual((yield* Effect.flip(setup({ requestTimeout: 0 }))).option, "requestTimeout")
    }).pipe(memory))

  it.scoped("identical concurrent calls share one upstream call; different arguments do not", () =>
    Effect.gen(function*() {
      const { failover, upstream } = yield* setup()
      yield* upstream.set({ _tag: "succeed", value: "v", after: "100 millis" })
      const fiber = yield* Effect.fork(
        Effect.all([
          ...Array.from({ length: 100 }, () => failover.get("a")),
          ...Array.from({ length: 100 }, () => failover.get("b"))
        ], { concurrency: "unbounded" })
      )
      yield* TestClock.adjust("100 millis")
      const results = yield* Fiber.join(fiber)
      assert.strictEqual(results.filter((r) => r === "v:a").length, 100)
      assert.strictEqual(yield* Ref.get(upstream.calls), 2)
    }).pipe(memory))

  it.scoped("singleFlight: false gives every call its own upstream call", () =>
    Effect.gen(function*() {
      const { failover, upstream } = yield* setup({ singleFlight: false })
      yield* upstream.set({ _tag: "succeed", value: "v", after: "100 millis" })
      const fiber = yield* Effect.fork(
        Effect.all(Array.from({ length: 20 }, () => failover.get("a")), { concurrency: "unbounded" })
      )
      yield* TestClock.adjust("100 millis")
      yield* Fiber.join(fiber)
      assert.strictEqual(yield* Ref.get(upstream.calls), 20)
    }).pipe(memory))

  it.scoped("interrupting one caller does not cancel the call others wait on", () =>
    Effect.gen(function*() {
      const { failover, upstream } = yield* setup()
      yield* upstream.set({ _tag: "succeed", value: "v", after: "1 second" })
      const first = yield* Effect.fork(failover.get("a"))
      const second = yield* Effect.fork(failover.get("a"))
      yield* TestClock.adjust("500 millis")
      yield* Fiber.interrupt(first)
      yield* TestClock.adjust("500 millis")
      assert.strictEqual(yield* Fiber.join(second), "v:a")
      assert.strictEqual(yield* Ref.get(upstream.calls), 1)
      assert.strictEqual(yield* Ref.get(upstream.interrupted), 0)
    }).pipe(memory))

  it.scoped("an argument that cannot be keyed fails before the upstream is called", () =>
    Effect.gen(function*() {
      const upstream = yield* makeUpstream
      const failover = yield* Failover.make({
        name: "fn",
        timeout: "1 second",
        lookup: (_options: { readonly onDone: () => void }) => upstream.lookup("x")
      })
      const error = yield* Effect.flip(failover.get({ onDone: () => {} }))
      assert.strictEqual(error._tag, "CacheKeyError")
      assert.strictEqual(yield* Ref.get(upstream.calls), 0)
    }).pipe(memory))

  it.scoped("a store that is down degrades: callers still get upstream answers", () =>
    Effect.gen(function*() {
      const { failover, upstream } = yield* setup()
      assert.strictEqual(yield* failover.get("a"), "v1:a")
      yield* upstream.set({ _tag: "fail", code: 500 })
      assertBoom(yield* Effect.flip(failover.get("a")), 500)
      // an explicit delete the store cannot do is reported, not swallowed
      assert.strictEqual((yield* Effect.flip(failover.invalidate("a")))._tag, "CacheStoreError")
    }).pipe(Effect.provide(Layer.succeed(CacheStore.CacheStore, downStore))))

  it.scoped("values round-trip through the schema of a serialising store", () =>
    Effect.gen(function*() {
      let fail = false
      const failover = yield* Failover.make({
        name: "user",
        timeout: "1 second",
        schema: Schema.Struct({ id: Schema.Number, joined: Schema.Date }),
        lookup: (id: number) => fail ? Effect.fail("down" as const) : Effect.succeed({ id, joined: new Date(0) })
      })
      yield* failover.get(1)
      fail = true
      const outcome = yield* failover.getWithOutcome(1)
      assert.strictEqual(outcome.status, "failover")
      assert.instanceOf(outcome.value.joined, Date)
    }).pipe(Effect.provide(CacheStore.layerKeyValueStore), Effect.provide(KeyValueStore.layerMemory)))

  it.scoped("a custom key function picks what identifies a call", () =>
    Effect.gen(function*() {
      const upstream = yield* makeUpstream
      const failover = yield* Failover.make({
        name: "fn",
        namespace: "users",
        timeout: "1 second",
        key: (id: string, _requestId: number) => id,
        lookup: (id: string, _requestId: number) => upstream.lookup(id)
      })
      yield* failover.get("a", 1)
      yield* upstream.set({ _tag: "fail", code: 500 })
      assert.strictEqual(yield* failover.get("a", 2), "v1:a", "request id is not part of the key")
      const store = yield* CacheStore.CacheStore
      assert.isTrue(Option.isSome(yield* store.get("users:fn:a")))
    }).pipe(memory))
})

// A store whose backend is gone.
const downStore: CacheStore.CacheStore.Service = (() => {
  const down = (method: string) =>
    Effect.fail(new CacheStore.CacheStoreError({ reason: "Unavailable", backend: "down", method }))
  return {
    [CacheStore.TypeId]: CacheStore.TypeId,
    backend: "down",
    get: () => down("get"),
    set: () => down("set"),
    delete: () => down("delete"),
    deletePrefix: () => down("deletePrefix"),
    acquireLease: () => down("acquireLease"),
    releaseLease: () => down("releaseLease")
  }
})()
