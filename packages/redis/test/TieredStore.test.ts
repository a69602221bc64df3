import { assert, describe, it } from "@effect/vitest"
import { CacheEntry, EntryCodec } from "@stalewise/core"
import { RedisClient, TieredStore } from "@stalewise/redis"
import { suite } from "@stalewise/testing/CacheStoreSuite"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as TestClock from "effect/TestClock"
import * as RedisTest from "./utils/RedisTest.js"

const connection = { host: RedisTest.host, port: RedisTest.port }

const entryAt = <A>(value: A, createdAt: number, lifetime: number, timeToLive: number) =>
  CacheEntry.make({ value, createdAt, staleAt: createdAt + lifetime, expiresAt: createdAt + timeToLive })

/** One instance: its own connections, as in another process. */
const instance = RedisTest.tieredInstance

const inMemory = (store: TieredStore.TieredStore, key: string) =>
  Effect.map(store.peekMemory(key), Option.map((entry) => entry.value))

const percentile = (sorted: ReadonlyArray<number>, p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!

for (const topology of RedisTest.topologies) {
  const access = RedisTest.rawAccess(topology)
  /** One instance on this topology: its own connections, as in another process. */
  const instance = (options: Parameters<typeof RedisTest.tieredInstance>[0]) =>
    RedisTest.tieredInstance({
      ...options,
      ...("nodes" in topology.connection ? { nodes: topology.connection.nodes } : {})
    })

  // Writes an entry to Redis behind the stores' backs: no invalidation message.
  const writeBehind = (keyPrefix: string, key: string, entry: CacheEntry.CacheEntry<unknown>) =>
    access.run((client) =>
      client.set(
        access.entryKey(keyPrefix, key),
        Either.getOrThrow(EntryCodec.encode(entry, undefined, { backend: "test", method: "set" }))
      )
    )

  // Redis delivers a channel's messages to a subscriber in order: once `store` has dropped a marker
  // published after them, it has handled every earlier message.
  const drained = (store: TieredStore.TieredStore, keyPrefix: string) =>
    Effect.gen(function*() {
      const marker = `marker:${crypto.randomUUID()}`
      yield* writeBehind(keyPrefix, marker, entryAt("m", 0, 60_000, 60_000))
      yield* store.get(marker)
      yield* access.run((client) =>
        client.publish(`${keyPrefix}invalidate`, JSON.stringify({ t: "k", v: marker, o: "test", a: 0 }))
      )
      yield* RedisTest.eventually(Effect.map(store.peekMemory(marker), Option.isNone), { within: "2 seconds" })
    })

  describe.skipIf(!topology.available)(`TieredStore (${topology.name})`, () => {
    suite(
      `tiered (memory in front of redis, ${topology.name})`,
      TieredStore.layer({ ...topology.connection, keyPrefix: RedisTest.makePrefix() }),
      { serializes: false }
    )

    it.scopedLive("a set on one instance removes the other's memory copy (delay measured)", () =>
      Effect.gen(function*() {
        const keyPrefix = RedisTest.makePrefix()
        const a = yield* instance({ keyPrefix })
        const b = yield* instance({ keyPrefix })
        // per set: the write's round trip (until acknowledged), and from the write being issued until
        // b's memory copy is gone
        const acks: Array<number> = []
        const delays: Array<number> = []
        for (let i = 0; i < 100; i++) {
          const key = `ns:fn:${i}`
          yield* a.set(key, entryAt(`v1-${i}`, 0, 60_000, Infinity))
          assert.strictEqual(Option.getOrThrow(yield* b.get(key)).value, `v1-${i}`)
          yield* RedisTest.filled(b, key)
          assert.strictEqual(Option.getOrThrow(yield* inMemory(b, key)), `v1-${i}`, "b keeps a memory copy")
          const issued = performance.now()
          yield* a.set(key, entryAt(`v2-${i}`, 0, 60_000, Infinity))
          const acked = performance.now()
          const after = yield* RedisTest.eventually(Effect.map(inMemory(b, key), Option.isNone), {
            within: "1 second",
            every: 0
          })
          acks.push(acked - issued)
          delays.push(acked - issued + after)
          assert.strictEqual(Option.getOrThrow(yield* b.get(key)).value, `v2-${i}`)
        }
        const sorted = [...delays].sort((x, y) => x - y)
        const sortedAcks = [...acks].sort((x, y) => x - y)
        console.info(
          `[stalewise] invalidation delay over ${sorted.length} sets, write issued on A → copy gone on B (ms): ` +
            `median ${percentile(sorted, 0.5).toFixed(3)}, p95 ${percentile(sorted, 0.95).toFixed(3)}, ` +
            `max ${sorted[sorted.length - 1]!.toFixed(3)}; the write's own round trip: median ` +
            `${percentile(sortedAcks, 0.5).toFixed(3)}, p95 ${percentile(sortedAcks, 0.95).toFixed(3)}`
        )
        assert.isBelow(percentile(sorted, 0.5), 50)
      }))

    it.scopedLive("delete and deletePrefix on one instance drop the other's copies, only those", () =>
      Effect.gen(function*() {
        const keyPrefix = RedisTest.makePrefix()
        const a = yield* instance({ keyPrefix })
        const b = yield* instance({ keyPrefix })
        // On a cluster one writer's messages for different keys leave from different nodes, in no
        // order among them: so b first hears a's message for each key (its copy goes), then fills
        // again, and no late message from these sets can drop a copy below.
        for (const key of ["ns:a:1", "ns:a:2", "ns:b:1", "nsx:a:1"]) {
          yield* writeBehind(keyPrefix, key, entryAt(key, 0, 60_000, Infinity))
          yield* RedisTest.filled(b, key)
          yield* a.set(key, entryAt(key, 0, 60_000, Infinity))
          yield* RedisTest.eventually(Effect.map(b.peekMemory(key), Option.isNone), { within: "2 seconds" })
          yield* RedisTest.filled(b, key)
        }
        yield* a.delete("ns:b:1")
        yield* RedisTest.eventually(Effect.map(b.peekMemory("ns:b:1"), Option.isNone), { within: "1 second" })
        assert.isTrue(Option.isNone(yield* b.get("ns:b:1")))
        assert.strictEqual(yield* a.deletePrefix("ns:a:"), 2)
        yield* RedisTest.eventually(
          Effect.map(
            Effect.all([b.peekMemory("ns:a:1"), b.peekMemory("ns:a:2")]),
            (copies) => copies.every(Option.isNone)
          ),
          { within: "1 second" }
        )
        yield* drained(b, keyPrefix)
        assert.isTrue(Option.isSome(yield* b.peekMemory("nsx:a:1")), "another namespace keeps its copy")
      }))

    it.scopedLive("an instance ignores its own messages: its memory keeps what it just wrote", () =>
      Effect.gen(function*() {
        const keyPrefix = RedisTest.makePrefix()
        const a = yield* instance({ keyPrefix })
        yield* a.set("ns:fn:1", entryAt("mine", 0, 60_000, Infinity))
        yield* drained(a, keyPrefix)
        assert.strictEqual(Option.getOrThrow(yield* inMemory(a, "ns:fn:1")), "mine")
      }))

    it.scoped("memoryTimeToLive bounds how long a copy no message invalidated is served (TestClock)", () =>
      Effect.gen(function*() {
        const keyPrefix = RedisTest.makePrefix()
        const b = yield* instance({ keyPrefix, memoryTimeToLive: "10 seconds" })
        yield* writeBehind(keyPrefix, "ns:fn:1", entryAt("old", 0, 60_000, Infinity))
        assert.strictEqual(Option.getOrThrow(yield* b.get("ns:fn:1")).value, "old")
        yield* writeBehind(keyPrefix, "ns:fn:1", entryAt("new", 0, 60_000, Infinity))
        yield* TestClock.adjust("9999 millis")
        assert.strictEqual(Option.getOrThrow(yield* b.get("ns:fn:1")).value, "old", "served from memory")
        yield* TestClock.adjust("1 millis")
        assert.strictEqual(Option.getOrThrow(yield* b.get("ns:fn:1")).value, "new", "read from Redis again")
        // the memory copy ends with the entry when that comes first
        yield* b.set("ns:fn:2", entryAt("short", 10_000, 1_000, 2_000))
        yield* TestClock.adjust("2 seconds")
        assert.isTrue(Option.isNone(yield* b.get("ns:fn:2")))
      }))

    it.scoped("values read from Redis are decoded with the schema; the memory tier keeps them live", () =>
      Effect.gen(function*() {
        const keyPrefix = RedisTest.makePrefix()
        const a = yield* instance({ keyPrefix })
        const b = yield* instance({ keyPrefix })
        const schema = Schema.Struct({ at: Schema.Date, big: Schema.BigInt })
        yield* a.set("ns:fn:1", entryAt({ at: new Date(0), big: 2n ** 70n }, 0, 60_000, Infinity), schema)
        yield* RedisTest.eventually(
          Effect.zipRight(b.get("ns:fn:1", schema), Effect.map(b.peekMemory("ns:fn:1"), Option.isSome)),
          { within: "2 seconds" }
        )
        const first = Option.getOrThrow(yield* b.get("ns:fn:1", schema)).value
        assert.instanceOf(first.at, Date)
        assert.strictEqual(first.big, 2n ** 70n)
        assert.strictEqual(Option.getOrThrow(yield* b.get("ns:fn:1", schema)).value, first, "from memory: same value")
      }))
  })
}

describe.skipIf(!RedisTest.available)("TieredStore (single server)", () => {
  it.scoped("invalid memory options fail with PolicyError", () =>
    Effect.gen(function*() {
      for (
        const options of [
          { memoryTimeToLive: 0 },
          { memoryTimeToLive: Infinity },
          { memory: { capacity: 0 } },
          { scanCount: -1 }
        ]
      ) {
        const error = yield* Effect.flip(instance(options))
        assert.strictEqual(error._tag, "PolicyError")
      }
    }))

  it.scopedLive("after its subscriber reconnects, an instance empties its memory tier (it may have missed messages)", () =>
    Effect.gen(function*() {
      const server = yield* RedisTest.privateServer
      const keyPrefix = "tiered:"
      const a = yield* instance({ keyPrefix, port: server.port })
      const b = yield* instance({ keyPrefix, port: server.port })
      const admin = yield* RedisClient.make({ ...connection, port: server.port })
      yield* a.set("ns:fn:1", entryAt("v1", 0, 60_000, Infinity))
      assert.strictEqual(Option.getOrThrow(yield* b.get("ns:fn:1")).value, "v1")
      yield* RedisTest.filled(b, "ns:fn:1")
      // a change b is never told about, then b's subscription is cut
      yield* admin.use("set", (client) =>
        client.set(
          `${keyPrefix}v:ns:fn:1`,
          Either.getOrThrow(
            EntryCodec.encode(entryAt("v2", 0, 60_000, Infinity), undefined, { backend: "", method: "" })
          )
        ))
      assert.strictEqual(Option.getOrThrow(yield* b.get("ns:fn:1")).value, "v1", "b's stale memory copy")
      yield* admin.use("client", (client) => client.client("KILL", "TYPE", "pubsub"))
      const took = yield* RedisTest.eventually(Effect.map(b.peekMemory("ns:fn:1"), Option.isNone), {
        within: "5 seconds"
      })
      assert.isBelow(took, 5_000)
      assert.strictEqual(Option.getOrThrow(yield* b.get("ns:fn:1")).value, "v2")
      // and b listens again
      yield* a.set("ns:fn:1", entryAt("v3", 0, 60_000, Infinity))
      yield* RedisTest.eventually(Effect.map(b.peekMemory("ns:fn:1"), Option.isNone), { within: "1 second" })
      assert.strictEqual(Option.getOrThrow(yield* b.get("ns:fn:1")).value, "v3")
    }))

  it.scopedLive("a read that an invalidation overtakes does not put the old value back in memory", () =>
    Effect.gen(function*() {
      const keyPrefix = RedisTest.makePrefix()
      // b's command connection gets every reply 150 ms late; its subscriber is not slowed
      const proxy = yield* RedisTest.slowProxy(150)
      const a = yield* instance({ keyPrefix })
      const b = yield* instance({ keyPrefix, port: proxy.port })
      yield* a.set("ns:fn:1", entryAt("v1", 0, 60_000, Infinity))
      const before = proxy.answered()
      const read = yield* Effect.fork(b.get("ns:fn:1"))
      // Redis has answered b's GET with v1; the answer is on its way back, slowly
      yield* RedisTest.eventually(Effect.sync(() => proxy.answered() > before), { within: "1 second" })
      yield* a.set("ns:fn:1", entryAt("v2", 0, 60_000, Infinity))
      // the read answers what Redis held when it ran…
      assert.strictEqual(Option.getOrThrow(yield* Fiber.join(read)).value, "v1")
      // …but does not keep it: the invalidation for v2 arrived while it was on its way
      assert.isTrue(Option.isNone(yield* b.peekMemory("ns:fn:1")))
      assert.strictEqual(Option.getOrThrow(yield* b.get("ns:fn:1")).value, "v2")
    }))
})
