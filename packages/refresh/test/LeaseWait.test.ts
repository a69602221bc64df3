/**
 * The lease rules of synchronous fetches across "processes" (job instances of one name, each with
 * its own queue and registry, sharing a store and a bus), on the TestClock: the lease holder
 * fetches, the others wait for its value — woken by the bus, or polling without one — within
 * `leaseWait`, and fetch themselves when the holder gives up or the budget runs out.
 */
import { assert, describe, it } from "@effect/vitest"
import { CacheMetrics, CacheStore, InvalidationBus } from "@stalewise/core"
import { Job, RefreshQueue } from "@stalewise/refresh"
import type { Duration } from "effect"
import { Context, Effect, Fiber, Layer, Metric, MetricLabel, Option, TestClock } from "effect"
import { makeUpstream, settle, unique, UpstreamError } from "./utils.js"

const leaseWaits = (job: string, result: "landed" | "took-over" | "budget") =>
  Effect.map(
    Metric.value(
      Metric.taggedWithLabels(CacheMetrics.leaseWaits, [
        MetricLabel.make("result", result),
        MetricLabel.make("strategy", "stale-while-revalidate"),
        MetricLabel.make("job", job)
      ])
    ),
    (state) => state.count
  )

/** Two "processes" of the job `name`: a store and (optionally) a bus shared, queues and registries not. */
const twoProcesses = <E>(
  name: string,
  fetch: (id: string) => Effect.Effect<string, E>,
  options: { readonly bus: boolean; readonly leaseWait?: Duration.DurationInput }
) =>
  Effect.gen(function*() {
    const store = yield* CacheStore.makeMemory()
    const bus = yield* InvalidationBus.makeLocal
    const shared = Context.make(CacheStore.CacheStore, store).pipe(
      options.bus ? Context.add(InvalidationBus.InvalidationBus, bus) : (context) => context
    )
    const start = Effect.flatMap(
      Layer.build(RefreshQueue.layerFibers()),
      (queue) =>
        Job.make({
          name,
          fetch,
          lifetime: "1 minute",
          syncRefreshAfter: "2 minutes",
          timeToLive: "1 hour",
          leaseWait: options.leaseWait
        }).pipe(Effect.provide(Context.merge(shared, queue)))
    )
    return { store, a: yield* start, b: yield* start }
  })

describe("Job: one synchronous fetch per key across processes", () => {
  it.scoped("a cold miss in two processes: the lease holder fetches, the other is woken by the bus", () =>
    Effect.gen(function*() {
      const name = unique()
      const upstream = makeUpstream()
      upstream.state.delay = "3 seconds"
      const { a, b } = yield* twoProcesses(name, upstream.fetch, { bus: true })
      const first = yield* Effect.fork(a.getWithOutcome("x"))
      yield* settle
      const second = yield* Effect.fork(b.getWithOutcome("x"))
      yield* settle
      yield* TestClock.adjust("3 seconds")
      const [fromA, fromB] = [yield* Fiber.join(first), yield* Fiber.join(second)]
      assert.strictEqual(upstream.state.calls, 1)
      assert.deepStrictEqual([fromA.value, fromB.value], ["x#1", "x#1"])
      assert.deepStrictEqual([fromA.status, fromB.status], ["miss", "miss"])
      assert.strictEqual(yield* leaseWaits(name, "landed"), 1)
    }))

  it.scoped("without a bus the waiter polls the store, and still makes no fetch", () =>
    Effect.gen(function*() {
      const name = unique()
      const upstream = makeUpstream()
      upstream.state.delay = "3 seconds"
      const { a, b } = yield* twoProcesses(name, upstream.fetch, { bus: false })
      const first = yield* Effect.fork(a.get("x"))
      yield* settle
      const second = yield* Effect.fork(b.get("x"))
      yield* settle
      yield* TestClock.adjust("3 seconds")
      // the poll backs off to at most 250 ms
      yield* TestClock.adjust("250 millis")
      assert.deepStrictEqual([yield* Fiber.join(first), yield* Fiber.join(second)], ["x#1", "x#1"])
      assert.strictEqual(upstream.state.calls, 1)
    }))

  it.scoped("a refresh past syncRefreshAfter waits for the other process's refresh, not the stale value", () =>
    Effect.gen(function*() {
      const name = unique()
      const upstream = makeUpstream()
      const { a, b } = yield* twoProcesses(name, upstream.fetch, { bus: true })
      yield* a.get("x")
      yield* TestClock.adjust("3 minutes")
      upstream.state.delay = "3 seconds"
      const first = yield* Effect.fork(a.getWithOutcome("x"))
      yield* settle
      const second = yield* Effect.fork(b.getWithOutcome("x"))
      yield* settle
      yield* TestClock.adjust("3 seconds")
      assert.deepStrictEqual([(yield* Fiber.join(first)).value, (yield* Fiber.join(second)).value], ["x#2", "x#2"])
      assert.strictEqual(upstream.state.calls, 2)
    }))

  it.scoped("a holder that never lands: the waiter fetches itself once leaseWait has passed (counted)", () =>
    Effect.gen(function*() {
      const name = unique()
      let calls = 0
      const fetch = (id: string) =>
        Effect.suspend(() => ++calls === 1 ? Effect.never : Effect.succeed(`${id} by the waiter`))
      const { a, b } = yield* twoProcesses(name, fetch, { bus: true, leaseWait: "2 seconds" })
      yield* Effect.fork(a.get("x"))
      yield* settle
      const waiter = yield* Effect.fork(b.get("x"))
      yield* settle
      yield* TestClock.adjust("1999 millis")
      assert.isNull(waiter.unsafePoll(), "still waiting within the budget")
      yield* TestClock.adjust("1 millis")
      assert.strictEqual(yield* Fiber.join(waiter), "x by the waiter")
      assert.strictEqual(yield* leaseWaits(name, "budget"), 1)
    }))

  it.scoped("a holder whose fetch fails gives the lease up: the waiter takes it over at once", () =>
    Effect.gen(function*() {
      const name = unique()
      let calls = 0
      const fetch = (id: string) =>
        Effect.suspend(() =>
          ++calls === 1
            ? Effect.zipRight(Effect.sleep("1 second"), Effect.fail(new UpstreamError({ call: 1 })))
            : Effect.succeed(`${id}#${calls}`)
        )
      const { a, b, store } = yield* twoProcesses(name, fetch, { bus: true })
      const holder = yield* Effect.fork(Effect.flip(a.get("x")))
      yield* settle
      const waiter = yield* Effect.fork(b.get("x"))
      yield* settle
      yield* TestClock.adjust("1 second")
      assert.strictEqual((yield* Fiber.join(holder))._tag, "UpstreamError")
      assert.strictEqual(yield* Fiber.join(waiter), "x#2")
      assert.strictEqual(yield* leaseWaits(name, "took-over"), 1)
      assert.isTrue(Option.isSome(yield* store.get(yield* a.key("x"))))
    }))

  it.effect("leaseWait must be positive and finite", () =>
    Effect.gen(function*() {
      for (const leaseWait of [0, Infinity]) {
        const error = yield* Effect.flip(
          Job.make({ name: unique(), fetch: (id: string) => Effect.succeed(id), leaseWait }).pipe(
            Effect.provide(Layer.merge(CacheStore.layerMemory, RefreshQueue.layerFibers())),
            Effect.scoped
          )
        )
        assert.strictEqual(error._tag, "PolicyError")
      }
    }))
})
