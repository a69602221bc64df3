// A stale-while-revalidate Job over the memory store, driven by TestClock.
import { CacheStore } from "@stalewise/core"
import { Job, RefreshQueue } from "@stalewise/refresh"
import { Effect, Fiber, Layer, TestClock, TestContext } from "effect"
import * as assert from "node:assert/strict"

let version = 0
const fetchTweets = (user: string) => Effect.sync(() => [`${user}: hello ${++version}`])

const program = Effect.gen(function*() {
  const tweets = yield* Job.make({ name: "tweets", fetch: fetchTweets, lifetime: "20 minutes", timeToLive: "1 day" })
  assert.equal((yield* tweets.getWithOutcome("ada")).status, "miss")
  assert.equal((yield* tweets.getWithOutcome("ada")).status, "hit")
  yield* TestClock.adjust("30 minutes")
  const stale = yield* tweets.getWithOutcome("ada")
  assert.deepEqual([stale.status, stale.value], ["stale", ["ada: hello 1"]])
  // the background refresh replaces the value
  const fresh = yield* tweets.getWithOutcome("ada").pipe(
    Effect.repeat({ until: (outcome) => outcome.status === "hit", times: 100 }),
    Effect.fork
  )
  yield* Fiber.join(fresh)
  assert.deepEqual((yield* tweets.getWithOutcome("ada")).value, ["ada: hello 2"])
}).pipe(
  Effect.scoped,
  Effect.provide(Layer.merge(CacheStore.layerMemory, RefreshQueue.layerFibers())),
  Effect.provide(TestContext.TestContext)
)

await Effect.runPromise(program)
console.log("refresh: ok")
