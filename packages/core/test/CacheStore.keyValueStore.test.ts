import { Error as PlatformError, KeyValueStore } from "@effect/platform"
import { NodeContext, NodeKeyValueStore } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import { CacheEntry, CacheStore } from "@stalewise/core"
import { Effect, Layer, Option } from "effect"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { suite } from "./CacheStoreSuite.js"

// What a corrupted entry looks like to the store: bytes that are not an entry envelope.
const corrupt = (key: string) =>
  Effect.flatMap(KeyValueStore.KeyValueStore, (kv) => kv.set(`stalewise/v/${key}`, "{not json"))

const memoryBacked = Layer.provideMerge(CacheStore.layerKeyValueStore, KeyValueStore.layerMemory)
suite("KeyValueStore (memory)", memoryBacked, { serializes: true, corrupt })

const directory = Fs.mkdtempSync(Path.join(Os.tmpdir(), "stalewise-kvs-"))
const fileBacked = Layer.provideMerge(
  CacheStore.layerKeyValueStore,
  NodeKeyValueStore.layerFileSystem(directory).pipe(Layer.provide(NodeContext.layer))
)
suite("KeyValueStore (file system)", fileBacked, { serializes: true, corrupt })

// A KeyValueStore whose backend is gone: every operation fails.
const failingKeyValueStore = KeyValueStore.makeStringOnly({
  get: () => Effect.fail(down("get")),
  set: () => Effect.fail(down("set")),
  remove: () => Effect.fail(down("remove")),
  clear: Effect.fail(down("clear")),
  size: Effect.fail(down("size"))
})
function down(method: string) {
  return new PlatformError.SystemError({ reason: "Unknown", module: "KeyValueStore", method, description: "disk gone" })
}

describe("CacheStore.layerKeyValueStore", () => {
  const entry = <A>(value: A) => CacheEntry.make({ value, createdAt: 0, staleAt: 1_000, expiresAt: 60_000 })

  it.effect("keeps to its own prefix: other keys in the KeyValueStore are never touched", () =>
    Effect.gen(function*() {
      const kv = yield* KeyValueStore.KeyValueStore
      yield* kv.set("app/settings", "keep me")
      const store = yield* CacheStore.makeKeyValueStore({ prefix: "cache-a/" })
      const other = yield* CacheStore.makeKeyValueStore({ prefix: "cache-b/" })
      yield* store.set("ns:fn:1", entry(1))
      yield* other.set("ns:fn:1", entry(2))
      assert.strictEqual(yield* store.deletePrefix("ns:"), 1)
      assert.deepStrictEqual(yield* kv.get("app/settings"), Option.some("keep me"))
      assert.strictEqual(Option.getOrThrow(yield* other.get("ns:fn:1")).value, 2)
    }).pipe(Effect.provide(KeyValueStore.layerMemory)))

  it.effect("a second store over the same KeyValueStore sees the entries and the index", () =>
    Effect.gen(function*() {
      const first = yield* CacheStore.makeKeyValueStore()
      yield* first.set("ns:fn:1", entry("v"))
      const second = yield* CacheStore.makeKeyValueStore()
      assert.strictEqual(Option.getOrThrow(yield* second.get("ns:fn:1")).value, "v")
      assert.strictEqual(yield* second.deletePrefix("ns:"), 1)
      assert.isTrue(Option.isNone(yield* first.get("ns:fn:1")))
    }).pipe(Effect.provide(KeyValueStore.layerMemory)))

  it.effect("a failing KeyValueStore surfaces as CacheStoreError Unavailable", () =>
    Effect.gen(function*() {
      const store = yield* CacheStore.makeKeyValueStore()
      const error = yield* Effect.flip(store.get("ns:fn:1"))
      assert.strictEqual(error._tag, "CacheStoreError")
      assert.strictEqual(error.reason, "Unavailable")
      assert.strictEqual(error.method, "get")
      assert.strictEqual((yield* Effect.flip(store.set("ns:fn:1", entry(1)))).reason, "Unavailable")
    }).pipe(Effect.provide(Layer.succeed(KeyValueStore.KeyValueStore, failingKeyValueStore))))
})
