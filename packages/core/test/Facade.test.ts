import { assert, describe, it } from "@effect/vitest"
import { CacheControl, CacheFirst, CacheKey, CacheStore, Facade, Failover, ScopeGuard } from "@stalewise/core"
import {
  Cause,
  Context,
  Data,
  Deferred,
  Duration,
  Effect,
  Exit,
  Layer,
  ManagedRuntime,
  TestClock,
  TestContext
} from "effect"

class Boom extends Data.TaggedError("Boom")<{ readonly id: string }> {}

/** A runtime on the TestClock that counts the reads reaching it. */
const counted = <R, E>(layer: Layer.Layer<R, E>) => {
  const runtime = ManagedRuntime.make(Layer.provideMerge(layer, TestContext.TestContext))
  const seen = { promises: 0 }
  const counting = new Proxy(runtime, {
    get(target, property, receiver) {
      if (property === "runPromiseExit") seen.promises++
      return Reflect.get(target, property, receiver)
    }
  })
  return { runtime, counting, seen }
}

/** An upstream that counts its calls and may be held on a gate. */
const makeUpstream = () => {
  const calls: Array<string> = []
  const state: { gate: Deferred.Deferred<void> | undefined } = { gate: undefined }
  const lookup = (id: string) =>
    Effect.gen(function*() {
      calls.push(id)
      if (state.gate !== undefined) yield* Deferred.await(state.gate)
      if (id.startsWith("boom")) return yield* new Boom({ id })
      return `${id}#${calls.length}`
    })
  return { calls, state, lookup }
}

type Countries = CacheFirst.CacheFirst<[id: string], string, Boom>
const Countries = Context.GenericTag<Countries>("test/facade/Countries")

const cacheFirst = (capacity?: number) => {
  const upstream = makeUpstream()
  const layer = Layer.scoped(
    Countries,
    CacheFirst.make({ name: "countries", lookup: upstream.lookup, timeToLive: "10 minutes", capacity })
  )
  const t = counted(layer)
  return { ...t, upstream, get: Facade.make(t.counting, Countries) }
}

describe("Facade over a CacheFirst", () => {
  it("a hit held in process answers without the runtime; a miss goes through it", async () => {
    const t = cacheFirst()
    try {
      const miss = await t.get.withOutcome("eu")
      assert.deepStrictEqual([miss.status, miss.value], ["miss", "eu#1"])
      const promises = t.seen.promises
      assert.strictEqual(await t.get("eu"), "eu#1")
      const hit = await t.get.withOutcome("eu")
      assert.deepStrictEqual([hit.status, hit.value, hit.fetchedSynchronously], ["hit", "eu#1", false])
      assert.strictEqual(t.seen.promises, promises)

      // the synchronous read derives the key the Effect path derives: a value `set` there is a hit here
      const countries = await t.runtime.runPromise(Countries)
      await t.runtime.runPromise(countries.set(["us"], "set"))
      const fast = (countries as Facade.Readable<[string], string, unknown>)[Facade.FastPathId]!
      const answer: Facade.Answer<string> = { value: undefined }
      assert.isTrue(fast(["us"], false, () => assert.fail("nothing to fork"), answer))
      assert.strictEqual(Facade.take(answer), "set")
      assert.isUndefined(answer.value)
      assert.strictEqual(await t.get("us"), "set")
      assert.strictEqual(t.seen.promises, promises)
      assert.deepStrictEqual(t.upstream.calls, ["eu"])
    } finally {
      await t.runtime.dispose()
    }
  })

  it("an expired or invalidated value is not served synchronously", async () => {
    const t = cacheFirst()
    try {
      await t.get("eu")
      await t.runtime.runPromise(TestClock.adjust(Duration.minutes(10)))
      const expired = await t.get.withOutcome("eu")
      assert.deepStrictEqual([expired.status, expired.value], ["miss", "eu#2"])

      const countries = await t.runtime.runPromise(Countries)
      await t.runtime.runPromise(countries.invalidate("eu"))
      const fast = (countries as Facade.Readable<[string], string, unknown>)[Facade.FastPathId]!
      const answer: Facade.Answer<string> = { value: undefined }
      assert.isFalse(fast(["eu"], false, () => undefined, answer))
      assert.isUndefined(answer.value)
      const reloaded = await t.get.withOutcome("eu")
      assert.deepStrictEqual([reloaded.status, reloaded.value], ["miss", "eu#3"])
    } finally {
      await t.runtime.dispose()
    }
  })

  it("a hit answered without the runtime, or in a fiber, makes its key the most recently used", async () => {
    const t = cacheFirst(2)
    try {
      const countries = await t.runtime.runPromise(Countries)
      await t.get("a")
      await t.get("b")
      // read twice: the first read's key is remembered, the second answers without the runtime
      await t.get("a")
      const promises = t.seen.promises
      assert.strictEqual(await t.get("a"), "a#1")
      assert.strictEqual(t.seen.promises, promises)
      // "c" evicts the least recently used key: "b", not "a"
      await t.get("c")
      assert.strictEqual((await t.get.withOutcome("a")).status, "hit")
      assert.strictEqual((await t.get.withOutcome("b")).status, "miss")
      assert.deepStrictEqual(t.upstream.calls, ["a", "b", "c", "b"])

      // held now: "a", then "b"; in a fiber, a hit on "a" makes "b" the one "d" evicts
      assert.strictEqual(await t.runtime.runPromise(countries.get("a")), "a#1")
      await t.get("d")
      assert.strictEqual((await t.get.withOutcome("a")).status, "hit")
      assert.strictEqual((await t.get.withOutcome("b")).status, "miss")
      assert.deepStrictEqual(t.upstream.calls, ["a", "b", "c", "b", "d", "b"])
    } finally {
      await t.runtime.dispose()
    }
  })

  it("10 concurrent calls on a cold key make one upstream call", async () => {
    const t = cacheFirst()
    try {
      t.upstream.state.gate = await t.runtime.runPromise(Deferred.make<void>())
      const reads = Array.from({ length: 10 }, () => t.get.withOutcome("eu"))
      await t.runtime.runPromise(Effect.repeatN(Effect.yieldNow(), 20))
      await t.runtime.runPromise(Deferred.succeed(t.upstream.state.gate, undefined))
      const outcomes = await Promise.all(reads)
      assert.deepStrictEqual(t.upstream.calls, ["eu"])
      assert.deepStrictEqual(new Set(outcomes.map((o) => `${o.status} ${o.value}`)), new Set(["miss eu#1"]))
    } finally {
      await t.runtime.dispose()
    }
  })

  it("rejects with CacheKeyError and with the upstream's error; rejects after disposal", async () => {
    const t = cacheFirst()
    const keyError = await t.get(Symbol("no key") as unknown as string).then(
      () => assert.fail("resolved"),
      (error: unknown) => error
    )
    assert.instanceOf(keyError, CacheKey.CacheKeyError)
    const upstreamError = await t.get("boom").then(() => assert.fail("resolved"), (error: unknown) => error)
    assert.instanceOf(upstreamError, Boom)

    await t.get("eu")
    await t.runtime.dispose()
    await t.get("eu").then(() => assert.fail("resolved"), (error: unknown) => assert.instanceOf(error, Error))
  })
  it("with a key function: the same key as the Effect path, and a key function that throws rejects", async () => {
    const upstream = makeUpstream()
    const layer = Layer.scoped(
      Countries,
      CacheFirst.make({
        name: "countries",
        lookup: upstream.lookup,
        timeToLive: "10 minutes",
        key: (id: string) => {
          if (id === "throws") throw new Error("no id")
          return id.toLowerCase()
        }
      })
    )
    const t = counted(layer)
    try {
      const countries = await t.runtime.runPromise(Countries)
      const get = Facade.make(t.counting, countries)
      await t.runtime.runPromise(countries.set(["EU"], "set"))
      const promises = t.seen.promises
      // "eu" and "EU" share the id "eu": the value set through the Effect path is a hit here
      assert.strictEqual(await get("eu"), "set")
      assert.strictEqual(t.seen.promises, promises)
      const error = await get("throws").then(() => assert.fail("resolved"), (error: unknown) => error)
      assert.instanceOf(error, CacheKey.CacheKeyError)
      assert.strictEqual((error as CacheKey.CacheKeyError).reason, "Unkeyable")
      assert.deepStrictEqual(upstream.calls, [])
    } finally {
      await t.runtime.dispose()
    }
  })
})

describe("Facade over a Failover", () => {
  it("every call asks the upstream through the runtime, and fails over with its outcome", async () => {
    type Rates = Failover.Failover<[id: string], string, Boom>
    const Rates = Context.GenericTag<Rates>("test/facade/Rates")
    let failing = false
    let calls = 0
    const layer = Layer.scoped(
      Rates,
      Failover.make({
        name: "rates",
        timeout: "1 second",
        lookup: (id: string) =>
          Effect.suspend(() => {
            calls++
            return failing ? Effect.fail(new Boom({ id })) : Effect.succeed(`${id}#${calls}`)
          })
      })
    ).pipe(Layer.provide(CacheStore.layerMemory))
    const t = counted(layer)
    try {
      const rates = Facade.make(t.counting, Rates)
      assert.strictEqual(await rates("eur"), "eur#1")
      assert.strictEqual(await rates("eur"), "eur#2")
      failing = true
      const outcome = await rates.withOutcome("eur")
      assert.deepStrictEqual([outcome.status, outcome.reason, outcome.value], ["failover", "error", "eur#2"])
      const error = await rates("usd").then(() => assert.fail("resolved"), (error: unknown) => error)
      assert.instanceOf(error, Boom)
      assert.strictEqual(t.seen.promises, 5)
    } finally {
      await t.runtime.dispose()
    }
  })
})

describe("Facade.fiberGet", () => {
  it("answers from the fast path in the default mode, given no fork; otherwise runs get", () =>
    Effect.runPromise(Effect.gen(function*() {
      const forks: Array<unknown> = []
      const slow: Array<string> = []
      const fast: Facade.FastPath<[id: string], string> = ([id], outcome, fork, answer) => {
        forks.push(fork)
        assert.isFalse(outcome)
        if (!id.startsWith("hot")) return false
        answer.value = `fast ${id}`
        return true
      }
      const get = Facade.fiberGet(fast, (id: string) =>
        Effect.sync(() => {
          slow.push(id)
          return `slow ${id}`
        }))
      assert.strictEqual(yield* get("hot"), "fast hot")
      assert.strictEqual(yield* get("cold"), "slow cold")
      // a mode other than the default never reaches the fast path
      assert.strictEqual(yield* CacheControl.bypass(get("hot")), "slow hot")
      assert.strictEqual(yield* CacheControl.forceRefresh(get("hot")), "slow hot")
      assert.deepStrictEqual(slow, ["cold", "hot", "hot"])
      assert.deepStrictEqual(forks, [undefined, undefined])
      // lazy, as any Effect: nothing is read until it runs, and each run reads again
      const once = get("hot2")
      assert.strictEqual(forks.length, 2)
      yield* once
      yield* once
      assert.strictEqual(forks.length, 4)
    })))

  it("CacheFirst.get in a fiber: hits answer the cached value, bypass still reaches the upstream, a closed scope dies", async () => {
    const t = cacheFirst()
    const countries = await t.runtime.runPromise(Countries)
    try {
      assert.strictEqual(await t.runtime.runPromise(countries.get("eu")), "eu#1")
      assert.deepStrictEqual(await t.runtime.runPromise(Effect.all([countries.get("eu"), countries.get("eu")])), [
        "eu#1",
        "eu#1"
      ])
      assert.strictEqual(await t.runtime.runPromise(CacheControl.bypass(countries.get("eu"))), "eu#2")
      assert.deepStrictEqual(t.upstream.calls, ["eu", "eu"])
    } finally {
      await t.runtime.dispose()
    }
    const exit = await Effect.runPromiseExit(countries.get("eu"))
    assert.isTrue(Exit.isFailure(exit) && Cause.squash(exit.cause) instanceof ScopeGuard.ScopeClosedError)
  })
})
