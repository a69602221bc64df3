/**
 * The cluster helpers the store relies on, against the shared local cluster: the slot of a key as
 * the servers compute it, and a multi-key read grouped per slot.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Cluster from "../src/internal/cluster.js"
import * as RedisTest from "./utils/RedisTest.js"

describe.skipIf(!RedisTest.clusterAvailable)("Redis Cluster slots", () => {
  it.scopedLive("slotOf agrees with CLUSTER KEYSLOT: hash tags, empty tags, braces in keys, non-ASCII", () =>
    Effect.gen(function*() {
      const client = yield* RedisTest.connectCluster
      const keys = [
        "",
        "foo",
        "p:v:{users:get:1}",
        "p:l:{users:get:1}",
        "{}",
        "a{}b{c}",
        "{user1000}.following",
        "p:v:{users:get:{\"id\":1}}",
        "p:v:{clé:ünï}",
        "{{x}}",
        ...Array.from({ length: 200 }, (_, i) => `k:${i}:${crypto.randomUUID()}`)
      ]
      for (const key of keys) {
        const slot = yield* Effect.promise(() => client.cluster("KEYSLOT", key))
        assert.strictEqual(Cluster.slotOf(key), slot, JSON.stringify(key))
      }
      // a key's entry and its lease share a slot, whatever the key
      for (const key of ["users:get:1", "a}b", "{x}", "ünï"]) {
        assert.strictEqual(Cluster.slotOf(`p:v:{${key}}`), Cluster.slotOf(`p:l:{${key}}`), key)
      }
    }))

  it.scopedLive("mget groups keys by slot (no CROSSSLOT) and answers in the order asked", () =>
    Effect.gen(function*() {
      const client = yield* RedisTest.connectCluster
      const prefix = RedisTest.makePrefix()
      const keys = Array.from({ length: 300 }, (_, i) => `${prefix}v:{k:${i}}`)
      yield* Effect.promise(() => Promise.all(keys.filter((_, i) => i % 3 !== 0).map((key) => client.set(key, key))))
      const error = yield* Effect.flip(Effect.tryPromise(() => client.mget(...keys.slice(0, 10))))
      assert.include(String(error.cause), "CROSSSLOT", "a plain MGET across slots is refused")
      const values = yield* Effect.promise(() => Cluster.mget(client, keys))
      assert.deepStrictEqual(values, keys.map((key, i) => i % 3 === 0 ? null : key))
      assert.deepStrictEqual(yield* Effect.promise(() => Cluster.mget(client, [])), [])
    }))
})
