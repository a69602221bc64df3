// A Failover and a CacheFirst over the memory store, as a user of the published package writes them.
import { CacheFirst, CacheStore, Failover } from "@stalewise/core"
import { Data, Effect } from "effect"
import * as assert from "node:assert/strict"

class RatesDown extends Data.TaggedError("RatesDown")<{}> {}

let up = true
const fetchRate = (currency: string): Effect.Effect<number, RatesDown> =>
  up ? Effect.succeed(currency === "EUR" ? 1.08 : 1) : Effect.fail(new RatesDown())

let calls = 0
const fetchUser = (id: number) => Effect.sync(() => ({ id, calls: ++calls }))

const program = Effect.gen(function*() {
  const rate = yield* Failover.make({ name: "rate", lookup: fetchRate, timeout: "250 millis" })
  assert.equal((yield* rate.getWithOutcome("EUR")).status, "miss")
  up = false
  const fallback = yield* rate.getWithOutcome("EUR")
  assert.deepEqual([fallback.value, fallback.status], [1.08, "failover"])

  const users = yield* CacheFirst.make({ name: "users", lookup: fetchUser, timeToLive: "1 minute" })
  yield* users.get(1)
  assert.deepEqual(yield* users.get(1), { id: 1, calls: 1 })
}).pipe(Effect.scoped, Effect.provide(CacheStore.layerMemory))

await Effect.runPromise(program)
console.log("core: ok")
