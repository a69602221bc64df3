/**
 * Handles on a cached RPC client's caches, against a real @effect/rpc server over HTTP on
 * 127.0.0.1 (`it.live`: a network server is involved).
 */
import { KeyValueStore } from "@effect/platform"
import { assert, describe, it } from "@effect/vitest"
import { CacheStore } from "@stalewise/core"
import { CachedRpcClient, Strategy } from "@stalewise/rpc"
import { Effect, Layer, Option } from "effect"
import * as ControlledServer from "./fixtures/ControlledServer.js"
import { userFor, UserRpcs } from "./fixtures/UserRpcs.js"

const serialisingStore = Layer.provide(CacheStore.layerKeyValueStore, KeyValueStore.layerMemory)

describe("CachedRpcClient handles", () => {
  it.live("peek, invalidate and invalidateAll by payload; uncached RPCs have inert handles", () =>
    Effect.gen(function*() {
      const server = yield* ControlledServer.make()
      const { client, handles } = yield* CachedRpcClient.makeWithHandles(UserRpcs, {
        GetUser: Strategy.cacheFirst({ timeToLive: "1 minute" }),
        ListUsers: Strategy.failover({ timeout: "1 second" })
      }).pipe(Effect.provide(ControlledServer.layerProtocol(server)))
      const control = server.control
      yield* client.GetUser({ id: 1 })
      yield* client.GetUser({ id: 2 })
      assert.deepStrictEqual(Option.getOrThrow(yield* handles.GetUser.peek({ id: 1 })).value, userFor(1))
      yield* handles.GetUser.invalidate({ id: 1 })
      yield* client.GetUser({ id: 1 })
      yield* client.GetUser({ id: 2 })
      assert.strictEqual(yield* control.calls("GetUser"), 3, "only the invalidated payload was asked again")
      yield* handles.GetUser.invalidateAll
      yield* client.GetUser({ id: 2 })
      assert.strictEqual(yield* control.calls("GetUser"), 4)
      // set: a value the server will not be asked for
      yield* handles.GetUser.set([{ id: 9 }], userFor(42))
      assert.deepStrictEqual(yield* client.GetUser({ id: 9 }), userFor(42))
      assert.strictEqual(yield* control.calls("GetUser"), 4)
      // failover handles see the store, through the success schema
      yield* client.ListUsers({ limit: 2 })
      assert.strictEqual(Option.getOrThrow(yield* handles.ListUsers.peek({ limit: 2 })).value.length, 2)
      yield* handles.ListUsers.invalidate({ limit: 2 })
      assert.isTrue(Option.isNone(yield* handles.ListUsers.peek({ limit: 2 })))
      assert.isFalse(handles.Echo.cached)
    }).pipe(Effect.scoped, Effect.provide(serialisingStore)))
})
