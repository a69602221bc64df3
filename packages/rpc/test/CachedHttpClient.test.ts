/**
 * The cached HttpClient against the fixture's real HTTP route on 127.0.0.1 (`GET /users/:id`).
 * Real time on purpose (`it.live`): a network server is involved; waits are short.
 */
import { FetchHttpClient, HttpClient, HttpClientRequest, KeyValueStore } from "@effect/platform"
import { assert, describe, it } from "@effect/vitest"
import { CacheStore } from "@stalewise/core"
import { CachedHttpClient, Strategy } from "@stalewise/rpc"
import { Duration, Effect, Layer } from "effect"
import * as ControlledServer from "./fixtures/ControlledServer.js"

const endpoint = "GET /users/:id"
const serialisingStore = Layer.provide(CacheStore.layerKeyValueStore, KeyValueStore.layerMemory)

const setup = (options: CachedHttpClient.Options) =>
  Effect.gen(function*() {
    const server = yield* ControlledServer.make()
    const client = yield* CachedHttpClient.make(yield* HttpClient.HttpClient, options)
    return { server, control: server.control, client }
  }).pipe(Effect.provide(FetchHttpClient.layer))

const statusOf = (response: { readonly headers: Readonly<Record<string, string | undefined>> }) =>
  response.headers[CachedHttpClient.statusHeader]

describe("CachedHttpClient", () => {
  it.live("failover: a 503 serves the stored response, byte for byte, and says so", () =>
    Effect.gen(function*() {
      const { client, control, server } = yield* setup({ strategy: Strategy.failover({ timeout: "1 second" }) })
      const first = yield* client.get(server.userUrl(5))
      assert.strictEqual(first.status, 200)
      assert.strictEqual(statusOf(first), "miss")
      const body = yield* first.text
      yield* control.fail(endpoint)
      const second = yield* client.get(server.userUrl(5))
      assert.strictEqual(second.status, 200)
      assert.strictEqual(statusOf(second), "failover")
      assert.strictEqual(yield* second.text, body)
      assert.strictEqual(second.headers["content-type"], first.headers["content-type"])
      assert.strictEqual(yield* control.calls(endpoint), 2)
    }).pipe(Effect.scoped, Effect.provide(serialisingStore)))

  it.live("failover without a stored response: the server's 503 reaches the caller unchanged", () =>
    Effect.gen(function*() {
      const { client, control, server } = yield* setup({ strategy: Strategy.failover({ timeout: "1 second" }) })
      yield* control.fail(endpoint)
      const response = yield* client.get(server.userUrl(6))
      assert.strictEqual(response.status, 503)
      assert.strictEqual(statusOf(response), "bypass")
      assert.strictEqual(response.headers[CachedHttpClient.bypassHeader], "status")
    }).pipe(Effect.scoped, Effect.provide(CacheStore.layerMemory)))

  it.live("a 404 is an answer: returned as is, not stored, no fallback", () =>
    Effect.gen(function*() {
      const { client, server } = yield* setup({ strategy: Strategy.failover({ timeout: "1 second" }) })
      const response = yield* client.get(server.userUrl(1_000))
      assert.strictEqual(response.status, 404)
      const store = yield* CacheStore.CacheStore
      assert.strictEqual(yield* store.deletePrefix("http:"), 0, "nothing stored")
    }).pipe(Effect.scoped, Effect.provide(CacheStore.layerMemory)))

  it.live("failover on timeout: a hung server costs one timeout", () =>
    Effect.gen(function*() {
      const { client, control, server } = yield* setup({ strategy: Strategy.failover({ timeout: "100 millis" }) })
      yield* client.get(server.userUrl(8))
      yield* control.hang(endpoint)
      const [elapsed, response] = yield* Effect.timed(client.get(server.userUrl(8)))
      assert.isAtLeast(Duration.toMillis(elapsed), 95)
      assert.strictEqual(statusOf(response), "failover")
      const [again] = yield* Effect.timed(client.get(server.userUrl(8)))
      assert.isBelow(Duration.toMillis(again), 50)
      yield* control.release(endpoint)
    }).pipe(Effect.scoped, Effect.provide(CacheStore.layerMemory)))

  it.live("cache-first: a hit makes no request; key headers and query parameters are part of the key", () =>
    Effect.gen(function*() {
      const { client, control, server } = yield* setup({
        strategy: Strategy.cacheFirst({ timeToLive: "1 minute" }),
        keyHeaders: ["Accept-Language"]
      })
      const en = HttpClientRequest.get(server.userUrl(2)).pipe(HttpClientRequest.setHeader("accept-language", "en"))
      const fr = HttpClientRequest.get(server.userUrl(2)).pipe(HttpClientRequest.setHeader("accept-language", "fr"))
      assert.strictEqual(statusOf(yield* client.execute(en)), "miss")
      const hit = yield* client.execute(en)
      assert.strictEqual(statusOf(hit), "hit")
      assert.strictEqual((yield* hit.json as Effect.Effect<{ id: number }, unknown>).id, 2)
      yield* client.execute(fr)
      yield* client.execute(en.pipe(HttpClientRequest.setUrlParam("fields", "name")))
      assert.strictEqual(yield* control.calls(endpoint), 3)
      // a request id header is not a key header: same entry
      yield* client.execute(en.pipe(HttpClientRequest.setHeader("x-request-id", "abc")))
      assert.strictEqual(yield* control.calls(endpoint), 3)
    }).pipe(Effect.scoped, Effect.provide(serialisingStore)))

  it.live("only idempotent requests are cached: a POST passes through", () =>
    Effect.gen(function*() {
      const { client, control, server } = yield* setup({ strategy: Strategy.cacheFirst({ timeToLive: "1 minute" }) })
      yield* client.get(server.userUrl(3))
      yield* client.post(server.userUrl(3)).pipe(Effect.ignore)
      yield* client.get(server.userUrl(3))
      assert.strictEqual(yield* control.calls(endpoint), 1, "the POST did not reach the GET route's counter")
      const post = yield* client.post(server.userUrl(3))
      assert.strictEqual(statusOf(post), "bypass")
      assert.strictEqual(post.headers[CachedHttpClient.bypassHeader], "method")
    }).pipe(Effect.scoped, Effect.provide(CacheStore.layerMemory)))

  it.live("cache-first: 100 concurrent misses of one URL make one request", () =>
    Effect.gen(function*() {
      const { client, control, server } = yield* setup({ strategy: Strategy.cacheFirst({ timeToLive: "1 minute" }) })
      yield* control.hang(endpoint)
      const fibers = yield* Effect.forkAll(Array.from({ length: 100 }, () => client.get(server.userUrl(4))))
      yield* control.awaitCalls(endpoint, 1)
      yield* control.release(endpoint)
      const responses = yield* fibers.await.pipe(Effect.flatten)
      assert.strictEqual(responses.filter((response) => statusOf(response) === "miss").length, 100)
      assert.strictEqual(yield* control.calls(endpoint), 1)
    }).pipe(Effect.scoped, Effect.provide(CacheStore.layerMemory)))

  it.effect("bad options are a PolicyError before any request: a namespace with \":\", a zero timeout", () =>
    Effect.gen(function*() {
      const client = yield* HttpClient.HttpClient
      const namespace = yield* Effect.flip(
        CachedHttpClient.make(client, { strategy: Strategy.cacheFirst({ timeToLive: "1 minute" }), namespace: "a:b" })
      )
      assert.deepStrictEqual([namespace._tag, namespace.reason, namespace.option], [
        "PolicyError",
        "InvalidValue",
        "namespace"
      ])
      const timeout = yield* Effect.flip(CachedHttpClient.make(client, { strategy: Strategy.failover({ timeout: 0 }) }))
      assert.deepStrictEqual([timeout.reason, timeout.option], ["InvalidDuration", "timeout"])
    }).pipe(Effect.scoped, Effect.provide(CacheStore.layerMemory), Effect.provide(FetchHttpClient.layer)))
})
