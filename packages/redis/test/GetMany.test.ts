/**
 * `getMany` on the Redis stores against a real `redis-server`: one MGET for every key (counted on
 * the server), decoded as `get` does; the tiered store answers what its memory tier holds and
 * asks Redis once for the rest.
 */
import { assert, describe, it } from "@effect/vitest"
import { CacheEntry, CacheStore } from "@stalewise/core"
import { RedisClient, RedisStore } from "@stalewise/redis"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as RedisTest from "./utils/RedisTest.js"

const entry = (value: string) => CacheEntry.make({ value, createdAt: 0, staleAt: 60_000, expiresAt: Infinity })

describe.skipIf(!RedisTest.available)("getMany over Redis", () => {
  RedisTest.assertNoUnhandledRejections()

  it.scopedLive("RedisStore and TieredStore: one MGET for the keys not held in process", () =>
    Effect.gen(function*() {
      const server = yield* RedisTest.privateServer
      const keyPrefix = RedisTest.makePrefix()
      const redis = yield* RedisClient.make({ host: RedisTest.host, port: server.port, ...RedisStore.clientDefaults })
      const stats = Effect.map(
        Effect.orDie(redis.use("info", (client) => client.info("commandstats"))),
        (info) => {
          const calls = (name: string) => Number(new RegExp(`cmdstat_${name}:calls=(\\d+)`).exec(info)?.[1] ?? 0)
          return { get: calls("get"), mget: calls("mget") }
        }
      )
      const store = yield* RedisStore.make({ keyPrefix }).pipe(Effect.provideService(RedisClient.RedisClient, redis))
      for (let i = 0; i < 10; i += 2) yield* store.set(`k${i}`, entry(`v${i}`), Schema.String)
      yield* Effect.orDie(redis.use("set", (client) => client.set(`${keyPrefix}v:k9`, "{corrupt")))

      // a corrupt entry is a miss (and is dropped: a script that runs GET, so it is read apart)
      assert.isTrue(Option.isNone((yield* CacheStore.getMany(store, ["k9"], Schema.String))[0]!))
      const keys = Array.from({ length: 9 }, (_, i) => `k${i}`)
      const before = yield* stats
      const got = yield* CacheStore.getMany(store, keys, Schema.String)
      const after = yield* stats
      assert.deepStrictEqual([after.mget - before.mget, after.get - before.get], [1, 0])
      assert.deepStrictEqual(
        got.map(Option.map((e) => e.value)),
        keys.map((_, i) => i % 2 === 0 ? Option.some(`v${i}`) : Option.none())
      )

      const tiered = yield* RedisTest.tieredInstance({ keyPrefix, port: server.port })
      yield* tiered.get("k0", Schema.String)
      yield* RedisTest.filled(tiered, "k0")
      const beforeTiered = yield* stats
      const viaTiered = yield* CacheStore.getMany(tiered, keys, Schema.String)
      const afterTiered = yield* stats
      assert.deepStrictEqual([afterTiered.mget - beforeTiered.mget, afterTiered.get - beforeTiered.get], [1, 0])
      assert.deepStrictEqual(viaTiered.map(Option.isSome), keys.map((_, i) => i % 2 === 0))
      // all in memory now: no command at all
      const beforeMemory = yield* stats
      yield* CacheStore.getMany(tiered, ["k0", "k2"], Schema.String)
      const afterMemory = yield* stats
      assert.deepStrictEqual([afterMemory.mget - beforeMemory.mget, afterMemory.get - beforeMemory.get], [0, 0])
    }))
})
