/**
 * Tags on CacheFirst: `invalidateTag` hard makes tagged values misses; soft serves them once
 * more while one reload per key runs.
 */
import { assert, describe, it } from "@effect/vitest"
import { CacheFirst, CacheStore, CacheTags } from "@stalewise/core"
import { Effect, Option, Ref, TestClock } from "effect"

const settle = Effect.repeatN(Effect.yieldNow(), 100)

const makeUpstream = Effect.gen(function*() {
  const calls = yield* Ref.make(0)
  const lookup = (id: string) => Effect.map(Ref.updateAndGet(calls, (c) => c + 1), (n) => `${id}#${n}`)
  return { calls, lookup }
})

describe("CacheFirst: tags", () => {
  it.scoped("hard: tagged values are misses; others and later values are hits", () =>
    Effect.gen(function*() {
      const upstream = yield* makeUpstream
      const cached = yield* CacheFirst.make({
        name: "fn",
        timeToLive: "1 hour",
        tags: ([id]) => [`item:${id}`, "items"],
        lookup: upstream.lookup
      })
      yield* cached.get("a")
      yield* cached.get("b")
      yield* TestClock.adjust("1 second")
      yield* cached.invalidateTag("item:a", { mode: "hard" })
      assert.deepStrictEqual(yield* cached.getWithOutcome("a").pipe(Effect.map((o) => [o.status, o.value])), [
        "miss",
        "a#3"
      ])
      assert.strictEqual((yield* cached.getWithOutcome("b")).status, "hit")
      yield* TestClock.adjust("1 second")
      yield* cached.invalidateTag("items", { mode: "hard" })
      assert.strictEqual((yield* cached.getWithOutcome("a")).status, "miss")
      assert.strictEqual((yield* cached.getWithOutcome("b")).status, "miss")
      assert.strictEqual((yield* cached.getWithOutcome("b")).status, "hit")
    }))

  it.scoped("soft: served once more while one reload replaces it", () =>
    Effect.gen(function*() {
      const upstream = yield* makeUpstream
      const cached = yield* CacheFirst.make({ name: "fn", timeToLive: "1 hour", tags: ["t"], lookup: upstream.lookup })
      yield* cached.get("a")
      yield* TestClock.adjust("1 second")
      yield* cached.invalidateTag("t")
      assert.strictEqual(yield* cached.get("a"), "a#1")
      yield* settle
      assert.strictEqual(yield* Ref.get(upstream.calls), 2)
      assert.strictEqual(yield* cached.get("a"), "a#2")
    }))

  it.scoped("persisted, a shared tag service: another function's invalidation reaches the stored values", () =>
    Effect.gen(function*() {
      const upstream = yield* makeUpstream
      const store = yield* CacheStore.makeMemory()
      const tags = yield* CacheTags.makeWith(store)
      const build = (name: string) =>
        CacheFirst.makePersisted({ name, timeToLive: "1 hour", tags: ["shared"], lookup: upstream.lookup }).pipe(
          Effect.provideService(CacheStore.CacheStore, store),
          Effect.provideService(CacheTags.CacheTags, tags)
        )
      const one = yield* build("one")
      const two = yield* build("two")
      const again = yield* build("one") // another instance of "one": reads the store
      yield* one.get("x")
      yield* two.get("x")
      yield* TestClock.adjust("1 second")
      yield* two.invalidateTag("shared", { mode: "hard" })
      // the stored value is invalidated too: the other instance does not take it from the store
      assert.strictEqual((yield* again.getWithOutcome("x")).status, "miss")
      assert.strictEqual((yield* one.getWithOutcome("x")).status, "miss")
      assert.isTrue(Option.isSome(yield* one.peek("x")))
    }))
})
