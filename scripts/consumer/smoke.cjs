// CommonJS callers: require() of the ESM packages (Node >= 20.19 loads ESM through require).
const assert = require("node:assert/strict")
const { CacheStore, Failover } = require("@stalewise/core")
const { Job, RefreshQueue } = require("@stalewise/refresh")
const { CachedService } = require("@stalewise/rpc")
const { RedisStore } = require("@stalewise/redis")
const { Effect, Layer } = require("effect")

assert.equal(typeof CachedService.layer, "function")
assert.equal(typeof RedisStore.layer, "function")

const program = Effect.gen(function*() {
  const rate = yield* Failover.make({ name: "rate", lookup: () => Effect.succeed(1.08), timeout: "250 millis" })
  const tweets = yield* Job.make({ name: "tweets", fetch: (user) => Effect.succeed([user]), lifetime: "1 minute" })
  return [yield* rate.get("EUR"), yield* tweets.get("ada")]
}).pipe(Effect.scoped, Effect.provide(Layer.merge(CacheStore.layerMemory, RefreshQueue.layerFibers())))

Effect.runPromise(program).then((result) => {
  assert.deepEqual(result, [1.08, ["ada"]])
  console.log("require(): ok")
})
