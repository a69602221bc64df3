/**
 * Never serve a response to a caller it was not for: requests with credentials against a real
 * origin on 127.0.0.1 whose `GET /me` answers with the caller's own identity.
 */
import { KeyValueStore } from "@effect/platform"
import { assert, describe, it } from "@effect/vitest"
import { CacheStore } from "@stalewise/core"
import { CachedHttpClient, Strategy } from "@stalewise/rpc"
import { Effect, Option } from "effect"
import { get, inspectableStore, read, serialisingStore, setup } from "./fixtures/httpCache.js"
import type { OriginRequest, OriginResponse } from "./fixtures/HttpOrigin.js"

/** `/me`: who the credentials say the caller is (bearer token or `session` cookie). */
const me = (cacheControl?: string) => (request: OriginRequest): OriginResponse => {
  const bearer = request.headers["authorization"]?.replace(/^Bearer /, "")
  const session = request.headers["cookie"]?.match(/session=(\w+)/)?.[1]
  return {
    headers: cacheControl === undefined ? {} : { "cache-control": cacheControl },
    body: JSON.stringify({ user: bearer ?? session ?? "anonymous" })
  }
}

const alice = { authorization: "Bearer alice-secret-token" }
const bob = { authorization: "Bearer bob-secret-token" }
const cacheFirst = Strategy.cacheFirst({ timeToLive: "1 minute" })

describe("CachedHttpClient credentials", () => {
  it.live("default: two users never see each other's response; credentialed requests bypass the cache", () =>
    Effect.gen(function*() {
      const { client, origin } = yield* setup({ strategy: cacheFirst })
      yield* origin.route("/me", me("public, max-age=60"))
      const a1 = yield* read(yield* client.execute(get(origin.url("/me"), alice)))
      const b1 = yield* read(yield* client.execute(get(origin.url("/me"), bob)))
      const a2 = yield* read(yield* client.execute(get(origin.url("/me"), alice)))
      const b2 = yield* read(yield* client.execute(get(origin.url("/me"), bob)))
      assert.deepStrictEqual([a1.body, b1.body, a2.body, b2.body], [
        "{\"user\":\"alice-secret-token\"}",
        "{\"user\":\"bob-secret-token\"}",
        "{\"user\":\"alice-secret-token\"}",
        "{\"user\":\"bob-secret-token\"}"
      ])
      for (const answer of [a1, b1, a2, b2]) {
        assert.strictEqual(answer.status, "bypass")
        assert.strictEqual(answer.bypass, "credentials")
      }
      assert.strictEqual((yield* origin.stats("/me")).requests, 4, "nothing was served from the cache")
      // an anonymous request is cached as usual
      assert.strictEqual((yield* read(yield* client.execute(get(origin.url("/me"))))).status, "miss")
      assert.strictEqual((yield* read(yield* client.execute(get(origin.url("/me"))))).status, "hit")
      const store = yield* CacheStore.CacheStore
      assert.strictEqual(yield* store.deletePrefix("http:"), 1, "only the anonymous response was stored")
    }).pipe(Effect.scoped, Effect.provide(serialisingStore)))

  it.live("a Cookie is a credential too", () =>
    Effect.gen(function*() {
      const { client, origin } = yield* setup({ strategy: cacheFirst })
      yield* origin.route("/me", me())
      const carol = yield* read(yield* client.execute(get(origin.url("/me"), { cookie: "session=carol" })))
      const dave = yield* read(yield* client.execute(get(origin.url("/me"), { cookie: "session=dave" })))
      assert.strictEqual(carol.body, "{\"user\":\"carol\"}")
      assert.strictEqual(dave.body, "{\"user\":\"dave\"}")
      assert.strictEqual(dave.bypass, "credentials")
    }).pipe(Effect.scoped, Effect.provide(CacheStore.layerMemory)))

  it.live("perUser: each user gets their own entries (even private ones); the credential never reaches the store", () =>
    Effect.gen(function*() {
      const { client, origin } = yield* setup({ strategy: cacheFirst, perUser: true })
      yield* origin.route("/me", me("private, max-age=60"))
      const a1 = yield* read(yield* client.execute(get(origin.url("/me"), alice)))
      const b1 = yield* read(yield* client.execute(get(origin.url("/me"), bob)))
      const a2 = yield* read(yield* client.execute(get(origin.url("/me"), alice)))
      const b2 = yield* read(yield* client.execute(get(origin.url("/me"), bob)))
      assert.deepStrictEqual([a1.status, b1.status, a2.status, b2.status], ["miss", "miss", "hit", "hit"])
      assert.strictEqual(a2.body, "{\"user\":\"alice-secret-token\"}")
      assert.strictEqual(b2.body, "{\"user\":\"bob-secret-token\"}")
      assert.strictEqual((yield* origin.stats("/me")).requests, 2)
      // a private response to an anonymous request is shared: not stored
      const anonymous = yield* read(yield* client.execute(get(origin.url("/me"))))
      assert.strictEqual(anonymous.bypass, "private")
      // the raw store holds neither token: keys carry a digest, the stored request headers omit it
      const kv = yield* KeyValueStore.KeyValueStore
      const keys = JSON.parse(Option.getOrElse(yield* kv.get("stalewise/i"), () => "[]")) as Array<string>
      assert.strictEqual(keys.length, 2, "one entry per user")
      let contents = keys.join("\n")
      for (const key of keys) contents += Option.getOrElse(yield* kv.get(`stalewise/v/${key}`), () => "")
      assert.isAbove(contents.length, 0)
      assert.notInclude(contents, "secret-token")
    }).pipe(Effect.scoped, Effect.provide(inspectableStore)))

  it.live("dangerouslyShareAcrossCredentials: one entry for every caller, but private is still never shared", () =>
    Effect.gen(function*() {
      const { client, origin } = yield* setup({ strategy: cacheFirst, dangerouslyShareAcrossCredentials: true })
      yield* origin.route("/me", me("max-age=60"))
      yield* client.execute(get(origin.url("/me"), alice))
      const b = yield* read(yield* client.execute(get(origin.url("/me"), bob)))
      assert.strictEqual(b.status, "hit")
      assert.strictEqual(b.body, "{\"user\":\"alice-secret-token\"}", "shared on purpose: the option says so")
      yield* origin.route("/private", me("private"))
      yield* client.execute(get(origin.url("/private"), alice))
      const p = yield* read(yield* client.execute(get(origin.url("/private"), bob)))
      assert.strictEqual(p.bypass, "private")
      assert.strictEqual(p.body, "{\"user\":\"bob-secret-token\"}")
    }).pipe(Effect.scoped, Effect.provide(CacheStore.layerMemory)))

  it.effect("perUser and dangerouslyShareAcrossCredentials together are a PolicyError", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(
        setup({ strategy: cacheFirst, perUser: true, dangerouslyShareAcrossCredentials: true })
      )
      assert.strictEqual(error._tag, "PolicyError")
      assert.strictEqual(error.reason, "InvalidCombination")
    }).pipe(Effect.scoped, Effect.provide(CacheStore.layerMemory)))

  it.live("extra credential headers (an API key) bypass too", () =>
    Effect.gen(function*() {
      const { client, origin } = yield* setup({
        strategy: cacheFirst,
        credentialHeaders: ["Authorization", "Cookie", "X-Api-Key"]
      })
      yield* origin.route("/me", (request) => ({ body: request.headers["x-api-key"] ?? "none" }))
      yield* client.execute(get(origin.url("/me"), { "x-api-key": "k1" }))
      const second = yield* read(yield* client.execute(get(origin.url("/me"), { "x-api-key": "k2" })))
      assert.strictEqual(second.body, "k2")
      assert.strictEqual(second.bypass, "credentials")
      assert.strictEqual(CachedHttpClient.bypassHeader, "x-stalewise-bypass")
    }).pipe(Effect.scoped, Effect.provide(CacheStore.layerMemory)))
})
