import { assert, describe, it } from "@effect/vitest"
import { CacheControl, CacheKey, CacheStore, Facade, ScopeGuard } from "@stalewise/core"
import { Job, RefreshQueue } from "@stalewise/refresh"
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
import { outcomes } from "./utils.js"

class Boom extends Data.TaggedError("Boom")<{ readonly id: string }> {}

type Users = Job.Job<[id: string], string, Boom>
const Users = Context.GenericTag<Users>("test/facade/Users")

/**
 * A job over the memory store and a fibers queue, in a runtime on the TestClock; its upstream
 * counts its calls and may be held on a gate.
 */
const setup = (
  options: {
    readonly syncRefreshAfter?: Duration.DurationInput
    readonly gated?: boolean
    readonly tags?: ReadonlyArray<string>
    readonly refreshAhead?: number
    readonly negative?: boolean
  } = {}
) => {
  const calls: Array<string> = []
  let gate: Deferred.Deferred<void> | undefined
  const fetch = (id: string) =>
    Effect.gen(function*() {
      calls.push(id)
      if (gate !== undefined) yield* Deferred.await(gate)
      if (id.startsWith("boom")) return yield* new Boom({ id })
      return `${id}#${calls.length}`
    })
  const UsersLive = Layer.scoped(
    Users,
    Job.make({
      name: "users",
      fetch,
      lifetime: "10 minutes",
      timeToLive: "1 hour",
      ...(options.syncRefreshAfter === undefined ? {} : { syncRefreshAfter: options.syncRefreshAfter }),
      ...(options.tags === undefined ? {} : { tags: options.tags }),
      ...(options.refreshAhead === undefined ? {} : { refreshAhead: options.refreshAhead }),
      ...(options.negative === true ? { negative: { when: () => true, timeToLive: "1 minute" } } : {})
    })
  ).pipe(
    Layer.provide(Layer.merge(CacheStore.layerMemory, RefreshQueue.layerFibers())),
    Layer.provideMerge(TestContext.TestContext)
  )
  const runtime = ManagedRuntime.make(UsersLive)
  // what reached the runtime: every read that was not answered synchronously
  const seen = { promises: 0, forks: 0 }
  const counting = new Proxy(runtime, {
    get(target, property, receiver) {
      if (property === "runPromiseExit") seen.promises++
      if (property === "runFork") seen.forks++
      return Reflect.get(target, property, receiver)
    }
  })
  const getUser = Facade.make(counting, Users)
  return {
    runtime,
    getUser,
    calls,
    seen,
    hold: () => runtime.runPromise(Effect.map(Deferred.make<void>(), (deferred) => gate = deferred)),
    release: () => gate === undefined ? Promise.resolve() : runtime.runPromise(Deferred.succeed(gate, undefined)),
    adjust: (duration: Duration.DurationInput) => runtime.runPromise(TestClock.adjust(duration)),
    // lets what the facade forks (a macrotask later) and the runtime's fibers (the refresh queue)
    // run to their end
    settle: () =>
      new Promise<void>((resolve) => setImmediate(resolve)).then(() =>
        runtime.runPromise(Effect.repeatN(Effect.yieldNow(), 50))
      )
  }
}

describe("Facade over a Job", () => {
  it("a hit held in process answers without the runtime, with the key the Effect path derives", async () => {
    const t = setup()
    try {
      assert.strictEqual(await t.getUser("ada"), "ada#1")
      const before = { ...t.seen }
      assert.strictEqual(await t.getUser("ada"), "ada#1")
      const outcome = await t.getUser.withOutcome("ada")
      assert.deepStrictEqual([outcome.status, outcome.value, outcome.fetchedSynchronously], ["hit", "ada#1", false])
      assert.deepStrictEqual(t.seen, before)
      assert.deepStrictEqual(t.calls, ["ada"])

      // the synchronous read itself: the value, at once, not a promise
      const users = await t.runtime.runPromise(Users)
      const fast = (users as Facade.Readable<[string], string, unknown>)[Facade.FastPathId]!
      const answer: Facade.Answer<string> = { value: undefined }
      assert.isTrue(fast(["ada"], false, () => assert.fail("nothing to fork"), answer))
      assert.strictEqual(Facade.take(answer), "ada#1")
      assert.isFalse(fast(["bob"], false, () => assert.fail("nothing to fork"), answer))
      assert.isUndefined(answer.value)
      // the Effect path reads the entry the facade wrote, under the same key
      const key = await t.runtime.runPromise(users.key("ada"))
      const peeked = await t.runtime.runPromise(users.peek("ada"))
      assert.strictEqual(peeked._tag === "Some" ? peeked.value.value : undefined, "ada#1")
      assert.match(key, /^refresh:users:/)
    } finally {
      await t.runtime.dispose()
    }
  })

  it("tagged entries, refreshes ahead and cached failures answer through the Effect path, by its rules", async () => {
    const tagged = setup({ tags: ["people"] })
    try {
      assert.strictEqual(await tagged.getUser("ada"), "ada#1")
      await tagged.adjust("1 second")
      await tagged.runtime.runPromise(Effect.flatMap(Users, (users) => users.invalidateTag("people", { mode: "hard" })))
      // a hard-invalidated tag: a miss, fetched again — never the old value from the tier
      assert.strictEqual(await tagged.getUser("ada"), "ada#2")
    } finally {
      await tagged.runtime.dispose()
    }
    const ahead = setup({ refreshAhead: 0.5 })
    try {
      await ahead.getUser("ada")
      await ahead.adjust("6 minutes")
      const outcome = await ahead.getUser.withOutcome("ada")
      assert.strictEqual(outcome.status, "hit")
      await ahead.settle()
      assert.deepStrictEqual(ahead.calls, ["ada", "ada"], "the late hit requested its refresh ahead")
    } finally {
      await ahead.runtime.dispose()
    }
    const negative = setup({ negative: true })
    try {
      const first = await negative.getUser("boom").catch((error: unknown) => error)
      const second = await negative.getUser("boom").catch((error: unknown) => error)
      assert.instanceOf(first, Boom)
      assert.instanceOf(second, Boom)
      assert.deepStrictEqual(negative.calls, ["boom"])
    } finally {
      await negative.runtime.dispose()
    }
  })

  it("hits answered synchronously are counted as the Effect path counts them", async () => {
    const t = setup()
    try {
      await t.getUser("ada")
      const before = await t.runtime.runPromise(outcomes("users", "hit"))
      await t.getUser("ada")
      await t.getUser.withOutcome("ada")
      assert.strictEqual(await t.runtime.runPromise(outcomes("users", "hit")), before + 2)
    } finally {
      await t.runtime.dispose()
    }
  })

  it("a stale value is served at once and one refresh is requested for all concurrent callers", async () => {
    const t = setup()
    try {
      await t.getUser("ada")
      await t.adjust(Duration.minutes(11))
      const forks = t.seen.forks
      const promises = t.seen.promises
      const outcomes = await Promise.all(Array.from({ length: 100 }, () => t.getUser.withOutcome("ada")))
      assert.deepStrictEqual(new Set(outcomes.map((o) => `${o.status} ${o.value}`)), new Set(["stale ada#1"]))
      // no read waited on the runtime; the request is forked after the calls returned, once
      assert.strictEqual(t.seen.promises - promises, 0)
      assert.strictEqual(t.seen.forks - forks, 0)
      assert.deepStrictEqual(t.calls, ["ada"])
      await t.settle()
      assert.strictEqual(t.seen.forks - forks, 1)
      assert.deepStrictEqual(t.calls, ["ada", "ada"])
      const refreshed = await t.getUser.withOutcome("ada")
      assert.deepStrictEqual([refreshed.status, refreshed.value], ["hit", "ada#2"])
      await t.settle()
      assert.strictEqual(t.calls.length, 2)
    } finally {
      await t.runtime.dispose()
    }
  })

  it("a stale read past syncRefreshAfter refreshes through the runtime, as the Effect path does", async () => {
    const t = setup({ syncRefreshAfter: "30 minutes" })
    try {
      await t.getUser("ada")
      await t.adjust(Duration.minutes(31))
      const promises = t.seen.promises
      const outcome = await t.getUser.withOutcome("ada")
      assert.deepStrictEqual([outcome.status, outcome.value], ["miss", "ada#2"])
      assert.strictEqual(t.seen.promises - promises, 1)
    } finally {
      await t.runtime.dispose()
    }
  })

  it("concurrent misses of a cold key go through the runtime and make one upstream call", async () => {
    const t = setup()
    try {
      await t.hold()
      const reads = Array.from({ length: 10 }, () => t.getUser.withOutcome("ada"))
      await t.settle()
      await t.release()
      const outcomes = await Promise.all(reads)
      assert.deepStrictEqual(t.calls, ["ada"])
      assert.deepStrictEqual(new Set(outcomes.map((o) => `${o.status} ${o.value}`)), new Set(["miss ada#1"]))
    } finally {
      await t.runtime.dispose()
    }
  })

  it("rejects with the typed error: CacheKeyError for an unkeyable argument, the upstream's own error", async () => {
    const t = setup()
    try {
      const unkeyable = t.getUser(Symbol("no key") as unknown as string)
      const keyError = await unkeyable.then(() => assert.fail("resolved"), (error: unknown) => error)
      assert.instanceOf(keyError, CacheKey.CacheKeyError)

      const upstreamError = await t.getUser("boom").then(() => assert.fail("resolved"), (error: unknown) => error)
      assert.instanceOf(upstreamError, Boom)
      assert.strictEqual((upstreamError as Boom).id, "boom")
    } finally {
      await t.runtime.dispose()
    }
  })

  it("after the runtime is disposed, every call rejects, a hit held in process too", async () => {
    const t = setup()
    await t.getUser("ada")
    await t.runtime.dispose()
    const error = await t.getUser("ada").then(() => assert.fail("resolved"), (error: unknown) => error)
    assert.instanceOf(error, Error)
    await t.getUser.withOutcome("bob").then(() => assert.fail("resolved"), () => undefined)
  })

  it("over a copy of the memory store (a wrapper), every read goes through the wrapper's get", async () => {
    let reads = 0
    const WrappedStore = Layer.effect(
      CacheStore.CacheStore,
      Effect.map(CacheStore.makeMemory(), (store): CacheStore.CacheStore.Service => ({
        ...store,
        get: (key, schema) => {
          reads++
          return store.get(key, schema)
        }
      }))
    ).pipe(Layer.orDie)
    const runtime = ManagedRuntime.make(
      Layer.scoped(
        Users,
        Job.make({
          name: "wrapped",
          fetch: (id: string): Effect.Effect<string, Boom> => Effect.succeed(id),
          lifetime: "1 hour"
        })
      )
        .pipe(Layer.provide(Layer.merge(WrappedStore, RefreshQueue.layerFibers())))
    )
    try {
      const getUser = Facade.make(runtime, Users)
      await getUser("ada")
      const before = reads
      assert.deepStrictEqual((await getUser.withOutcome("ada")).status, "hit")
      assert.strictEqual(reads, before + 1)
    } finally {
      await runtime.dispose()
    }
  })

  it("a strategy given as it is, over a runtime already built", async () => {
    const t = setup()
    try {
      const users = await t.runtime.runPromise(Users)
      const direct = Facade.make(t.runtime, users)
      assert.strictEqual(await direct("ada"), "ada#1")
      assert.strictEqual(await t.getUser("ada"), "ada#1")
    } finally {
      await t.runtime.dispose()
    }
  })
})

describe("Job.get in a fiber (Facade.fiberGet over the memory store)", () => {
  it("a hit answers from the in-process tier with the Effect path's accounting", async () => {
    const t = setup()
    try {
      const users = await t.runtime.runPromise(Users)
      assert.strictEqual(await t.runtime.runPromise(users.get("ada")), "ada#1")
      const before = await t.runtime.runPromise(outcomes("users", "hit"))
      const values = await t.runtime.runPromise(Effect.all(Array.from({ length: 5 }, () => users.get("ada"))))
      assert.deepStrictEqual(values, Array(5).fill("ada#1"))
      assert.strictEqual(await t.runtime.runPromise(outcomes("users", "hit")), before + 5)
      assert.deepStrictEqual(t.calls, ["ada"])
    } finally {
      await t.runtime.dispose()
    }
  })

  it("CacheControl modes still apply: bypass and forceRefresh reach the upstream for a cached key", async () => {
    const t = setup()
    try {
      const users = await t.runtime.runPromise(Users)
      await t.runtime.runPromise(users.get("ada"))
      assert.strictEqual(await t.runtime.runPromise(CacheControl.bypass(users.get("ada"))), "ada#2")
      assert.strictEqual(await t.runtime.runPromise(CacheControl.forceRefresh(users.get("ada"))), "ada#3")
      assert.strictEqual(await t.runtime.runPromise(users.get("ada")), "ada#3")
      assert.deepStrictEqual(t.calls, ["ada", "ada", "ada"])
    } finally {
      await t.runtime.dispose()
    }
  })

  it("100 concurrent stale reads in fibers are served stale and request one refresh", async () => {
    const t = setup()
    try {
      const users = await t.runtime.runPromise(Users)
      await t.runtime.runPromise(users.get("ada"))
      await t.adjust(Duration.minutes(11))
      const values = await t.runtime.runPromise(
        Effect.all(Array.from({ length: 100 }, () => users.get("ada")), { concurrency: "unbounded" })
      )
      assert.deepStrictEqual(new Set(values), new Set(["ada#1"]))
      await t.settle()
      assert.deepStrictEqual(t.calls, ["ada", "ada"])
      assert.strictEqual(await t.runtime.runPromise(users.get("ada")), "ada#2")
    } finally {
      await t.runtime.dispose()
    }
  })

  it("after its scope closed, a hit held in process dies with ScopeClosedError", async () => {
    const t = setup()
    const users = await t.runtime.runPromise(Users)
    await t.runtime.runPromise(users.get("ada"))
    await t.runtime.dispose()
    const exit = await Effect.runPromiseExit(users.get("ada"))
    assert.isTrue(Exit.isFailure(exit))
    assert.instanceOf(Cause.squash((exit as Exit.Failure<unknown, unknown>).cause), ScopeGuard.ScopeClosedError)
  })
})
