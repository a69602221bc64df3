/**
 * What callers see when Redis fails, against real redis-server processes of each test's own:
 * stopped (connections closed, port refusing), paused (SIGSTOP: connections open, no answers)
 * and restarted on the same port.
 */
import { assert, describe, it } from "@effect/vitest"
import { CacheEntry, CacheFirst, CacheMetrics, CacheStore, Failover } from "@stalewise/core"
import { BullRefreshQueue, RedisClient, RedisStore, TieredStore } from "@stalewise/redis"
import { Job, RefreshQueue } from "@stalewise/refresh"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import * as RedisTest from "./utils/RedisTest.js"

const host = RedisTest.host
const entry = <A>(value: A) => CacheEntry.make({ value, createdAt: 0, staleAt: 60_000, expiresAt: Infinity })

const build = (options: RedisStore.LayerOptions) =>
  Effect.map(Layer.build(RedisStore.layer(options)), Context.get(CacheStore.CacheStore))

const tiered = (port: number, keyPrefix: string) =>
  RedisTest.tieredInstance({ port, keyPrefix, commandTimeout: "1 second" })

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
      // its write, in the background, lands before the outage
      yield* Effect.sleep("50 millis")
      const errorsBefore = yield* storeErrors("redis")

      yield* server.stop
      const [outcome, elapsed] = yield* timed(rate.getWithOutcome(1))
      assert.strictEqual(outcome.status, "miss")
      assert.strictEqual(outcome.value, `rate 1 #${calls}`)
      assert.isBelow(elapsed, 250)
      const [fromProfile] = yield* timed(profile.getWithOutcome(7))
      assert.strictEqual(fromProfile.status, "miss")
      assert.strictEqual(fromProfile.value, `rate 7 #${calls}`)
      // reads and writes failed and were counted: profile (get + set), rate (set, and get unless it
      // found the value its own upstream call had just handed to the store); the writes in the
      // background, after the calls returned
      yield* RedisTest.eventually(
        Effect.map(storeErrors("redis"), (errors) => errors - errorsBefore >= 3),
        { within: "2 seconds" }
      )
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

  it.scopedLive("a tiered store drops its memory copies when its bus loses Redis, keeps what it writes meanwhile, and empties again when Redis is back", () =>
    Effect.gen(function*() {
      const server = yield* RedisTest.privateServer
      const a = yield* tiered(server.port, "app:")
      const b = yield* tiered(server.port, "app:")
      yield* a.set("ns:fn:1", entry("v1"))
      assert.strictEqual(Option.getOrThrow(yield* b.get("ns:fn:1")).value, "v1")
      yield* RedisTest.filled(b, "ns:fn:1")
      const errorsBefore = yield* storeErrors("tiered")

      yield* server.stop
      // the subscription is lost: messages may be lost too, so b forgets what it holds
      yield* RedisTest.eventually(
        Effect.map(
          Effect.all([a.peekMemory("ns:fn:1"), b.peekMemory("ns:fn:1")]),
          (copies) => copies.every(Option.isNone)
        ),
        { within: "2 seconds" }
      )
      const miss = yield* Effect.flip(b.get("ns:fn:1"))
      assert.strictEqual(miss.reason, "Unavailable")
      const write = yield* Effect.flip(a.set("ns:fn:1", entry("v2")))
      assert.strictEqual(write.reason, "Unavailable")
      assert.strictEqual(Option.getOrThrow(yield* a.get("ns:fn:1")).value, "v2", "kept in a's memory, reported")
      assert.isAtLeast((yield* storeErrors("tiered")) - errorsBefore, 2)

      yield* server.start
      // a resubscribes and forgets what it kept meanwhile (it may have missed messages)
      const emptied = yield* RedisTest.eventually(Effect.map(a.peekMemory("ns:fn:1"), Option.isNone), {
        within: "10 seconds",
        every: "10 millis"
      })
      log(`tiered store: a's memory tier emptied ${emptied.toFixed(0)} ms after the restart`)
      // b's connections are back too: the new server is empty
      yield* RedisTest.eventually(
        Effect.map(Effect.either(b.get("ns:fn:1")), (read) => read._tag === "Right" && Option.isNone(read.right)),
        { within: "10 seconds", every: "10 millis" }
      )
      // the command connections reconnect on their own schedule
      yield* RedisTest.eventually(
        Effect.map(Effect.all([works(a, "probe"), works(b, "probe")]), (ok) => ok.every(Boolean)),
        { within: "2 seconds", every: "10 millis" }
      )
      yield* a.set("ns:fn:1", entry("v3"))
      assert.strictEqual(Option.getOrThrow(yield* b.get("ns:fn:1")).value, "v3")
      yield* a.set("ns:fn:1", entry("v4"))
      yield* RedisTest.eventually(Effect.map(b.peekMemory("ns:fn:1"), Option.isNone), { within: "1 second" })
      assert.strictEqual(Option.getOrThrow(yield* b.get("ns:fn:1")).value, "v4")
    }))

  it.scopedLive(
    "Redis down when the app starts: the layers build, calls go to the upstream, and once Redis is up the store serves — no restart",
    () =>
      Effect.gen(function*() {
        const server = yield* RedisTest.privateServerDown
        const connection = { host, port: server.port, commandTimeout: "200 millis" } as const
        const keyPrefix = "app:"
        const [built, app] = yield* Effect.timed(Layer.build(
          Layer.mergeAll(
            Layer.merge(
              RedisStore.layerFromClient({ keyPrefix }),
              BullRefreshQueue.layer({ queueName: "startup", overflow: "refresh-synchronously" })
            ).pipe(Layer.provideMerge(RedisClient.layer({ ...connection, ...RedisStore.clientDefaults }))),
            Layer.succeed(Tiered, {
              a: yield* Effect.map(
                Layer.build(TieredStore.layer({ ...connection, keyPrefix })),
                Context.get(CacheStore.CacheStore)
              ),
              b: yield* Effect.map(
                Layer.build(TieredStore.layer({ ...connection, keyPrefix })),
                Context.get(CacheStore.CacheStore)
              )
            })
          )
        ))
        let calls = 0
        const price = yield* Job.make({
          name: "price",
          argsSchema: Schema.Tuple(Schema.String),
          schema: Schema.String,
          key: (id: string) => id,
          fetch: (id: string) => Effect.sync(() => `${id} #${++calls}`),
          lifetime: "1 minute"
        }).pipe(Effect.provide(app))

        // Redis is down for 2 s: every call is answered by the upstream, fast
        const during: Array<string> = []
        let slowest = 0
        const start = performance.now()
        while (performance.now() - start < 2_000) {
          const [elapsed, outcome] = yield* Effect.timed(price.getWithOutcome("A-1"))
          during.push(outcome.status)
          slowest = Math.max(slowest, Duration.toMillis(elapsed))
          yield* Effect.sleep("100 millis")
        }
        assert.isTrue(during.every((status) => status === "miss"), during.join())
        assert.strictEqual(calls, during.length)
        assert.isBelow(slowest, 100)

        yield* server.start
        const started = performance.now()
        // the same layers, no restart: the store serves (a hit needs a landed write and a read)
        const served = yield* RedisTest.eventually(
          Effect.map(price.getWithOutcome("A-1"), (outcome) => outcome.status === "hit"),
          { within: "5 seconds", every: "20 millis" }
        )
        const callsThen = calls
        assert.strictEqual((yield* price.getWithOutcome("A-1")).status, "hit")
        assert.strictEqual(calls, callsThen)
        // the queue took requests: a stale read is enqueued, not refreshed in the caller
        const queue = Context.get(app, RefreshQueue.RefreshQueue)
        yield* RedisTest.eventually(
          Effect.map(
            queue.offer({ job: "price", key: "B-1", args: ["B-1"], requestedAt: Date.now() }),
            (offered) => offered === "enqueued"
          ),
          { within: "5 seconds", every: "20 millis" }
        )
        // the tiered stores subscribed once Redis was up: a write on one drops the other's copy
        const { a, b } = Context.get(app, Tiered)
        yield* RedisTest.eventually(works(a, "probe"), { within: "5 seconds", every: "20 millis" })
        yield* RedisTest.eventually(
          Effect.gen(function*() {
            yield* a.set("ns:fn:1", entry("v1"))
            if (Option.isNone(yield* b.get("ns:fn:1"))) return false
            yield* a.set("ns:fn:1", entry("v2"))
            yield* Effect.sleep("50 millis")
            return Option.isNone(yield* (b as TieredStore.TieredStore).peekMemory("ns:fn:1"))
          }).pipe(Effect.orElseSucceed(() => false)),
          { within: "5 seconds", every: "20 millis" }
        )
        log(
          `Redis down at startup: layers built in ${Duration.toMillis(built).toFixed(0)} ms; ${during.length} calls ` +
            `answered by the upstream meanwhile (slowest ${slowest.toFixed(0)} ms); the store served ` +
            `${served.toFixed(0)} ms after Redis started (${(performance.now() - started).toFixed(0)} ms with the rest)`
        )
        assert.isBelow(Duration.toMillis(built), 1_000)
      }),
    { timeout: 30_000 }
  )

  it.scopedLive("Redis paused: a call costs at most one commandTimeout (the write after the upstream call leaves the caller's path)", () =>
    Effect.gen(function*() {
      const server = yield* RedisTest.privateServer
      const store = yield* build({ host, port: server.port, commandTimeout: "200 millis", backgroundWrites: 5 })
      let calls = 0
      const lookup = (id: string) => Effect.sync(() => `${id} #${++calls}`)
      const env = yield* Layer.build(RefreshQueue.layerFibers())
      const [job, profile, rate] = yield* Effect.all([
        Job.make({ name: "paused", fetch: lookup, schema: Schema.String, lifetime: "1 minute" }).pipe(
          Effect.provide(env)
        ),
        CacheFirst.makePersisted({ name: "paused-profile", lookup, timeToLive: "1 hour" }),
        Failover.make({ name: "paused-rate", lookup, timeout: "1 second" })
      ]).pipe(Effect.provideService(CacheStore.CacheStore, store))
      const droppedBefore = yield* writesDropped("redis")

      yield* server.pause
      const latencies: Record<string, number> = {}
      const [first, missed] = yield* Effect.timed(job.getWithOutcome("p-1"))
      assert.strictEqual(missed.status, "miss")
      latencies["job miss"] = Duration.toMillis(first)
      // the read waited for commandTimeout; the write after the fetch did not
      assert.isBelow(latencies["job miss"], 350) // read + write would be ≥ 400
      // read-your-writes in this process: the job's value is served from its unlanded write
      const [again, reread] = yield* Effect.timed(job.getWithOutcome("p-1"))
      assert.deepStrictEqual([reread.status, reread.value], ["hit", "p-1 #1"])
      const [second, cacheFirst] = yield* Effect.timed(profile.getWithOutcome("p-2"))
      assert.strictEqual(cacheFirst.status, "miss")
      latencies["cache-first miss"] = Duration.toMillis(second)
      const [third, failover] = yield* Effect.timed(rate.getWithOutcome("p-3"))
      assert.strictEqual(failover.status, "miss")
      latencies["failover miss"] = Duration.toMillis(third)
      // 10 misses at once, with room for 5 writes in flight: 5 sent, 5 dropped and counted
      yield* Effect.sleep("250 millis") // the writes above have timed out
      yield* Effect.all(Array.from({ length: 10 }, (_, i) => job.get(`q-${i}`)), { concurrency: "unbounded" })
      assert.strictEqual((yield* writesDropped("redis")) - droppedBefore, 5)
      yield* server.resume
      log(
        `Redis paused (commandTimeout 200 ms): ${
          Object.entries(latencies).map(([name, ms]) => `${name} ${ms.toFixed(0)} ms`).join(", ")
        }; a re-read of the job's value ${Duration.toMillis(again).toFixed(1)} ms`
      )
      for (const [name, ms] of Object.entries(latencies)) assert.isBelow(ms, 350, name)
      assert.isBelow(Duration.toMillis(again), 50)
    }))

  it.scopedLive("closing a store lets its writes in flight land: QUIT waits for their answers", () => {
    const warnings: Array<string> = []
    const capture = Logger.make(({ logLevel, message }) => {
      if (logLevel._tag === "Warning") warnings.push(Array.isArray(message) ? message.join(" ") : String(message))
    })
    return Effect.gen(function*() {
      const proxy = yield* RedisTest.slowProxy(100)
      const keyPrefix = RedisTest.makePrefix()
      const scope = yield* Scope.make()
      const store = yield* build({ host, port: proxy.port, keyPrefix, commandTimeout: "2 seconds" }).pipe(
        Scope.extend(scope)
      )
      const [handed] = yield* Effect.timed(CacheStore.setOrWarn(store, "ns:fn:1", entry("in flight"), undefined, {}))
      assert.isBelow(Duration.toMillis(handed), 100, "the caller did not wait for the 100 ms answer")
      const [closed] = yield* Effect.timed(Scope.close(scope, Exit.void))
      assert.isAtLeast(Duration.toMillis(closed), 90, "closing waited for the write's answer")
      const admin = yield* RedisTest.connect
      assert.isNotNull(yield* Effect.promise(() => admin.get(`${keyPrefix}v:ns:fn:1`)))
      assert.deepStrictEqual(warnings, [], "the write was answered, not cut off")
    }).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, capture)))
  })

  it.scopedLive(
    "after an outage of any length the store answers again within maxReconnectDelay (250 ms)",
    () =>
      Effect.gen(function*() {
        const server = yield* RedisTest.privateServer
        const redis = yield* RedisClient.make({ host, port: server.port, ...RedisStore.clientDefaults })
        const store = yield* Effect.provideService(RedisStore.make(), RedisClient.RedisClient, redis)
        const delays: Array<number> = []
        redis.client.on("reconnecting", (delay: number) => delays.push(delay))
        const recoveries: Array<string> = []
        for (const outage of [300, 4_000]) {
          yield* server.stop
          yield* Effect.sleep(Duration.millis(outage))
          yield* server.start
          const recovered = yield* RedisTest.eventually(works(store, "probe"), { within: "5 seconds", every: 0 })
          recoveries.push(`${outage} ms outage: ${recovered.toFixed(0)} ms`)
          assert.isBelow(recovered, 250 + 150, `after a ${outage} ms outage`)
        }
        log(`Redis recovery: ${recoveries.join(", ")}; longest reconnect delay ${Math.max(...delays)} ms`)
        assert.isAtMost(Math.max(...delays), 250)
      }),
    { timeout: 30_000 }
  )
})

class Tiered extends Context.Tag("test/Tiered")<Tiered, {
  readonly a: CacheStore.CacheStore.Service
  readonly b: CacheStore.CacheStore.Service
}>() {}

const writesDropped = (backend: string) =>
  Effect.map(Metric.value(Metric.tagged(CacheMetrics.storeWritesDropped, "backend", backend)), (state) => state.count)
