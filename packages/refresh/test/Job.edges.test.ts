import { KeyValueStore } from "@effect/platform"
import { assert, describe, it } from "@effect/vitest"
import { CacheControl, CacheMetrics, CacheStore } from "@stalewise/core"
import { Job, RefreshQueue } from "@stalewise/refresh"
import { Effect, Either, Fiber, Layer, Option, Schema, TestClock } from "effect"
import { FibersEnv, makeUpstream, unique, withEnv } from "./utils.js"

const KeyValueEnv = Layer.merge(
  CacheStore.layerKeyValueStore.pipe(Layer.provide(KeyValueStore.layerMemory)),
  RefreshQueue.layerFibers()
)

describe("Job edges", () => {
  it.effect("a job whose fetch returns void is cached by a serialising store (one fetch, then hits)", () =>
    withEnv(
      KeyValueEnv,
      Effect.gen(function*() {
        let calls = 0
        const job = yield* Job.make({
          name: unique(),
          lifetime: "1 minute",
          schema: Schema.Void,
          fetch: (_: string) => Effect.asVoid(Effect.sync(() => calls++))
        })
        const first = yield* job.getWithOutcome("a")
        const second = yield* job.getWithOutcome("a")
        assert.deepStrictEqual([first.status, second.status], ["miss", "hit"])
        assert.isUndefined(second.value)
        assert.strictEqual(calls, 1)
        // without a schema too
        const plain = yield* Job.make({ name: unique(), lifetime: "1 minute", fetch: (_: string) => Effect.void })
        yield* plain.get("a")
        assert.strictEqual((yield* plain.getWithOutcome("a")).status, "hit")
      })
    ))

  it.effect("empty has its own type: the job's value is A | Empty", () =>
    withEnv(
      FibersEnv,
      Effect.gen(function*() {
        const job = yield* Job.make({
          name: unique(),
          fetchOnMiss: false,
          empty: () => null,
          fetch: (id: number) => Effect.succeed(id * 2)
        })
        const value: number | null = yield* job.get(21)
        assert.isNull(value)
        // @ts-expect-error the value may be null
        const _notNull: number = yield* job.get(21)
        void _notNull
        const cachedFn = yield* Job.cached((id: number) => Effect.succeed(`${id}`), {
          name: unique(),
          fetchOnMiss: false,
          empty: () => Option.none<string>()
        })
        const maybe: string | Option.Option<string> = yield* cachedFn(1)
        assert.isTrue(Option.isOption(maybe))
      })
    ))

  it.effect("fetchOnMiss: false without empty is a type error (and a PolicyError for callers that bypass the types)", () =>
    withEnv(
      FibersEnv,
      Effect.gen(function*() {
        const error = yield* Effect.flip(
          // @ts-expect-error `empty` is required with `fetchOnMiss: false`
          Job.make({ name: unique(), fetchOnMiss: false, fetch: (id: number) => Effect.succeed(id) })
        )
        assert.strictEqual(error.option, "empty")
        const dynamic = Math.random() > 2 // a boolean known only at run time
        yield* Effect.flip(
          // @ts-expect-error `empty` is required whenever fetchOnMiss may be false
          Job.make({ name: unique(), fetchOnMiss: dynamic, fetch: (id: number) => Effect.succeed(id) })
        )
      })
    ))

  it.effect("bypass fetches and stores nothing; forceRefresh fetches now and stores", () => {
    const upstream = makeUpstream()
    return withEnv(
      FibersEnv,
      Effect.gen(function*() {
        const job = yield* Job.make({ name: unique(), lifetime: "1 minute", fetch: upstream.fetch })
        assert.strictEqual(yield* job.get("a"), "a#1")
        assert.strictEqual(yield* CacheControl.bypass(job.get("a")), "a#2")
        assert.strictEqual(Option.getOrThrow(yield* job.peek("a")).value, "a#1", "bypass stored nothing")
        yield* TestClock.adjust("1 second")
        const forced = yield* CacheControl.forceRefresh(job.getWithOutcome("a"))
        assert.deepStrictEqual([forced.status, forced.value], ["miss", "a#3"])
        assert.strictEqual(yield* job.get("a"), "a#3")
        const counts = yield* CacheMetrics.outcomeCounts({ job: job.name })
        assert.strictEqual(counts.bypass, 1)
      })
    )
  })

  it.effect("a failed synchronous refresh never serves the stale value past its timeToLive", () => {
    const upstream = makeUpstream()
    return withEnv(
      FibersEnv,
      Effect.gen(function*() {
        const job = yield* Job.make({
          name: unique(),
          lifetime: "1 minute",
          timeToLive: "2 minutes",
          syncRefreshAfter: "90 seconds",
          fetch: upstream.fetch
        })
        yield* job.get("a")
        // a refresh past syncRefreshAfter that fails before the value expires: stale-if-error
        yield* TestClock.adjust("95 seconds")
        upstream.state.failing = true
        upstream.state.delay = "10 seconds"
        const early = yield* Effect.fork(job.getWithOutcome("a"))
        yield* TestClock.adjust("10 seconds")
        assert.strictEqual((yield* Fiber.join(early)).status, "failover")
        // one that fails after the value expired (at 120 s): the error, not the expired value
        upstream.state.delay = "30 seconds"
        yield* TestClock.adjust("10 seconds") // 115 s: past syncRefreshAfter, back-off over
        const late = yield* Effect.fork(Effect.either(job.getWithOutcome("a")))
        yield* TestClock.adjust("30 seconds")
        const result = yield* Fiber.join(late)
        assert.isTrue(Either.isLeft(result), "the value expired while the refresh ran")
      })
    )
  })
})
