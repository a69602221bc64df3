/**
 * Stale-while-revalidate for HTTP against a real origin on 127.0.0.1: a stale response is served
 * at once while one background request per key refreshes it (in-process single flight plus the
 * store's lease across instances); RFC 5861 `stale-while-revalidate` / `stale-if-error` from the
 * response. Time rules run on `TestClock`; a background request is a real request, so the test
 * waits for it on real time (a short poll), never by sleeping a guessed duration.
 */
import { assert, describe, it } from "@effect/vitest"
import { CacheEntry, CacheMetrics, CacheStore } from "@stalewise/core"
import { CachedHttpClient, Strategy } from "@stalewise/rpc"
import { Clock, Effect, Layer, Metric, MetricLabel, Option, TestClock } from "effect"
import { another, countingLeases, get, read, setup } from "./fixtures/httpCache.js"

const liveClock = Clock.make()

/** Polls `check` on real time until it holds (at most 5 s). */
const eventually = <E, R>(check: Effect.Effect<boolean, E, R>) =>
  Effect.gen(function*() {
    for (let i = 0; i < 500; i++) {
      if (yield* check) return
      yield* Effect.sleep("10 millis").pipe(Effect.withClock(liveClock))
    }
    assert.fail("condition never held")
  })

const swr = CachedHttpClient.staleWhileRevalidate({ lifetime: "10 seconds", timeToLive: "1 hour" })

const refreshCount = (result: string) =>
  Metric.value(
    CacheMetrics.refreshes.pipe(
      Metric.taggedWithLabels([
        MetricLabel.make("strategy", "http-stale-while-revalidate"),
        MetricLabel.make("result", result)
      ])
    )
  ).pipe(Effect.map((state) => state.count))

describe("CachedHttpClient stale-while-revalidate", () => {
  it.effect("fresh: hit; stale: served at once, refreshed in the background; then fresh again", () =>
    Effect.gen(function*() {
      const { client, origin } = yield* setup({ strategy: swr })
      let version = 1
      yield* origin.route("/r", () => ({ body: `v${version}` }))
      const url = origin.url("/r")
      assert.strictEqual((yield* read(yield* client.execute(get(url)))).status, "miss")
      yield* TestClock.adjust("9 seconds")
      assert.strictEqual((yield* read(yield* client.execute(get(url)))).status, "hit")
      version = 2
      yield* TestClock.adjust("2 seconds")
      const stale = yield* read(yield* client.execute(get(url)))
      assert.deepStrictEqual([stale.status, stale.body], ["stale", "v1"])
      yield* eventually(Effect.map(client.execute(get(url)).pipe(Effect.flatMap(read)), (a) => a.status === "hit"))
      const refreshed = yield* read(yield* client.execute(get(url)))
      assert.deepStrictEqual([refreshed.status, refreshed.body], ["hit", "v2"])
      assert.strictEqual((yield* origin.stats("/r")).requests, 2)
      // past timeToLive: gone, the caller waits
      yield* TestClock.adjust("2 hours")
      assert.strictEqual((yield* read(yield* client.execute(get(url)))).status, "miss")
    }).pipe(Effect.scoped, Effect.provide(CacheStore.layerMemory)))

  it.effect("a refresh another instance landed between the stale read and the lease is not made again", () =>
    Effect.gen(function*() {
      const base = yield* CacheStore.makeMemory()
      // another instance's refresh lands just before this one takes the lease: a newer copy
      let landFirst = false
      const racing: CacheStore.CacheStore.Service = {
        ...base,
        acquireLease: (key, duration) =>
          Effect.gen(function*() {
            if (landFirst) {
              landFirst = false
              const held = yield* base.get<Record<string, unknown>>(key)
              if (Option.isSome(held)) {
                const now = yield* Clock.currentTimeMillis
                yield* base.set(
                  key,
                  CacheEntry.make({
                    value: held.value.value,
                    createdAt: now,
                    staleAt: now + 10_000,
                    expiresAt: now + 3_600_000
                  })
                )
              }
            }
            return yield* base.acquireLease(key, duration)
          })
      }
      const { client, origin } = yield* setup({ strategy: swr }).pipe(
        Effect.provide(Layer.succeed(CacheStore.CacheStore, racing))
      )
      yield* origin.route("/r", () => ({ body: "v1" }))
      const url = origin.url("/r")
      yield* client.execute(get(url))
      yield* TestClock.adjust("11 seconds")
      const skipped = yield* refreshCount("skipped")
      landFirst = true
      assert.strictEqual((yield* read(yield* client.execute(get(url)))).status, "stale")
      yield* eventually(Effect.map(refreshCount("skipped"), (count) => count > skipped))
      assert.strictEqual(
        (yield* origin.stats("/r")).requests,
        1,
        "the refresh found the newer copy and made no request"
      )
      assert.strictEqual((yield* read(yield* client.execute(get(url)))).status, "hit")
    }).pipe(Effect.scoped, Effect.orDie))

  it.effect("100 concurrent stale readers: all served at once, exactly one background request", () =>
    Effect.gen(function*() {
      const leases = yield* countingLeases
      const { client, origin } = yield* setup({ strategy: swr }).pipe(Effect.provide(leases.layer))
      yield* origin.route("/r", () => ({ headers: { etag: "\"v1\"" }, body: "v1" }))
      const url = origin.url("/r")
      yield* client.execute(get(url))
      yield* TestClock.adjust("11 seconds")
      // the refresh is held at the origin while the readers arrive: nobody waits for it
      yield* origin.hang("/r")
      const started = yield* refreshCount("started")
      const answers = yield* Effect.all(
        Array.from({ length: 100 }, () => Effect.flatMap(client.execute(get(url)), read)),
        { concurrency: "unbounded" }
      )
      assert.strictEqual(answers.filter((a) => a.status === "stale" && a.body === "v1").length, 100)
      yield* origin.awaitRequests("/r", 2)
      assert.strictEqual((yield* origin.stats("/r")).requests, 2, "one initial request, one background request")
      assert.strictEqual((yield* refreshCount("started")) - started, 1)
      assert.strictEqual(
        leases.acquisitions(),
        1,
        "the other 99 readers saw the refresh in process, no lease round trip"
      )
      yield* origin.release("/r")
      yield* eventually(Effect.map(Effect.flatMap(client.execute(get(url)), read), (a) => a.status === "hit"))
      const stats = yield* origin.stats("/r")
      assert.deepStrictEqual([stats.requests, stats.notModified], [2, 1], "the refresh was a 304")
    }).pipe(Effect.scoped, Effect.provide(CacheStore.layerMemory)))

  it.effect("two instances sharing a store: the lease lets one of them refresh", () =>
    Effect.gen(function*() {
      const { client, origin } = yield* setup({ strategy: swr })
      const second = yield* another({ strategy: swr })
      yield* origin.route("/r", () => ({ body: "v1" }))
      const url = origin.url("/r")
      yield* client.execute(get(url))
      yield* TestClock.adjust("11 seconds")
      yield* origin.hang("/r")
      const answers = yield* Effect.all(
        Array.from({ length: 100 }, (_, i) => Effect.flatMap((i % 2 === 0 ? client : second).execute(get(url)), read)),
        { concurrency: "unbounded" }
      )
      assert.strictEqual(answers.filter((a) => a.status === "stale").length, 100)
      yield* origin.awaitRequests("/r", 2)
      yield* origin.release("/r")
      yield* eventually(Effect.map(Effect.flatMap(second.execute(get(url)), read), (a) => a.status === "hit"))
      assert.strictEqual((yield* origin.stats("/r")).requests, 2)
    }).pipe(Effect.scoped, Effect.provide(CacheStore.layerMemory)))

  it.effect("a failed background refresh keeps the stale response", () =>
    Effect.gen(function*() {
      const { client, origin } = yield* setup({ strategy: swr })
      yield* origin.route("/r", () => ({ body: "v1" }))
      const url = origin.url("/r")
      yield* client.execute(get(url))
      yield* TestClock.adjust("11 seconds")
      yield* origin.fail("/r")
      const failed = yield* refreshCount("failed")
      assert.strictEqual((yield* read(yield* client.execute(get(url)))).status, "stale")
      yield* eventually(Effect.map(refreshCount("failed"), (n) => n > failed))
      const after = yield* read(yield* client.execute(get(url)))
      assert.deepStrictEqual([after.status, after.body], ["stale", "v1"])
    }).pipe(Effect.scoped, Effect.provide(CacheStore.layerMemory)))

  it.effect("RFC 5861 stale-while-revalidate from the response (freshness: response)", () =>
    Effect.gen(function*() {
      const { client, origin } = yield* setup({ strategy: swr, freshness: "response" })
      yield* origin.route(
        "/r",
        () => ({ headers: { "cache-control": "max-age=10, stale-while-revalidate=30" }, body: "v" })
      )
      const url = origin.url("/r")
      assert.strictEqual((yield* read(yield* client.execute(get(url)))).status, "miss")
      yield* TestClock.adjust("5 seconds")
      assert.strictEqual((yield* read(yield* client.execute(get(url)))).status, "hit")
      yield* TestClock.adjust("10 seconds")
      assert.strictEqual((yield* read(yield* client.execute(get(url)))).status, "stale")
      yield* origin.awaitRequests("/r", 2)
      yield* eventually(Effect.map(Effect.flatMap(client.execute(get(url)), read), (a) => a.status === "hit"))
      // past max-age + stale-while-revalidate: the caller waits for the server
      yield* TestClock.adjust("45 seconds")
      assert.strictEqual((yield* read(yield* client.execute(get(url)))).status, "miss")
    }).pipe(Effect.scoped, Effect.provide(CacheStore.layerMemory)))

  it.effect("RFC 5861 stale-if-error: a failing server is answered from the cache inside the window only", () =>
    Effect.gen(function*() {
      const { client, origin } = yield* setup({
        strategy: Strategy.cacheFirst({ timeToLive: "1 hour" }),
        freshness: "response"
      })
      yield* origin.route("/r", () => ({ headers: { "cache-control": "max-age=10, stale-if-error=60" }, body: "v" }))
      const url = origin.url("/r")
      yield* client.execute(get(url))
      yield* origin.fail("/r")
      yield* TestClock.adjust("30 seconds")
      const inside = yield* read(yield* client.execute(get(url)))
      assert.deepStrictEqual([inside.status, inside.code, inside.body], ["failover", 200, "v"])
      yield* TestClock.adjust("45 seconds")
      const outside = yield* read(yield* client.execute(get(url)))
      assert.deepStrictEqual([outside.status, outside.code], ["bypass", 503])
    }).pipe(Effect.scoped, Effect.provide(CacheStore.layerMemory)))

  it.effect("failover with freshness: response falls back to a stale copy only inside stale-if-error", () =>
    Effect.gen(function*() {
      const { client, origin } = yield* setup({
        strategy: Strategy.failover({ timeout: "1 second" }),
        freshness: "response"
      })
      yield* origin.route("/plain", () => ({ headers: { "cache-control": "max-age=10" }, body: "plain" }))
      yield* origin.route(
        "/sie",
        () => ({ headers: { "cache-control": "max-age=10, stale-if-error=60" }, body: "sie" })
      )
      yield* client.execute(get(origin.url("/plain")))
      yield* client.execute(get(origin.url("/sie")))
      yield* origin.fail("/plain")
      yield* origin.fail("/sie")
      // fresh: a fallback either way
      assert.strictEqual((yield* read(yield* client.execute(get(origin.url("/plain"))))).status, "failover")
      yield* TestClock.adjust("30 seconds")
      const plain = yield* read(yield* client.execute(get(origin.url("/plain"))))
      assert.deepStrictEqual([plain.status, plain.code], ["bypass", 503], "stale, and the response allows no stale use")
      const sie = yield* read(yield* client.execute(get(origin.url("/sie"))))
      assert.deepStrictEqual([sie.status, sie.body], ["failover", "sie"])
    }).pipe(Effect.scoped, Effect.provide(CacheStore.layerMemory)))

  it.effect("a stale-while-revalidate strategy with lifetime > timeToLive is a PolicyError", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(
        setup({ strategy: CachedHttpClient.staleWhileRevalidate({ lifetime: "1 hour", timeToLive: "1 minute" }) })
      )
      assert.strictEqual(error._tag, "PolicyError")
    }).pipe(Effect.scoped, Effect.provide(CacheStore.layerMemory)))
})
