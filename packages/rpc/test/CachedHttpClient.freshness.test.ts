/**
 * RFC 9111 freshness from the response (`freshness: "response"`) and conditional revalidation,
 * against a real origin on 127.0.0.1. Time is `TestClock`'s: `http-cache-semantics` reads the
 * time through Effect's `Clock`, so `TestClock.adjust` is what makes a response stale (the
 * requests themselves take a few real milliseconds, which the test clock never sees).
 */
import { assert, describe, it } from "@effect/vitest"
import { CacheStore } from "@stalewise/core"
import { CachedHttpClient, Strategy } from "@stalewise/rpc"
import { Effect, Metric, MetricLabel, TestClock } from "effect"
import { get, read, serialisingStore, setup } from "./fixtures/httpCache.js"
import type { OriginResponse } from "./fixtures/HttpOrigin.js"

const rfc = (strategy: CachedHttpClient.Options["strategy"] = Strategy.cacheFirst({ timeToLive: "1 hour" })) =>
  ({ strategy, freshness: "response" }) as const

const revalidationCount = (strategy: string, result: string) =>
  Metric.value(
    CachedHttpClient.revalidations.pipe(
      Metric.taggedWithLabels([MetricLabel.make("strategy", strategy), MetricLabel.make("result", result)])
    )
  ).pipe(Effect.map((state) => state.count))

/** Requests `path` at the given offsets (seconds from the start, increasing) and lists the statuses. */
const timeline = (
  fetch: () => Effect.Effect<{ readonly status: string | undefined }, unknown>,
  seconds: ReadonlyArray<number>
) =>
  Effect.gen(function*() {
    const statuses: Array<string | undefined> = []
    let at = 0
    for (const second of seconds) {
      yield* TestClock.adjust(`${second - at} seconds`)
      at = second
      statuses.push((yield* fetch()).status)
    }
    return statuses
  })

const freshnessCases: ReadonlyArray<readonly [string, OriginResponse, ReadonlyArray<number>, ReadonlyArray<string>]> = [
  ["max-age", { headers: { "cache-control": "max-age=60" } }, [0, 59, 61], ["miss", "hit", "miss"]],
  [
    "s-maxage overrides max-age in a shared cache",
    { headers: { "cache-control": "max-age=60, s-maxage=10" } },
    [0, 9, 11],
    ["miss", "hit", "miss"]
  ],
  ["Age is already spent freshness", { headers: { "cache-control": "max-age=60", age: "50" } }, [0, 9, 11], [
    "miss",
    "hit",
    "miss"
  ]],
  ["no-cache: revalidate before every use", { headers: { "cache-control": "no-cache" } }, [0, 1], ["miss", "miss"]],
  ["max-age=0", { headers: { "cache-control": "max-age=0" } }, [0, 0], ["miss", "miss"]]
]

describe("CachedHttpClient RFC 9111 freshness", () => {
  for (const [name, response, seconds, expected] of freshnessCases) {
    it.effect(name, () =>
      Effect.gen(function*() {
        const { client, origin } = yield* setup(rfc())
        yield* origin.route("/r", () => ({ ...response, body: "body" }))
        const statuses = yield* timeline(() => Effect.flatMap(client.execute(get(origin.url("/r"))), read), seconds)
        assert.deepStrictEqual(statuses, [...expected])
        assert.strictEqual((yield* origin.stats("/r")).requests, expected.filter((s) => s !== "hit").length)
      }).pipe(Effect.scoped, Effect.provide(serialisingStore)))
  }

  it.effect("Expires, measured against the server's Date", () =>
    Effect.gen(function*() {
      const { client, origin } = yield* setup(rfc())
      yield* origin.route("/r", () => {
        const date = new Date()
        return {
          headers: { date: date.toUTCString(), expires: new Date(date.getTime() + 30_000).toUTCString() },
          body: "body"
        }
      })
      const statuses = yield* timeline(() => Effect.flatMap(client.execute(get(origin.url("/r"))), read), [0, 28, 32])
      assert.deepStrictEqual(statuses, ["miss", "hit", "miss"])
    }).pipe(Effect.scoped, Effect.provide(CacheStore.layerMemory)))

  it.effect("the strategy's durations rule by default: max-age=0 is cached for the strategy's timeToLive", () =>
    Effect.gen(function*() {
      const { client, origin } = yield* setup({ strategy: Strategy.cacheFirst({ timeToLive: "1 minute" }) })
      yield* origin.route("/r", () => ({ headers: { "cache-control": "max-age=0" }, body: "body" }))
      const statuses = yield* timeline(() => Effect.flatMap(client.execute(get(origin.url("/r"))), read), [0, 59, 61])
      assert.deepStrictEqual(statuses, ["miss", "hit", "miss"])
    }).pipe(Effect.scoped, Effect.provide(CacheStore.layerMemory)))

  it.effect("a request's Cache-Control: no-cache revalidates a fresh response", () =>
    Effect.gen(function*() {
      const { client, origin } = yield* setup(rfc())
      yield* origin.route("/r", () => ({ headers: { "cache-control": "max-age=60", etag: "\"v1\"" }, body: "body" }))
      yield* client.execute(get(origin.url("/r")))
      const forced = yield* read(yield* client.execute(get(origin.url("/r"), { "cache-control": "no-cache" })))
      assert.strictEqual(forced.status, "revalidated")
      assert.strictEqual((yield* origin.stats("/r")).notModified, 1)
    }).pipe(Effect.scoped, Effect.provide(CacheStore.layerMemory)))
})

describe("CachedHttpClient conditional revalidation", () => {
  const body = "x".repeat(10_000)

  it.effect("ETag: a 304 renews the stored response and transfers no body", () =>
    Effect.gen(function*() {
      const { client, origin } = yield* setup(rfc())
      yield* origin.route("/doc", () => ({ headers: { "cache-control": "max-age=60", etag: "\"v1\"" }, body }))
      const before = yield* revalidationCount("http-cache-first", "not-modified")
      const first = yield* read(yield* client.execute(get(origin.url("/doc"))))
      assert.strictEqual(first.status, "miss")
      assert.strictEqual((yield* origin.stats("/doc")).bodyBytes, 10_000)

      yield* TestClock.adjust("61 seconds")
      const second = yield* read(yield* client.execute(get(origin.url("/doc"))))
      assert.strictEqual(second.status, "revalidated")
      assert.strictEqual(second.code, 200)
      assert.strictEqual(second.body, body, "the stored body, served in full")
      const stats = yield* origin.stats("/doc")
      assert.deepStrictEqual(
        { requests: stats.requests, conditional: stats.conditional, notModified: stats.notModified },
        { requests: 2, conditional: 1, notModified: 1 }
      )
      assert.strictEqual(stats.bodyBytes, 10_000, "the revalidation sent 0 body bytes")
      assert.strictEqual((yield* revalidationCount("http-cache-first", "not-modified")) - before, 1)

      // renewed: fresh again for max-age from the 304
      yield* TestClock.adjust("59 seconds")
      assert.strictEqual((yield* read(yield* client.execute(get(origin.url("/doc"))))).status, "hit")
      assert.strictEqual((yield* origin.stats("/doc")).requests, 2)
    }).pipe(Effect.scoped, Effect.provide(serialisingStore)))

  it.effect("Last-Modified: revalidated with If-Modified-Since", () =>
    Effect.gen(function*() {
      const { client, origin } = yield* setup(rfc())
      const lastModified = "Tue, 01 Dec 2026 00:00:00 GMT"
      yield* origin.route("/doc", (request) => {
        assert.isTrue(request.headers["if-none-match"] === undefined)
        return { headers: { "cache-control": "no-cache", "last-modified": lastModified }, body }
      })
      yield* client.execute(get(origin.url("/doc")))
      const second = yield* read(yield* client.execute(get(origin.url("/doc"))))
      assert.strictEqual(second.status, "revalidated")
      assert.strictEqual(second.body, body)
      assert.strictEqual((yield* origin.stats("/doc")).bodyBytes, 10_000)
    }).pipe(Effect.scoped, Effect.provide(CacheStore.layerMemory)))

  it.effect("a changed resource answers 200: the new body replaces the stored one", () =>
    Effect.gen(function*() {
      const { client, origin } = yield* setup(rfc())
      yield* origin.route("/doc", () => ({ headers: { "cache-control": "no-cache", etag: "\"v1\"" }, body: "one" }))
      yield* client.execute(get(origin.url("/doc")))
      yield* origin.route("/doc", () => ({ headers: { "cache-control": "no-cache", etag: "\"v2\"" }, body: "two" }))
      const before = yield* revalidationCount("http-cache-first", "modified")
      const changed = yield* read(yield* client.execute(get(origin.url("/doc"))))
      assert.deepStrictEqual([changed.status, changed.body], ["miss", "two"])
      assert.strictEqual((yield* revalidationCount("http-cache-first", "modified")) - before, 1)
      const again = yield* read(yield* client.execute(get(origin.url("/doc"))))
      assert.deepStrictEqual([again.status, again.body], ["revalidated", "two"])
    }).pipe(Effect.scoped, Effect.provide(CacheStore.layerMemory)))

  it.live("failover always asks, conditionally: an unchanged resource costs no body", () =>
    Effect.gen(function*() {
      const { client, origin } = yield* setup({ strategy: Strategy.failover({ timeout: "1 second" }) })
      yield* origin.route("/doc", () => ({ headers: { etag: "\"v1\"" }, body }))
      yield* client.execute(get(origin.url("/doc")))
      const statuses: Array<string | undefined> = []
      for (let i = 0; i < 3; i++) statuses.push((yield* read(yield* client.execute(get(origin.url("/doc"))))).status)
      assert.deepStrictEqual(statuses, ["revalidated", "revalidated", "revalidated"])
      const stats = yield* origin.stats("/doc")
      assert.deepStrictEqual([stats.requests, stats.notModified, stats.bodyBytes], [4, 3, 10_000])
    }).pipe(Effect.scoped, Effect.provide(CacheStore.layerMemory)))
})
