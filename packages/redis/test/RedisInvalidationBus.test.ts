/**
 * The Redis invalidation bus against a real `redis-server`: instances with connections of their
 * own (as in separate processes) hear each other's `set`, `delete`, `invalidate` and
 * `deletePrefix` within the bus delay (measured and printed), and survive losing their
 * subscription — `CLIENT KILL TYPE pubsub`, and a resubscribe that the server refuses once (an
 * ACL without the channel) — by flushing and subscribing again.
 */
import { assert, describe, it } from "@effect/vitest"
import { CacheEntry, CacheFirst, CacheMetrics, InvalidationBus } from "@stalewise/core"
import { RedisClient, RedisInvalidationBus, RedisStore, TieredStore } from "@stalewise/redis"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as RedisTest from "./utils/RedisTest.js"

const counter = (metric: Metric.Metric.Counter<number>) => Effect.map(Metric.value(metric), (state) => state.count)

const log = (message: string) => console.info(`[stalewise] ${message}`)

const entry = <A>(value: A) => CacheEntry.make({ value, createdAt: 0, staleAt: 60_000, expiresAt: Infinity })

const summary = (samples: ReadonlyArray<number>) => {
  const sorted = [...samples].sort((x, y) => x - y)
  const at = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!
  return `median ${at(0.5).toFixed(2)} ms, p95 ${at(0.95).toFixed(2)} ms, max ${
    sorted[sorted.length - 1]!.toFixed(2)
  } ms`
}

/** An instance's connection, store and bus, as another process would have them; the events it heard. */
const processLayer = (options: {
  readonly port?: number | undefined
  readonly keyPrefix: string
  readonly channel: string
  readonly connection?: RedisClient.RedisOptions | undefined
}) =>
  Layer.mergeAll(
    RedisStore.layerFromClient({ keyPrefix: options.keyPrefix }),
    RedisInvalidationBus.layerFromClient({ channel: options.channel, maxResubscribeDelay: "200 millis" })
  ).pipe(
    Layer.provideMerge(
      RedisClient.layer({
        host: RedisTest.host,
        port: options.port ?? RedisTest.port,
        ...RedisStore.clientDefaults,
        ...options.connection
      })
    )
  )

const startProcess = (options: Parameters<typeof processLayer>[0]) =>
  Effect.gen(function*() {
    const context = yield* Layer.build(processLayer(options))
    const events: Array<InvalidationBus.Event["_tag"] | "Disconnected" | "Resubscribed"> = []
    const bus = yield* Effect.provide(InvalidationBus.InvalidationBus, context)
    yield* bus.subscribe((event) => events.push(event._tag === "Flush" ? event.reason : event._tag))
    return { context, events }
  })

for (const topology of RedisTest.topologies) {
  const nodes = "nodes" in topology.connection ? { nodes: topology.connection.nodes } : {}
  describe.skipIf(!topology.available)(`RedisInvalidationBus (${topology.name})`, () => {
    RedisTest.assertNoUnhandledRejections()

    it.scopedLive(`set, delete, invalidate and deletePrefix on instance A drop B's in-process copies (${topology.name}, delay measured)`, () =>
      Effect.gen(function*() {
        const keyPrefix = RedisTest.makePrefix()
        const channel = `${keyPrefix}invalidate`
        // tiered stores: their memory tier is the L1
        const a = yield* RedisTest.tieredInstance({ keyPrefix, ...nodes })
        const b = yield* RedisTest.tieredInstance({ keyPrefix, ...nodes })
        const gone = (store: TieredStore.TieredStore, key: string) =>
          RedisTest.eventually(Effect.map(store.peekMemory(key), Option.isNone), { within: "1 second", every: 0 })
        const delays: Record<string, Array<number>> = { set: [], delete: [], deletePrefix: [], invalidate: [] }
        for (let i = 0; i < 30; i++) {
          const key = `ns:fn:${i}`
          yield* a.set(key, entry(`v1-${i}`))
          yield* RedisTest.filled(b, key)
          let start = performance.now()
          yield* a.set(key, entry(`v2-${i}`))
          yield* gone(b, key)
          delays.set!.push(performance.now() - start)
          assert.strictEqual(Option.getOrThrow(yield* b.get(key)).value, `v2-${i}`)

          yield* RedisTest.filled(b, key)
          start = performance.now()
          yield* a.delete(key)
          yield* gone(b, key)
          delays.delete!.push(performance.now() - start)
          assert.isTrue(Option.isNone(yield* b.get(key)))

          yield* a.set(`ns:gn:${i}:x`, entry("x"))
          yield* RedisTest.filled(b, `ns:gn:${i}:x`)
          start = performance.now()
          assert.strictEqual(yield* a.deletePrefix(`ns:gn:${i}:`), 1)
          yield* gone(b, `ns:gn:${i}:x`)
          delays.deletePrefix!.push(performance.now() - start)
        }

        // CacheFirst's in-process tier over a plain RedisStore: effect's Cache is the L1
        const first = yield* startProcess({ keyPrefix, channel })
        const second = yield* startProcess({ keyPrefix, channel })
        let version = 0
        const make = CacheFirst.makePersisted({
          name: "user",
          timeToLive: "1 hour",
          lookup: (id: number) => Effect.sync(() => `user ${id} v${version}`)
        })
        const onA = yield* Effect.provide(make, first.context)
        const onB = yield* Effect.provide(make, second.context)
        for (let i = 0; i < 30; i++) {
          const before = yield* onB.get(i)
          assert.strictEqual((yield* onB.getWithOutcome(i)).status, "hit")
          version++
          const start = performance.now()
          yield* onA.invalidate(i)
          yield* RedisTest.eventually(Effect.map(onB.get(i), (value) => value !== before), {
            within: "1 second",
            every: 0
          })
          delays.invalidate!.push(performance.now() - start)
        }
        for (const [op, samples] of Object.entries(delays)) {
          log(
            `bus delay (${topology.name}), ${op} on A → B's in-process copy gone (${samples.length} samples; includes A's own call): ${
              summary(samples)
            }`
          )
          assert.isBelow([...samples].sort((x, y) => x - y)[Math.floor(samples.length / 2)]!, 50)
        }
      }))

    it.scopedLive(`CacheFirst over a tiered store on one bus (${topology.name}): the store's own messages about CacheFirst's writes repair nothing`, () =>
      Effect.gen(function*() {
        const keyPrefix = RedisTest.makePrefix()
        const channel = `${keyPrefix}invalidate`
        const live = TieredStore.layerFromClient({ keyPrefix }).pipe(
          Layer.provideMerge(RedisInvalidationBus.layerFromClient({ channel })),
          Layer.provideMerge(
            RedisClient.layer({ ...topology.connection, ...RedisStore.clientDefaults })
          )
        )
        const context = yield* Layer.build(live)
        let calls = 0
        const cached = yield* CacheFirst.makePersisted({
          name: "user",
          timeToLive: "1 hour",
          lookup: (id: number) => Effect.sync(() => `user ${id} #${++calls}`)
        }).pipe(Effect.provide(context))
        for (let id = 0; id < 20; id++) assert.strictEqual(yield* cached.get(id), `user ${id} #${id + 1}`)
        yield* Effect.sleep("100 millis") // every message has arrived
        // another instance finds every value in the store: nothing was deleted as a "late write"
        const other = yield* CacheFirst.makePersisted({
          name: "user",
          timeToLive: "1 hour",
          lookup: (id: number) => Effect.succeed(`other ${id}`)
        }).pipe(Effect.provide(context))
        for (let id = 0; id < 20; id++) assert.strictEqual(yield* other.get(id), `user ${id} #${id + 1}`)
        assert.strictEqual(calls, 20)
      }))
  })
}

describe.skipIf(!RedisTest.available)("RedisInvalidationBus", () => {
  RedisTest.assertNoUnhandledRejections()

  it.scopedLive("a CacheFirst load that started before another instance's invalidation does not re-store the old value", () =>
    Effect.gen(function*() {
      const keyPrefix = RedisTest.makePrefix()
      const channel = `${keyPrefix}invalidate`
      const first = yield* startProcess({ keyPrefix, channel })
      const second = yield* startProcess({ keyPrefix, channel })
      let version = 0
      const gate = yield* Deferred.make<void>()
      const started = yield* Deferred.make<void>()
      const make = (gated: boolean) =>
        CacheFirst.makePersisted({
          name: "user",
          timeToLive: "1 hour",
          lookup: (id: number) =>
            Effect.suspend(() => {
              const seen = version
              return Effect.as(
                gated ? Effect.zipRight(Deferred.succeed(started, undefined), Deferred.await(gate)) : Effect.void,
                `user ${id} v${seen}`
              )
            })
        })
      const onA = yield* Effect.provide(make(true), first.context)
      const onB = yield* Effect.provide(make(false), second.context)

      const loading = yield* Effect.fork(onA.get(1)) // reads v0 upstream, then waits at the gate
      yield* Deferred.await(started)
      version++ // the source changes, and B invalidates
      yield* onB.invalidate(1)
      yield* Effect.sleep("200 millis") // A hears it
      yield* Deferred.succeed(gate, undefined)
      assert.strictEqual(yield* Fiber.join(loading), "user 1 v0", "the load answers its own caller")
      // whatever the key looks like: nothing under the function's prefix holds the old value
      const stored = yield* Effect.scoped(Effect.flatMap(RedisTest.connect, (client) =>
        Effect.promise(async () => {
          const keys: Array<string> = []
          let cursor = "0"
          do {
            const [next, batch] = await client.scan(cursor, "MATCH", `${keyPrefix}v:cache-first:user:*`, "COUNT", 1000)
            keys.push(...batch)
            cursor = next
          } while (cursor !== "0")
          return keys.length === 0 ? [] : await client.mget(...keys)
        })))
      assert.isFalse(stored.some((json) => json?.includes("v0")), "but did not store the old value")
      assert.strictEqual(yield* onB.get(1), "user 1 v1")
      assert.strictEqual(yield* onA.get(1), "user 1 v1", "nor kept it in A's in-process tier")
    }))

  it.scopedLive("CLIENT KILL TYPE pubsub: the instance flushes, subscribes again and hears the next write", () =>
    Effect.gen(function*() {
      const server = yield* RedisTest.privateServer
      const keyPrefix = "bus:"
      const a = yield* RedisTest.tieredInstance({ keyPrefix, port: server.port })
      const b = yield* RedisTest.tieredInstance({ keyPrefix, port: server.port })
      const admin = yield* RedisClient.make({ host: RedisTest.host, port: server.port })
      yield* a.set("ns:fn:1", entry("v1"))
      yield* RedisTest.filled(b, "ns:fn:1")

      const disconnectedBefore = yield* counter(Metric.tagged(CacheMetrics.busFlushes, "reason", "Disconnected"))
      const killedAt = performance.now()
      const killed = yield* admin.use("client", (client) => client.client("KILL", "TYPE", "pubsub"))
      assert.isAtLeast(Number(killed), 2, "both subscribers were cut")
      // b may have missed messages: it flushes
      yield* RedisTest.eventually(Effect.map(b.peekMemory("ns:fn:1"), Option.isNone), { within: "2 seconds" })
      // and once subscribed again, it hears a's writes
      const heard = yield* RedisTest.eventually(
        Effect.gen(function*() {
          yield* RedisTest.filled(b, "ns:fn:1")
          yield* a.set("ns:fn:1", entry(`v${performance.now()}`))
          return yield* Effect.map(
            Effect.zipRight(Effect.sleep("20 millis"), b.peekMemory("ns:fn:1")),
            Option.isNone
          )
        }),
        { within: "5 seconds" }
      )
      assert.isAtLeast(
        (yield* counter(Metric.tagged(CacheMetrics.busFlushes, "reason", "Disconnected"))) - disconnectedBefore,
        2,
        "both instances counted the lost subscription"
      )
      log(
        `CLIENT KILL TYPE pubsub: b hears writes again ${(performance.now() - killedAt).toFixed(0)} ms after the kill`
      )
      assert.isBelow(heard, 5_000)
    }))

  it.scopedLive("a resubscribe the server refuses once: retried, and the copy it kept while deaf is flushed", () =>
    Effect.gen(function*() {
      const server = yield* RedisTest.privateServer
      const admin = yield* RedisClient.make({ host: RedisTest.host, port: server.port })
      // b connects as a user whose channel permission the test can take away and give back
      yield* admin.use("acl", (client) => client.call("ACL", "SETUSER", "app", "on", ">secret", "~*", "&*", "+@all"))
      const keyPrefix = "acl:"
      const channel = `${keyPrefix}invalidate`
      const a = yield* RedisTest.tieredInstance({ keyPrefix, port: server.port })
      const connection = { username: "app", password: Redacted.make("secret") }
      const b = yield* startProcess({ port: server.port, keyPrefix, channel, connection })
      const bStore = yield* Effect.provide(TieredStore.make({ keyPrefix }), b.context)
      yield* a.set("ns:fn:1", entry("v1"))
      yield* RedisTest.filled(bStore, "ns:fn:1")
      const flushesBefore = b.events.filter((e) => e === "Resubscribed").length

      // no channel for b any more (Redis 7 disconnects its subscriber), and its subscription cut
      yield* admin.use("acl", (client) => client.call("ACL", "SETUSER", "app", "resetchannels"))
      yield* admin.use("client", (client) => client.client("KILL", "TYPE", "pubsub"))
      yield* RedisTest.eventually(Effect.sync(() => b.events.includes("Disconnected")), { within: "2 seconds" })
      // the resubscribe after the reconnect is refused: the ACL log shows it
      yield* RedisTest.eventually(
        Effect.map(
          admin.use("acl", (client) => client.call("ACL", "LOG")),
          (entries) => JSON.stringify(entries).includes("channel")
        ),
        { within: "5 seconds", every: "20 millis" }
      )
      // while b is deaf, it keeps a copy that a's next write makes stale, and is not told
      yield* RedisTest.filled(bStore, "ns:fn:1")
      yield* a.set("ns:fn:1", entry("v2"))
      yield* Effect.sleep("50 millis")
      assert.strictEqual(Option.getOrThrow(yield* bStore.peekMemory("ns:fn:1")).value, "v1", "stale while deaf")

      // the channel is allowed again: the next retry subscribes, and b flushes what it kept
      const grantedAt = performance.now()
      yield* admin.use("acl", (client) => client.call("ACL", "SETUSER", "app", "&*"))
      yield* RedisTest.eventually(Effect.map(bStore.peekMemory("ns:fn:1"), Option.isNone), { within: "5 seconds" })
      log(`refused resubscribe: retried and flushed ${(performance.now() - grantedAt).toFixed(0)} ms after the grant`)
      assert.isAbove(b.events.filter((e) => e === "Resubscribed").length, flushesBefore)
      assert.strictEqual(Option.getOrThrow(yield* bStore.get("ns:fn:1")).value, "v2")
      // and it listens again
      yield* RedisTest.filled(bStore, "ns:fn:1")
      yield* a.set("ns:fn:1", entry("v3"))
      yield* RedisTest.eventually(Effect.map(bStore.peekMemory("ns:fn:1"), Option.isNone), { within: "1 second" })
    }))

  it.scopedLive("the bus builds while Redis is down, and subscribes once it is up", () =>
    Effect.gen(function*() {
      const server = yield* RedisTest.privateServer
      const client = yield* RedisClient.make({ host: RedisTest.host, port: server.port, ...RedisStore.clientDefaults })
      yield* server.stop
      const started = performance.now()
      const bus = yield* Effect.provideService(
        RedisInvalidationBus.make({ channel: "down:invalidate", maxResubscribeDelay: "100 millis" }),
        RedisClient.RedisClient,
        client
      )
      assert.isBelow(performance.now() - started, 1_000, "built at once")
      const heard: Array<string> = []
      yield* bus.subscribe((event) => heard.push(event._tag === "Flush" ? event.reason : event._tag))
      const failuresBefore = yield* counter(CacheMetrics.busPublishFailures)
      yield* bus.publish({ _tag: "Key", key: "k", origin: "x", at: 0 }) // logged and counted, not thrown
      assert.isAbove(yield* counter(CacheMetrics.busPublishFailures), failuresBefore)
      yield* server.start
      yield* RedisTest.eventually(Effect.sync(() => heard.includes("Resubscribed")), { within: "10 seconds" })
      yield* RedisTest.eventually(
        Effect.zipRight(
          bus.publish({ _tag: "Key", key: "k", origin: "x", at: 1 }),
          Effect.sync(() => heard.includes("Key"))
        ),
        { within: "5 seconds", every: "50 millis" }
      )
    }))
})
