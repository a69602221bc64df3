// The testing kit outside vitest: a chaos store and a controllable upstream around a Failover
// (deep imports: the barrel also holds the conformance suite, which needs the vitest runner).
import { CacheStore, Failover } from "@stalewise/core"
import * as ChaosStore from "@stalewise/testing/ChaosStore"
import * as TestUpstream from "@stalewise/testing/TestUpstream"
import { Data, Effect, Layer } from "effect"
import * as assert from "node:assert/strict"

class Down extends Data.TaggedError("Down")<{}> {}

const program = Effect.gen(function*() {
  const upstream = yield* TestUpstream.make<[currency: string], number, Down>(() => 1.08)
  const rates = yield* Failover.make({ name: "rate", lookup: upstream.lookup, timeout: "1 second" })
  assert.equal(yield* rates.get("EUR"), 1.08)
  yield* upstream.fail(new Down())
  assert.equal((yield* rates.getWithOutcome("EUR")).status, "failover")
  const chaos = yield* ChaosStore.ChaosStore
  yield* chaos.configure({ failureRate: 1 })
  assert.equal((yield* Effect.flip(rates.get("EUR")))._tag, "Down") // store down, upstream down
  assert.equal(yield* upstream.calls, 3)
}).pipe(Effect.scoped, Effect.provide(ChaosStore.layer({ seed: 1 }).pipe(Layer.provide(CacheStore.layerMemory))))

await Effect.runPromise(program)
console.log("testing: ok")
