import { assert, describe, it } from "@effect/vitest"
import { CacheEntry, CacheStore, EntryCodec } from "@stalewise/core"
import { RedisClient, RedisStore, TieredStore } from "@stalewise/redis"
import { suite } from "@stalewise/testing/CacheStoreSuite"
import * as Config from "effect/Config"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as TestClock from "effect/TestClock"
import type { Cluster, Redis } from "ioredis"
import * as RedisTest from "./utils/RedisTest.js"

const connection = { host: RedisTest.host, port: RedisTest.port }
// One prefix for this file's stores; the suite gives every test its own namespace under it.
const keyPrefix = RedisTest.makePrefix()

const raw = <A>(f: (client: Redis) => Promise<A>) =>
  Effect.scoped(Effect.flatMap(RedisTest.connect, (client) => Effect.promise(() => f(client))))

const entryAt = <A>(value: A, createdAt: number, lifetime: number, timeToLive: number) =>
  CacheEntry.make({ value, createdAt, staleAt: createdAt + lifetime, expiresAt: createdAt + timeToLive })

// The commands the stores use (docs/redis.md lists them): scripts run GET, SET and DEL.
const leastPrivilege = [
  "-@all",
  "+info",
  "+quit",
  "+get",
  "+mget",
  "+set",
  "+del",
  "+unlink",
  "+scan",
  "+evalsha",
  "+eval",
  "+multi",
  "+exec",
  "+publish",
  "+subscribe"
]

const build = (options: RedisStore.LayerOptions) =>
  Effect.map(Layer.build(RedisStore.layer(options)), Context.get(CacheStore.CacheStore))

for (const topology of RedisTest.topologies) {
  // the connection and raw access to this topology; on a cluster a key is a hash tag
  const connection = topology.connection
  const cluster = topology.name === "cluster"
  const raw = <A>(f: (client: Redis | Cluster) => Promise<A>) =>
    Effect.scoped(
      Effect.flatMap(
        cluster ? RedisTest.connectCluster : RedisTest.connect,
        (client: Redis | Cluster) => Effect.promise(() => f(client))
      )
    )
  const entryKey = (prefix: string, key: string) => cluster ? `${prefix}v:{${key}}` : `${prefix}v:${key}`
  const leaseKey = (prefix: string, key: string) => cluster ? `${prefix}l:{${key}}` : `${prefix}l:${key}`
  // What a corrupted entry looks like to the store: bytes that are not an entry envelope.
  const corrupt = (key: string) => raw((client) => client.set(entryKey(keyPrefix, key), "{not json"))
  // every node's script cache, as after a restart
  const flushScripts = raw((client) =>
    Promise.all(("nodes" in client ? client.nodes("master") : [client]).map((node) => node.script("FLUSH")))
  )

  describe.skipIf(!topology.available)(`RedisStore (${topology.name})`, () => {
    suite(`redis (${topology.name})`, RedisStore.layer({ ...connection, keyPrefix }), { serializes: true, corrupt })
    suite(
      `redis (${topology.name}, layerFromClient, scanCount 2)`,
      RedisStore.layerFromClient({ keyPrefix, scanCount: 2 }).pipe(
        Layer.provide(RedisClient.layer({ ...connection, ...RedisStore.clientDefaults }))
      ),
      { serializes: true, corrupt }
    )

    it.scopedLive("writes after upstream calls: sent at once, in order with this instance's later set and delete", () =>
      Effect.gen(function*() {
        const prefix = RedisTest.makePrefix()
        const store = yield* build({ ...connection, keyPrefix: prefix })
        const inRedis = (key: string) => raw((client) => client.get(entryKey(prefix, key)))
        const written = entryAt("written", Date.now(), 60_000, 600_000)
        yield* CacheStore.setOrWarn(store, "ns:fn:1", written, undefined, {})
        yield* CacheStore.setOrWarn(store, "ns:fn:2", entryAt("behind", Date.now(), 60_000, 600_000), undefined, {})
        yield* store.delete("ns:fn:2")
        yield* CacheStore.setOrWarn(store, "ns:fn:3", entryAt("behind", Date.now(), 60_000, 600_000), undefined, {})
        yield* store.set("ns:fn:3", entryAt("ahead", Date.now(), 60_000, 600_000))
        yield* RedisTest.eventually(Effect.map(inRedis("ns:fn:1"), (json) => json !== null), { within: "1 second" })
        yield* Effect.sleep("50 millis")
        assert.isNull(yield* inRedis("ns:fn:2"), "the delete came after the write")
        assert.include(yield* inRedis("ns:fn:3"), "ahead", "the set came after the write")
      }))

    it.scoped(`stores core's envelope at ${entryKey("<keyPrefix>", "<key>")} with a native PX; no PX for never`, () =>
      Effect.gen(function*() {
        const prefix = RedisTest.makePrefix()
        const store = yield* build({ ...connection, keyPrefix: prefix })
        const entry = entryAt({ name: "Ada" }, 0, 1_000, 60_000)
        yield* store.set("ns:fn:1", entry)
        yield* store.set("ns:fn:forever", entryAt("v", 0, 1_000, Infinity))
        const stored = yield* raw((client) => client.get(entryKey(prefix, "ns:fn:1")))
        assert.strictEqual(stored, Either.getOrThrow(EntryCodec.encode(entry, undefined, { backend: "", method: "" })))
        const pttl = yield* raw((client) => client.pttl(entryKey(prefix, "ns:fn:1")))
        assert.isAbove(pttl, 55_000)
        assert.isAtMost(pttl, 60_000)
        assert.strictEqual(yield* raw((client) => client.pttl(entryKey(prefix, "ns:fn:forever"))), -1)
        // 30 s later (TestClock) a new write gets the remaining 30 s, not the whole time-to-live
        yield* TestClock.adjust("30 seconds")
        yield* store.set("ns:fn:1", entry)
        assert.isAtMost(yield* raw((client) => client.pttl(entryKey(prefix, "ns:fn:1"))), 30_000)
      }))

    it.scoped(`a lease is \`token|expiresAt\` at ${leaseKey("<keyPrefix>", "<key>")}, with a PX of its duration`, () =>
      Effect.gen(function*() {
        const prefix = RedisTest.makePrefix()
        const store = yield* build({ ...connection, keyPrefix: prefix })
        yield* TestClock.adjust("5 seconds")
        const lease = Option.getOrThrow(yield* store.acquireLease("ns:fn:1", "20 seconds"))
        assert.strictEqual(lease.expiresAt, 25_000)
        assert.strictEqual(yield* raw((client) => client.get(leaseKey(prefix, "ns:fn:1"))), `${lease.token}|25000`)
        const pttl = yield* raw((client) => client.pttl(leaseKey(prefix, "ns:fn:1")))
        assert.isAbove(pttl, 15_000)
        assert.isAtMost(pttl, 20_000)
        assert.isTrue(yield* store.releaseLease(lease))
        assert.strictEqual(yield* raw((client) => client.exists(leaseKey(prefix, "ns:fn:1"))), 0)
      }))

    it.scoped("deletePrefix matches the prefix literally: glob metacharacters are escaped", () =>
      Effect.gen(function*() {
        const store = yield* build({ ...connection, keyPrefix })
        const ns = RedisTest.makePrefix()
        const keys = ["a*b", "aXb", "a?b", "a[X]b", "aX", "a\\b", "ab", "a]b", "a^b"].map((k) => `${ns}${k}`)
        for (const key of keys) yield* store.set(key, entryAt(key, 0, 1_000, 60_000))
        // unescaped, `a*` would match aXb and aX, `a?` aXb, `a[X]` aXb, and `a\b` (an escaped b) ab
        for (const prefix of ["a*", "a?", "a[X]", "a\\b", "a]", "a^"]) {
          assert.strictEqual(yield* store.deletePrefix(`${ns}${prefix}`), 1, `prefix ${prefix}`)
        }
        for (const key of ["aXb", "aX", "ab"]) assert.isTrue(Option.isSome(yield* store.get(`${ns}${key}`)), key)
        assert.strictEqual(yield* store.deletePrefix(ns), 3)
      }))

    it.scoped("deletePrefix walks many SCAN batches and counts every key once", () =>
      Effect.gen(function*() {
        const store = yield* build({ ...connection, keyPrefix, scanCount: 16 })
        const ns = RedisTest.makePrefix()
        yield* Effect.forEach(
          Array.from({ length: 600 }, (_, i) => i),
          (i) => store.set(`${ns}a:${i}`, entryAt(i, 0, 1_000, 60_000)),
          { concurrency: 50, discard: true }
        )
        yield* store.set(`${ns}b:keep`, entryAt("keep", 0, 1_000, 60_000))
        assert.strictEqual(yield* store.deletePrefix(`${ns}a:`), 600)
        for (const key of [`${ns}a:0`, `${ns}a:599`]) {
          assert.strictEqual(yield* raw((client) => client.exists(entryKey(keyPrefix, key))), 0)
        }
        assert.isTrue(Option.isSome(yield* store.get(`${ns}b:keep`)))
        assert.strictEqual(yield* store.deletePrefix(`${ns}a:`), 0)
      }))

    it.scoped("stores with different key prefixes share nothing, not even with an empty prefix delete", () =>
      Effect.gen(function*() {
        const one = yield* build({ ...connection, keyPrefix: RedisTest.makePrefix() })
        const two = yield* build({ ...connection, keyPrefix: RedisTest.makePrefix() })
        yield* one.set("ns:fn:1", entryAt(1, 0, 1_000, 60_000))
        yield* two.set("ns:fn:1", entryAt(2, 0, 1_000, 60_000))
        assert.isTrue(Option.isSome(yield* one.acquireLease("ns:fn:1", "1 minute")))
        assert.isTrue(Option.isSome(yield* two.acquireLease("ns:fn:1", "1 minute")))
        assert.strictEqual(yield* one.deletePrefix(""), 1)
        assert.strictEqual(Option.getOrThrow(yield* two.get("ns:fn:1")).value, 2)
        // the empty prefix deletes every entry of the store, never its leases
        assert.isTrue(Option.isNone(yield* one.acquireLease("ns:fn:1", "1 minute")))
      }))

    it.scoped("lease scripts survive a script cache flush (as after a restart): EVALSHA falls back to EVAL", () =>
      Effect.gen(function*() {
        const store = yield* build({ ...connection, keyPrefix })
        const ns = RedisTest.makePrefix()
        const first = Option.getOrThrow(yield* store.acquireLease(`${ns}1`, "1 minute"))
        yield* flushScripts
        assert.isTrue(yield* store.releaseLease(first))
        yield* flushScripts
        assert.isTrue(Option.isSome(yield* store.acquireLease(`${ns}1`, "1 minute")))
      }))

    it.scoped("a value its schema cannot decode is a miss and its key is deleted", () =>
      Effect.gen(function*() {
        const store = yield* build({ ...connection, keyPrefix })
        const ns = RedisTest.makePrefix()
        yield* store.set(`${ns}1`, entryAt("text", 0, 1_000, 60_000))
        // a number schema cannot decode "text": a miss, and the key is gone
        assert.isTrue(Option.isNone(yield* store.get(`${ns}1`, Schema.Number)))
        assert.strictEqual(yield* raw((client) => client.exists(entryKey(keyPrefix, `${ns}1`))), 0)
      }))
  })
}

describe.skipIf(!RedisTest.available)("RedisStore (single server: ACL, Config)", () => {
  it.scoped("needs only its key prefix, its channel and a short list of commands (never KEYS)", () =>
    Effect.gen(function*() {
      const prefix = RedisTest.makePrefix()
      const username = `store-${prefix.slice("stalewise-test:".length, -1)}`
      yield* Effect.acquireRelease(
        raw((client) =>
          client.acl(
            "SETUSER",
            username,
            "on",
            ">s3cret",
            "resetchannels",
            `~${prefix}*`,
            `&${prefix}*`,
            ...leastPrivilege
          )
        ),
        () => raw((client) => client.acl("DELUSER", username))
      )
      const options = { ...connection, keyPrefix: prefix, username, password: Redacted.make("s3cret") }
      for (const store of [yield* build(options), yield* buildTiered(options)]) {
        yield* store.set("ns:fn:1", entryAt(1, 0, 1_000, 60_000))
        assert.isTrue(Option.isSome(yield* store.get("ns:fn:1")))
        yield* store.delete("ns:fn:1")
        yield* store.set("ns:fn:2", entryAt(2, 0, 1_000, 60_000))
        assert.strictEqual(yield* store.deletePrefix("ns:"), 1)
        const lease = Option.getOrThrow(yield* store.acquireLease("ns:fn:1", "1 minute"))
        assert.isTrue(yield* store.releaseLease(lease))
      }
      // the user really is limited: KEYS is refused
      const limited = yield* RedisClient.make({ ...connection, username, password: Redacted.make("s3cret") })
      const error = yield* Effect.flip(limited.use("keys", (client) => client.keys(`${prefix}*`)))
      assert.include(error.message, "NOPERM")
    }))
  it.scoped("layerConfig reads the connection (password redacted) and the store options from Config", () =>
    Effect.gen(function*() {
      const prefix = RedisTest.makePrefix()
      const username = `config-${prefix.slice("stalewise-test:".length, -1)}`
      yield* Effect.acquireRelease(
        raw((client) => client.acl("SETUSER", username, "on", ">s3cret", `~${prefix}*`, "+@all")),
        () => raw((client) => client.acl("DELUSER", username))
      )
      const config = ConfigProvider.fromMap(
        new Map([
          ["REDIS_HOST", RedisTest.host],
          ["REDIS_PORT", String(RedisTest.port)],
          ["REDIS_USERNAME", username],
          ["REDIS_PASSWORD", "s3cret"],
          ["CACHE_PREFIX", prefix],
          ["CACHE_SCAN_COUNT", "50"]
        ])
      )
      const layer = RedisStore.layerConfig({
        host: Config.string("REDIS_HOST"),
        port: Config.port("REDIS_PORT"),
        username: Config.string("REDIS_USERNAME"),
        password: Config.redacted("REDIS_PASSWORD"),
        keyPrefix: Config.string("CACHE_PREFIX"),
        scanCount: Config.integer("CACHE_SCAN_COUNT")
      })
      const store = yield* Effect.map(Layer.build(layer), Context.get(CacheStore.CacheStore)).pipe(
        Effect.withConfigProvider(config)
      )
      assert.strictEqual(store.backend, "redis")
      yield* store.set("ns:fn:1", entryAt(1, 0, 1_000, 60_000))
      assert.strictEqual(yield* raw((client) => client.exists(`${prefix}v:ns:fn:1`)), 1)
    }))
  it.scoped("a scanCount that is not a positive integer fails the layer with PolicyError", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(build({ ...connection, scanCount: 0 }))
      assert.strictEqual(error._tag, "PolicyError")
    }))
})

const buildTiered = (options: TieredStore.LayerOptions) =>
  Effect.map(Layer.build(TieredStore.layer(options)), Context.get(CacheStore.CacheStore))
