/**
 * The cached RPC client against a real @effect/rpc server over HTTP on 127.0.0.1. Real time is
 * used on purpose (`it.live`): a network server is involved; waits are short.
 */
import { KeyValueStore } from "@effect/platform"
import { Rpc, RpcGroup } from "@effect/rpc"
import { assert, describe, it } from "@effect/vitest"
import { CacheStore } from "@stalewise/core"
import { CachedRpcClient, Strategy } from "@stalewise/rpc"
import { Duration, Effect, Layer, Schema } from "effect"
import * as ControlledServer from "./fixtures/ControlledServer.js"
import { User, userFor, UserRpcs } from "./fixtures/UserRpcs.js"

// A serialising store: values must come back through the RPC's success schema.
const serialisingStore = Layer.provide(CacheStore.layerKeyValueStore, KeyValueStore.layerMemory)

/** A server and a cached client over it, with the given strategies. */
const setup = (spec: CachedRpcClient.Spec<RpcGroup.Rpcs<typeof UserRpcs>>) =>
  Effect.gen(function*() {
    const server = yield* ControlledServer.make()
    const client = yield* CachedRpcClient.make(UserRpcs, spec).pipe(
      Effect.provide(ControlledServer.layerProtocol(server))
    )
    return { server, control: server.control, client }
  })

const timed = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.map(Effect.timed(effect), ([duration, value]) => [Duration.toMillis(duration), value] as const)

describe("CachedRpcClient", () => {
  it.live("failover on error: the stored User comes back exactly (Date, bigint, brand)", () =>
    Effect.gen(function*() {
      const { client, control } = yield* setup({ GetUser: Strategy.failover({ timeout: "1 second" }) })
      const fresh = yield* client.GetUser({ id: 7 })
      yield* control.fail("GetUser")
      const served = yield* client.GetUser({ id: 7 })
      assert.instanceOf(served, User)
      assert.deepStrictEqual(served, fresh)
      assert.deepStrictEqual(served, userFor(7))
      assert.strictEqual(yield* control.calls("GetUser"), 2, "failover always asks the server")
    }).pipe(Effect.scoped, Effect.provide(serialisingStore)))

  it.live("failover on timeout: a hung server costs one timeout, then answers come at once", () =>
    Effect.gen(function*() {
      const { client, control } = yield* setup({ GetUser: Strategy.failover({ timeout: "100 millis" }) })
      yield* client.GetUser({ id: 3 })
      yield* control.setVersion(2)
      yield* control.hang("GetUser")
      const [first, user] = yield* timed(client.GetUser({ id: 3 }))
      assert.isAtLeast(first, 95)
      assert.strictEqual(user.version, 1, "the stored value")
      const [second] = yield* timed(client.GetUser({ id: 3 }))
      assert.isBelow(second, 50, "the call is overdue: no second wait")
      // the hung call lands when the server answers, and its value is stored
      yield* control.release("GetUser")
      yield* Effect.sleep("100 millis")
      yield* control.fail("GetUser")
      assert.strictEqual((yield* client.GetUser({ id: 3 })).version, 2)
      assert.strictEqual(yield* control.calls("GetUser"), 3, "the overdue call was shared, not repeated")
    }).pipe(Effect.scoped, Effect.provide(serialisingStore)))

  it.live("the server's domain errors pass through when fallbackOn says so", () =>
    Effect.gen(function*() {
      const { client } = yield* setup({
        GetUser: Strategy.failover({ timeout: "1 second", fallbackOn: (error) => error._tag !== "UserNotFound" })
      })
      const error = yield* Effect.flip(client.GetUser({ id: 1_000 }))
      assert.strictEqual(error._tag, "UserNotFound")
    }).pipe(Effect.scoped, Effect.provide(CacheStore.layerMemory)))

  it.live("cache-first: a hit makes no server call; uncached RPCs pass through", () =>
    Effect.gen(function*() {
      const { client, control } = yield* setup({ ListUsers: Strategy.cacheFirst({ timeToLive: "1 minute" }) })
      const first = yield* client.ListUsers({ limit: 3 })
      const second = yield* client.ListUsers({ limit: 3 })
      assert.deepStrictEqual(second, first)
      assert.strictEqual(yield* control.calls("ListUsers"), 1)
      yield* client.ListUsers({ limit: 4 })
      assert.strictEqual(yield* control.calls("ListUsers"), 2, "another payload is another key")
      yield* client.GetUser({ id: 1 })
      yield* client.GetUser({ id: 1 })
      assert.strictEqual(yield* control.calls("GetUser"), 2, "GetUser is not cached")
    }).pipe(Effect.scoped, Effect.provide(serialisingStore)))

  it.live("concurrent identical calls make one server call", () =>
    Effect.gen(function*() {
      const { client, control } = yield* setup({ GetUser: Strategy.cacheFirst({ timeToLive: "1 minute" }) })
      yield* control.slow("GetUser", "50 millis")
      const users = yield* Effect.all(Array.from({ length: 50 }, () => client.GetUser({ id: 2 })), {
        concurrency: "unbounded"
      })
      assert.isTrue(users.every((user) => user.id === 2))
      assert.strictEqual(yield* control.calls("GetUser"), 1)
    }).pipe(Effect.scoped, Effect.provide(CacheStore.layerMemory)))

  it.live("keys come from the encoded payload: equal payloads share an entry, Dates and bigints included", () =>
    Effect.gen(function*() {
      const { client, control } = yield* setup({ Echo: Strategy.cacheFirst({ timeToLive: "1 minute" }) })
      const message = { text: "hi", at: new Date(1_700_000_000_123), amount: 2n ** 64n }
      const first = yield* client.Echo(message)
      const again = yield* client.Echo({ amount: 2n ** 64n, text: "hi", at: new Date(1_700_000_000_123) })
      assert.deepStrictEqual(again, first)
      assert.strictEqual(yield* control.calls("Echo"), 1)
      yield* client.Echo({ ...message, at: new Date(1_700_000_000_124) })
      assert.strictEqual(yield* control.calls("Echo"), 2)
    }).pipe(Effect.scoped, Effect.provide(serialisingStore)))

  it.live("values fetched by one client serve another client sharing the store", () =>
    Effect.gen(function*() {
      const server = yield* ControlledServer.make()
      const makeClient = CachedRpcClient.make(UserRpcs, {
        GetUser: Strategy.cacheFirst({ timeToLive: "1 minute", persisted: true })
      }).pipe(Effect.provide(ControlledServer.layerProtocol(server)))
      const a = yield* makeClient
      const b = yield* makeClient
      const user = yield* a.GetUser({ id: 9 })
      assert.deepStrictEqual(yield* b.GetUser({ id: 9 }), user)
      assert.strictEqual(yield* server.control.calls("GetUser"), 1)
    }).pipe(Effect.scoped, Effect.provide(serialisingStore)))

  it.live("a streaming RPC cannot be cached: PolicyError", () =>
    Effect.gen(function*() {
      class Streaming extends RpcGroup.make(Rpc.make("Ticks", { success: Schema.Number, stream: true })) {}
      const server = yield* ControlledServer.make()
      const error = yield* Effect.flip(
        CachedRpcClient.make(Streaming, { Ticks: Strategy.cacheFirst({ timeToLive: "1 minute" }) } as any).pipe(
          Effect.provide(ControlledServer.layerProtocol(server))
        )
      )
      assert.strictEqual(error._tag, "PolicyError")
      assert.strictEqual(error.option, "Ticks")
    }).pipe(Effect.scoped, Effect.provide(CacheStore.layerMemory)))
})
