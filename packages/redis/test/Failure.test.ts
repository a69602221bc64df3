/**
 * What callers see when Redis fails, against real redis-server processes of each test's own:
 * stopped (connections closed, port refusing), paused (SIGSTOP: connections open, no answers)
 * and restarted on the same port.
 */
import { assert, describe, it } from "@effect/vitest"
import { CacheEntry, CacheFirst, CacheMetrics, CacheStore, Failover } from "@stalewise/core"
import { RedisClient, RedisStore, TieredStore } from "@stalewise/redis"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import * as RedisServer from "./utils/RedisServer.js"
import * as RedisTest from "./utils/RedisTest.js"

const host = RedisTest.host
const entry = <A>(value: A) => CacheEntry.make({ value, createdAt: 0, staleAt: 60_000, expiresAt: Infinity })

const build = (options: RedisStore.LayerOptions) =>
  Effect.map(Layer.build(RedisStore.layer(options)), Context.get(CacheStore.CacheStore))

const tiered = (port: number, keyPrefix: string) =>
  Effect.flatMap(
    RedisClient.make({ host, port, commandTimeout: "1 second", ...RedisStore.clientDefaults }),
    (redis) => Effect.provideService(TieredStore.make({ keyPrefix }), RedisClient.RedisClient, redis)
  )

const storeErrors = (backend: string) =>
  Effect.map(Metric.value(Metric.tagged(CacheMetrics.storeErrors, "backend", backend)), (state) => state.count)

const timed = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.suspend(() => {
    const start = performance.now()
    return Effect.map(effect, (a) => [a, performance.now() - start] as const)
  })

const works = (store: CacheStore.CacheStore.Service, key: string) =>
  Effect.map(Effect.either(store.get(key)), Either.isRight)

const log = (message: string) => console.info(`[stalewise] ${message}`)

describe.skipIf(!RedisTest.available)("Redis failures (private redis-server: stopped, paused, restarted)", () => {
  RedisTest.assertNoUnhandledRejections()

  it.scopedLive("Redis stopped: every operation fails fast with a counted Unavailable; back, the same store works", () =>
    Effect.gen(function*() {
      const server = yield* RedisTest.privateServer
      const store = yield* build({ host, port: server.port, commandTimeout: "2 seconds" })
      yield* store.set("ns:fn:1", entry("before"))
      const lease = Option.getOrThrow(yield* store.acquireLease("ns:fn:1", "1 minute"))
      const errorsBefore = yield* storeErrors("redis")

      yield* server.stop
      const operations = [
        ["get", store.get("ns:fn:1")],
        ["set", store.set("ns:fn:during", entry("during the outage"))],
        ["delete", store.delete("ns:fn:1")],
        ["deletePrefix", store.deletePrefix("ns:")],
        ["acquireLease", store.acquireLease("ns:fn:2", "1 minute")],
        ["releaseLease", store.releaseLease(lease)]
      ] as const
      const timings: Array<string> = []
      for (const [method, operation] of operations) {
        const [error, elapsed] = yield* timed(
          Effect.flip(operation as Effect.Effect<unknown, CacheStore.CacheStoreError>)
        )
        assert.strictEqual(error._tag, "CacheStoreError", method)
        assert.strictEqual(error.reason, "Unavailable", method)
        assert.strictEqual(error.method, method)
        assert.strictEqual(error.backend, "redis")
        assert.isBelow(elapsed, 250, `${method} failed fast`)
        timings.push(`${method} ${elapsed.toFixed(1)}`)
      }
      assert.isAtLeast((yield* storeErrors("redis")) - errorsBefore, operations.length)
      // while ioredis reconnects in the background (every 50, 100, 150 … ms), calls keep failing fast
      let slowest = 0
      let attempts = 0
      const outage = performance.now() + 400
      while (performance.now() < outage) {
        const [error, elapsed] = yield* timed(Effect.flip(store.get("ns:fn:1")))
        assert.strictEqual(error.reason, "Unavailable")
        slowest = Math.max(slowest, elapsed)
        attempts++
        yield* Effect.sleep("5 millis")
      }
      assert.isBelow(slowest, 250)

      const down = performance.now()
      yield* server.start
      const restarted = performance.now()
      const recovered = yield* RedisTest.eventually(works(store, "ns:fn:1"), {
        within: "10 seconds",
        every: "10 millis"
      })
      log(
        `Redis stopped: operations failed after (ms) ${timings.join(", ")}; ${attempts} more reads over 400 ms ` +
          `of reconnecting, slowest ${slowest.toFixed(1)} ms; restart took ${(restarted - down).toFixed(0)} ms; ` +
          `store answered again ${recovered.toFixed(0)} ms after the restart`
      )
      // A fresh, empty server: nothing written during the outage was queued and replayed.
      assert.isTrue(Option.isNone(yield* store.get("ns:fn:during")))
      yield* store.set("ns:fn:1", entry("after"))
      assert.strictEqual(Option.getOrThrow(yield* store.get("ns:fn:1")).value, "after")
      // its scripts are gone with the old server: EVALSHA falls back to EVAL
      assert.isTrue(Option.isSome(yield* store.acquireLease("ns:fn:1", "1 minute")))
    }))

  it.scopedLive("Redis hung (paused): calls end with Timeout at commandTimeout, release does not hang, resume recovers", () =>
    Effect.gen(function*() {
      const server = yield* RedisTest.privateServer
      const store = yield* build({ host, port: server.port, commandTimeout: "300 millis" })
      const inner = yield* Scope.make()
      const closing = yield* build({ host, port: server.port, commandTimeout: "300 millis" }).pipe(Scope.extend(inner))
      yield* store.set("ns:fn:1", entry("before"))
      yield* closing.set("ns:fn:2", entry("before"))
      const errorsBefore = yield* storeErrors("redis")

      yield* server.pause
      const [errors, elapsed] = yield* timed(
        Effect.all(
          [
            ...Array.from({ length: 10 }, () => Effect.flip(store.get("ns:fn:1"))),
            Effect.flip(store.set("ns:fn:1", entry("during"))),
            Effect.flip(store.acquireLease("ns:fn:1", "1 minute"))
          ],
          { concurrency: "unbounded" }
        )
      )
      for (const error of errors) assert.strictEqual(error.reason, "Timeout")
      assert.isAtLeast(elapsed, 290)
      assert.isBelow(elapsed, 1_000)
      assert.isAtLeast((yield* storeErrors("redis")) - errorsBefore, errors.length)
      // releasing a store whose server hangs: QUIT gets no answer, the connection is dropped
      const [, closed] = yield* timed(Scope.close(inner, Exit.void))
      assert.isBelow(closed, 1_500)

      yield* server.resume
      const recovered = yield* RedisTest.eventually(works(store, "ns:fn:1"), {
        within: "5 seconds",
        every: "10 millis"
      })
      log(
        `Redis paused: 12 concurrent calls ended with Timeout after ${
          elapsed.toFixed(0)
        } ms (commandTimeout 300 ms); ` +
          `releasing a store took ${closed.toFixed(0)} ms; answers again ${recovered.toFixed(0)} ms after resume`
      )
      // A timed-out command may still have run once the server went on (it had been sent).
      const value = Option.getOrThrow(yield* store.get("ns:fn:1")).value
      assert.oneOf(value, ["before", "during"])
    }))

  it.scopedLive("Failover and CacheFirst answer through the upstream while Redis is down; errors counted, not thrown", () => {
    const warnings: Array<string> = []
    const capture = Logger.make(({ logLevel, message }) => {
      if (logLevel._tag === "Warning") warnings.push(Array.isArray(message) ? message.join(" ") : String(message))
    })
    return Effect.gen(function*() {
      const server = yield* RedisTest.privateServer
      const store = yield* build({ host, port: server.port, commandTimeout: "1 second" })
      let calls = 0
      let failing = false
      const lookup = (id: number) =>
        Effect.suspend(() => {
          calls++
          return failing ? Effect.fail("upstream down" as const) : Effect.succeed(`rate ${id} #${calls}`)
        })
      const [rate, profile] = yield* Effect.all([
        Failover.make({ name: "rate", lookup, timeout: "1 second" }),
        CacheFirst.makePersisted({ name: "profile", lookup, timeToLive: "1 hour" })
      ]).pipe(Effect.provideService(CacheStore.CacheStore, store))
      assert.strictEqual((yield* rate.getWithOutcome(1)).status, "miss")
      const errorsBefore = yield* storeErrors("redis")

      yield* server.stop
      const [outcome, elapsed] = yield* timed(rate.getWithOutcome(1))
      assert.strictEqual(outcome.status, "miss")
      assert.strictEqual(outcome.value, `rate 1 #${calls}`)
      assert.isBelow(elapsed, 250)
      const [fromProfile] = yield* timed(profile.getWithOutcome(7))
      assert.strictEqual(fromProfile.status, "miss")
      assert.strictEqual(fromProfile.value, `rate 7 #${calls}`)
      // reads and writes both failed and were counted: rate (get + set), profile (get + set)
      assert.isAtLeast((yield* storeErrors("redis")) - errorsBefore, 4)
      assert.includeMembers(warnings, [
        "stalewise: store read failed, treated as a miss",
        "stalewise: store write failed, value not cached"
      ])
      // with the upstream failing too and nothing readable, the caller gets the upstream's error
      failing = true
      assert.strictEqual(yield* Effect.flip(rate.get(1)), "upstream down")
      failing = false

      yield* server.start
      yield* RedisTest.eventually(works(store, "probe"), { within: "10 seconds", every: "10 millis" })
      assert.strictEqual((yield* rate.getWithOutcome(1)).status, "miss")
      failing = true
      const fallback = yield* rate.getWithOutcome(1)
      assert.strictEqual(fallback.status, "failover")
      assert.strictEqual(fallback.reason, "error")
    }).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, capture)))
  })

  it.scopedLive("a tiered store serves its memory copies during the outage and empties them when Redis is back", () =>
    Effect.gen(function*() {
      const server = yield* RedisTest.privateServer
      const a = yield* tiered(server.port, "app:")
      const b = yield* tiered(server.port, "app:")
      yield* a.set("ns:fn:1", entry("v1"))
      assert.strictEqual(Option.getOrThrow(yield* b.get("ns:fn:1")).value, "v1")
      const errorsBefore = yield* storeErrors("tiered")

      yield* server.stop
      assert.strictEqual(Option.getOrThrow(yield* b.get("ns:fn:1")).value, "v1", "memory copy served")
      const miss = yield* Effect.flip(b.get("ns:fn:2"))
      assert.strictEqual(miss.reason, "Unavailable")
      const write = yield* Effect.flip(a.set("ns:fn:1", entry("v2")))
      assert.strictEqual(write.reason, "Unavailable")
      assert.strictEqual(Option.getOrThrow(yield* a.get("ns:fn:1")).value, "v2", "kept in a's memory, reported")
      assert.isAtLeast((yield* storeErrors("tiered")) - errorsBefore, 2)

      yield* server.start
      // both resubscribe and forget what they may have missed
      const emptied = yield* RedisTest.eventually(
        Effect.map(
          Effect.all([a.peekMemory("ns:fn:1"), b.peekMemory("ns:fn:1")]),
          (copies) => copies.every(Option.isNone)
        ),
        { within: "10 seconds", every: "10 millis" }
      )
      log(`tiered store: memory tiers emptied ${emptied.toFixed(0)} ms after the restart`)
      assert.isTrue(Option.isNone(yield* b.get("ns:fn:1")), "the new server is empty")
      yield* a.set("ns:fn:1", entry("v3"))
      assert.strictEqual(Option.getOrThrow(yield* b.get("ns:fn:1")).value, "v3")
      yield* a.set("ns:fn:1", entry("v4"))
      yield* RedisTest.eventually(Effect.map(b.peekMemory("ns:fn:1"), Option.isNone), { within: "1 second" })
      assert.strictEqual(Option.getOrThrow(yield* b.get("ns:fn:1")).value, "v4")
    }))

  it.scopedLive("no Redis when the layer is built: a fast RedisError, and Layer.orElse can fall back to memory", () =>
    Effect.gen(function*() {
      const port = yield* Effect.promise(RedisServer.freePort)
      const [error, elapsed] = yield* timed(Effect.flip(build({ host, port, connectTimeout: "2 seconds" })))
      assert.strictEqual(error._tag, "RedisError")
      if (error._tag === "RedisError") assert.strictEqual(error.reason, "Connection")
      assert.isBelow(elapsed, 1_000)
      const store = yield* Effect.map(
        Layer.build(RedisStore.layer({ host, port }).pipe(Layer.orElse(() => CacheStore.layerMemory))),
        Context.get(CacheStore.CacheStore)
      )
      assert.strictEqual(store.backend, "memory")
    }))
})
