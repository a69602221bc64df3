/**
 * What a shared HTTP cache must never store, and `Vary`, against a real origin on 127.0.0.1.
 * Each refused response reaches the caller as the server sent it, with the reason, and the next
 * request goes to the server again (the origin's request counter proves nothing was stored).
 */
import { assert, describe, it } from "@effect/vitest"
import { CacheStore } from "@stalewise/core"
import { Strategy } from "@stalewise/rpc"
import { Effect } from "effect"
import { get, read, serialisingStore, setup } from "./fixtures/httpCache.js"
import type { OriginResponse } from "./fixtures/HttpOrigin.js"

const cacheFirst = Strategy.cacheFirst({ timeToLive: "1 minute" })

const refused: ReadonlyArray<readonly [string, OriginResponse, string]> = [
  ["private", { headers: { "cache-control": "private, max-age=60" } }, "private"],
  ["no-store", { headers: { "cache-control": "no-store" } }, "no-store"],
  [
    "set-cookie",
    { headers: { "cache-control": "public, max-age=60", "set-cookie": "session=abc; HttpOnly" } },
    "set-cookie"
  ],
  ["Vary: *", { headers: { "cache-control": "max-age=60", vary: "*" } }, "vary-star"],
  ["Vary with a star among fields", { headers: { vary: "accept, *" } }, "vary-star"],
  ["201", { status: 201 }, "status"],
  ["404", { status: 404 }, "status"]
]

describe("CachedHttpClient storage rules", () => {
  for (const [name, response, reason] of refused) {
    it.live(`${name}: never stored, bypass reason "${reason}"`, () =>
      Effect.gen(function*() {
        const { client, origin } = yield* setup({ strategy: cacheFirst })
        let n = 0
        yield* origin.route("/thing", () => ({ ...response, body: `answer ${++n}` }))
        const first = yield* read(yield* client.execute(get(origin.url("/thing"))))
        const second = yield* read(yield* client.execute(get(origin.url("/thing"))))
        assert.deepStrictEqual([first.status, first.bypass, first.body], ["bypass", reason, "answer 1"])
        assert.deepStrictEqual([second.status, second.bypass, second.body], ["bypass", reason, "answer 2"])
        assert.strictEqual((yield* origin.stats("/thing")).requests, 2)
        const store = yield* CacheStore.CacheStore
        assert.strictEqual(yield* store.deletePrefix("http:"), 0, "nothing stored")
      }).pipe(Effect.scoped, Effect.provide(serialisingStore)))
  }

  it.live("a request that says no-store is answered by the server and its response not stored", () =>
    Effect.gen(function*() {
      const { client, origin } = yield* setup({ strategy: cacheFirst })
      yield* origin.route("/thing", () => ({ body: "x" }))
      const answer = yield* read(yield* client.execute(get(origin.url("/thing"), { "cache-control": "no-store" })))
      assert.strictEqual(answer.bypass, "no-store")
      assert.strictEqual((yield* read(yield* client.execute(get(origin.url("/thing"))))).status, "miss")
    }).pipe(Effect.scoped, Effect.provide(CacheStore.layerMemory)))

  it.live("Vary: each variant is stored apart; the varied header selects it", () =>
    Effect.gen(function*() {
      const { client, origin } = yield* setup({ strategy: cacheFirst })
      yield* origin.route("/greeting", (request) => ({
        headers: { vary: "Accept-Language", "cache-control": "max-age=60" },
        body: request.headers["accept-language"] === "fr" ? "bonjour" : "hello"
      }))
      const url = origin.url("/greeting")
      const en1 = yield* read(yield* client.execute(get(url, { "accept-language": "en" })))
      const fr1 = yield* read(yield* client.execute(get(url, { "accept-language": "fr" })))
      const en2 = yield* read(yield* client.execute(get(url, { "accept-language": "en" })))
      const fr2 = yield* read(yield* client.execute(get(url, { "accept-language": "fr" })))
      const none = yield* read(yield* client.execute(get(url)))
      assert.deepStrictEqual(
        [en1, fr1, en2, fr2, none].map((a) => `${a.status}:${a.body}`),
        ["miss:hello", "miss:bonjour", "hit:hello", "hit:bonjour", "miss:hello"]
      )
      // a header the response does not vary on does not split the entry
      const other = yield* read(yield* client.execute(get(url, { "accept-language": "fr", "x-trace": "1" })))
      assert.strictEqual(other.status, "hit")
      assert.strictEqual((yield* origin.stats("/greeting")).requests, 3)
    }).pipe(Effect.scoped, Effect.provide(serialisingStore)))

  it.live("Vary: concurrent first requests in two languages never share the one response", () =>
    Effect.gen(function*() {
      const { client, origin } = yield* setup({ strategy: cacheFirst })
      yield* origin.route("/greeting", (request) => ({
        headers: { vary: "accept-language" },
        body: request.headers["accept-language"] === "fr" ? "bonjour" : "hello"
      }))
      yield* origin.hang("/greeting")
      const url = origin.url("/greeting")
      // both join one request (nothing says yet that the response varies), held at the origin
      const fibers = yield* Effect.forkAll([
        client.execute(get(url, { "accept-language": "en" })).pipe(Effect.flatMap(read)),
        client.execute(get(url, { "accept-language": "fr" })).pipe(Effect.flatMap(read))
      ])
      yield* origin.awaitRequests("/greeting", 1)
      yield* origin.release("/greeting")
      const [en, fr] = yield* fibers.await.pipe(Effect.flatten)
      assert.strictEqual(en!.body, "hello")
      assert.strictEqual(fr!.body, "bonjour")
    }).pipe(Effect.scoped, Effect.provide(CacheStore.layerMemory)))

  it.live("a resource that turns private drops its stored copy", () =>
    Effect.gen(function*() {
      const { client, origin } = yield* setup({ strategy: Strategy.failover({ timeout: "1 second" }) })
      yield* origin.route("/thing", () => ({ body: "public" }))
      yield* client.execute(get(origin.url("/thing")))
      yield* origin.route("/thing", () => ({ headers: { "cache-control": "private" }, body: "mine" }))
      assert.strictEqual((yield* read(yield* client.execute(get(origin.url("/thing"))))).bypass, "private")
      yield* origin.fail("/thing")
      const down = yield* read(yield* client.execute(get(origin.url("/thing"))))
      assert.strictEqual(down.code, 503, "the public copy is gone: no failover to it")
    }).pipe(Effect.scoped, Effect.provide(CacheStore.layerMemory)))

  it.live("requests with their own validators or a Range pass through", () =>
    Effect.gen(function*() {
      const { client, origin } = yield* setup({ strategy: cacheFirst })
      yield* origin.route("/thing", () => ({ headers: { etag: "\"v1\"" }, body: "x" }))
      const conditional = yield* client.execute(get(origin.url("/thing"), { "if-none-match": "\"v1\"" }))
      assert.strictEqual(conditional.status, 304, "the caller's own 304")
      assert.strictEqual(conditional.headers["x-stalewise-bypass"], "conditional")
      const range = yield* read(yield* client.execute(get(origin.url("/thing"), { range: "bytes=0-0" })))
      assert.strictEqual(range.bypass, "range")
    }).pipe(Effect.scoped, Effect.provide(CacheStore.layerMemory)))
})
