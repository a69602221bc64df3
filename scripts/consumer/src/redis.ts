// A Failover over Redis (REDIS_PORT: a redis-server the consumer test started).
import { Failover } from "@stalewise/core"
import { RedisStore } from "@stalewise/redis"
import { Effect, Option } from "effect"
import * as assert from "node:assert/strict"

const port = Number(process.env["REDIS_PORT"])
const fetchRate = (currency: string) => Effect.succeed(currency === "EUR" ? 1.08 : 1)

const program = Effect.gen(function*() {
  const rate = yield* Failover.make({ name: "rate", lookup: fetchRate, timeout: "250 millis" })
  assert.equal(yield* rate.get("EUR"), 1.08)
  // the value is in Redis: a second instance over the same keys would see it
  const stored = yield* rate.peek("EUR")
  assert.equal(Option.getOrThrow(stored).value, 1.08)
}).pipe(
  Effect.scoped,
  Effect.provide(RedisStore.layer({ host: "127.0.0.1", port, keyPrefix: `consumer-${process.pid}:` }))
)

await Effect.runPromise(program)
console.log("redis: ok")
