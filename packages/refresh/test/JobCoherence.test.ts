/**
 * A fetch that `set`, `delete` or `clear` overtook — in this process, or in another one heard on
 * the `InvalidationBus` — returns its value to its callers but does not write it over theirs.
 */
import { assert, describe, it } from "@effect/vitest"
import { CacheStore, InvalidationBus } from "@stalewise/core"
import { Job, RefreshQueue } from "@stalewise/refresh"
import { Context, Effect, Fiber, Layer, Option, TestClock } from "effect"
import { makeUpstream, settle, unique } from "./utils.js"

const setup = (name: string, fetch: (id: string) => Effect.Effect<string, unknown>) =>
  Effect.gen(function*() {
    const store = yield* CacheStore.makeMemory()
    const bus = yield* InvalidationBus.makeLocal
    const shared = Context.make(CacheStore.CacheStore, store).pipe(Context.add(InvalidationBus.InvalidationBus, bus))
    const start = Effect.flatMap(
      Layer.build(RefreshQueue.layerFibers()),
      (queue) =>
        Job.make({ name, fetch, lifetime: "1 minute", timeToLive: "1 hour" }).pipe(
          Effect.provide(Context.merge(shared, queue))
        )
    )
    return { a: yield* start, b: yield* start }
  })

describe("Job: late fetches do not overwrite", () => {
  it.scoped("set and delete while a fetch runs: the fetch answers its callers, the store keeps what they did", () =>
    Effect.gen(function*() {
      const upstream = makeUpstream()
      upstream.state.delay = "3 seconds"
      const { a } = yield* setup(unique(), upstream.fetch)
      const reading = yield* Effect.fork(a.get("x"))
      yield* settle
      yield* a.set(["x"], "set meanwhile")
      yield* TestClock.adjust("3 seconds")
      assert.strictEqual(yield* Fiber.join(reading), "x#1")
      assert.strictEqual(Option.getOrThrow(yield* a.peek("x")).value, "set meanwhile")

      const deleting = yield* Effect.fork(a.refresh("x"))
      yield* settle
      yield* a.delete("x")
      yield* TestClock.adjust("3 seconds")
      assert.strictEqual(yield* Fiber.join(deleting), "x#2")
      assert.isTrue(Option.isNone(yield* a.peek("x")), "the delete stands")
    }))

  it.scoped("a set in another process, heard on the bus, overtakes this process's fetch", () =>
    Effect.gen(function*() {
      const upstream = makeUpstream()
      upstream.state.delay = "3 seconds"
      const { a, b } = yield* setup(unique(), upstream.fetch)
      const reading = yield* Effect.fork(b.get("x"))
      yield* settle
      yield* a.set(["x"], "set by a")
      yield* TestClock.adjust("3 seconds")
      assert.strictEqual(yield* Fiber.join(reading), "x#1")
      assert.strictEqual(Option.getOrThrow(yield* b.peek("x")).value, "set by a")
    }))
})
