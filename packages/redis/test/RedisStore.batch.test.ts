import { assert, describe, it } from "@effect/vitest"
import { CacheEntry } from "@stalewise/core"
import { RedisClient, RedisStore } from "@stalewise/redis"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as RedisTest from "./utils/RedisTest.js"

const connection = { host: RedisTest.host, port: RedisTest.port }

const entry = (value: string) => {
  const now = Date.now()
  return CacheEntry.make({ value, createdAt: now, staleAt: now + 60_000, expiresAt: now + 120_000 })
}

/** A store over a connection of its own, counting what leaves it: pipelines (with their size) and lone GETs. */
const counted = (options: RedisStore.Options = {}) =>
  Effect.gen(function*() {
    const keyPrefix = RedisTest.makePrefix()
    const redis = yield* RedisClient.make({ ...connection, ...RedisStore.clientDefaults })
    const store = yield* Effect.provideService(
      RedisStore.make({ keyPrefix, ...options }),
      RedisClient.RedisClient,
      redis
    )
    const sent = { pipelines: [] as Array<number>, gets: 0 }
    const client = redis.client
    const pipeline = client.pipeline.bind(client)
    const get = client.get.bind(client)
    Object.assign(client, {
      pipeline: (...args: Parameters<typeof client.pipeline>) => {
        const made = pipeline(...args)
        const exec = made.exec.bind(made)
        return Object.assign(made, {
          exec: (...execArgs: Parameters<typeof made.exec>) => {
            sent.pipelines.push(made.length)
            return exec(...execArgs)
          }
        })
      },
      get: (key: string) => {
        sent.gets++
        return get(key)
      }
    })
    return { store, sent, keyPrefix }
  })

describe.skipIf(!RedisTest.available)("RedisStore: concurrent reads", () => {
  it.scopedLive("reads issued together share one pipeline, each with its own answer", () =>
    Effect.gen(function*() {
      const { sent, store } = yield* counted()
      const present = Array.from({ length: 20 }, (_, i) => `ns:fn:${i}`)
      for (const key of present) yield* store.set(key, entry(`value of ${key}`))
      const keys = [...present, ...Array.from({ length: 10 }, (_, i) => `ns:fn:absent-${i}`)]
      const before = { pipelines: sent.pipelines.length, gets: sent.gets }
      const read = yield* Effect.all(keys.map((key) => store.get<string>(key)), { concurrency: "unbounded" })
      read.forEach((answer, i) => {
        const key = keys[i]!
        if (key.includes("absent")) assert.isTrue(Option.isNone(answer), key)
        else assert.strictEqual(Option.getOrThrow(answer).value, `value of ${key}`)
      })
      assert.deepStrictEqual(sent.pipelines.slice(before.pipelines), [keys.length])
      assert.strictEqual(sent.gets, before.gets)
    }))

  it.scopedLive("a lone read is a plain GET; with batchReads: false every read is", () =>
    Effect.gen(function*() {
      const batching = yield* counted()
      yield* batching.store.set("ns:fn:1", entry("one"))
      assert.strictEqual(Option.getOrThrow(yield* batching.store.get<string>("ns:fn:1")).value, "one")
      assert.deepStrictEqual([batching.sent.pipelines, batching.sent.gets], [[], 1])

      const plain = yield* counted({ batchReads: false })
      yield* Effect.all([plain.store.get("ns:fn:1"), plain.store.get("ns:fn:2"), plain.store.get("ns:fn:3")], {
        concurrency: "unbounded"
      })
      assert.deepStrictEqual([plain.sent.pipelines, plain.sent.gets], [[], 3])
    }))

  it.scopedLive("a read that fails in a batch fails alone: the others get their values", () =>
    Effect.gen(function*() {
      const { keyPrefix, sent, store } = yield* counted()
      yield* store.set("ns:fn:good", entry("good"))
      // not a string at the entry's key: its GET is answered with WRONGTYPE
      const admin = yield* RedisTest.connect
      yield* Effect.promise(() => admin.hset(`${keyPrefix}v:ns:fn:hash`, "field", "value"))
      const [good, bad] = yield* Effect.all(
        [store.get<string>("ns:fn:good"), Effect.either(store.get("ns:fn:hash"))],
        { concurrency: "unbounded" }
      )
      assert.strictEqual(Option.getOrThrow(good).value, "good")
      assert.isTrue(Either.isLeft(bad))
      if (Either.isLeft(bad)) {
        assert.deepStrictEqual([bad.left._tag, bad.left.reason], ["CacheStoreError", "Unavailable"])
      }
      assert.deepStrictEqual(sent.pipelines, [2])
    }))
})
