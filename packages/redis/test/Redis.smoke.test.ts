import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as RedisTest from "./utils/RedisTest.js"

describe.skipIf(!RedisTest.available)("redis-server (smoke, through ioredis)", () => {
  it.live("SET with PX then GET returns the value, with a positive PTTL", () =>
    Effect.gen(function*() {
      const { client, key } = yield* RedisTest.RedisTest
      const greeting = key("greeting")
      assert.strictEqual(yield* Effect.promise(() => client.set(greeting, "hello", "PX", 60_000)), "OK")
      assert.strictEqual(yield* Effect.promise(() => client.get(greeting)), "hello")
      const ttl = yield* Effect.promise(() => client.pttl(greeting))
      assert.isAbove(ttl, 0)
      assert.isAtMost(ttl, 60_000)
      assert.strictEqual(yield* Effect.promise(() => client.pttl(key("absent"))), -2)
    }).pipe(Effect.provide(RedisTest.layer)))

  it.live("SET NX succeeds only while the key is absent", () =>
    Effect.gen(function*() {
      const { client, key } = yield* RedisTest.RedisTest
      const lock = key("lock")
      assert.strictEqual(yield* Effect.promise(() => client.set(lock, "first", "PX", 60_000, "NX")), "OK")
      assert.isNull(yield* Effect.promise(() => client.set(lock, "second", "PX", 60_000, "NX")))
      assert.strictEqual(yield* Effect.promise(() => client.get(lock)), "first")
    }).pipe(Effect.provide(RedisTest.layer)))

  it.live("each test gets its own connection and key prefix", () =>
    Effect.gen(function*() {
      const a = yield* Effect.provide(RedisTest.RedisTest, RedisTest.layer)
      const b = yield* Effect.provide(RedisTest.RedisTest, RedisTest.layer)
      assert.notStrictEqual(a.client, b.client)
      assert.notStrictEqual(a.prefix, b.prefix)
      assert.notStrictEqual(a.key("k"), b.key("k"))
    }))

  it.live("the server is the throwaway one: loopback only, no persistence", () =>
    Effect.gen(function*() {
      const { client } = yield* RedisTest.RedisTest
      const config = (name: string) => Effect.promise(() => client.config("GET", name) as Promise<Array<string>>)
      assert.deepStrictEqual(yield* config("bind"), ["bind", RedisTest.host])
      assert.strictEqual(RedisTest.host, "127.0.0.1")
      assert.deepStrictEqual(yield* config("port"), ["port", String(RedisTest.port)])
      assert.deepStrictEqual(yield* config("protected-mode"), ["protected-mode", "yes"])
      assert.deepStrictEqual(yield* config("save"), ["save", ""])
      assert.deepStrictEqual(yield* config("appendonly"), ["appendonly", "no"])
      assert.strictEqual(client.stream.remoteAddress, "127.0.0.1")
    }).pipe(Effect.provide(RedisTest.layer)))
})
