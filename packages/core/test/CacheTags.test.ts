/**
 * Tags in the stored form, and the tag service's own rules.
 */
import { KeyValueStore } from "@effect/platform"
import { assert, describe, it } from "@effect/vitest"
import { CacheEntry, CacheStore, CacheTags, EntryCodec } from "@stalewise/core"
import { Effect, Either, Option, Schema, TestClock } from "effect"

const context = { backend: "test", method: "set" }

describe("CacheTags", () => {
  it("the envelope round-trips tags; entries written before tags decode untagged; bad tags are corrupt", () => {
    const tagged = CacheEntry.make({ value: 1, createdAt: 0, staleAt: 10, expiresAt: 20, tags: ["a", "b:1"] })
    const json = Either.getOrThrow(EntryCodec.encode(tagged, Schema.Number, context))
    assert.deepStrictEqual(Option.getOrThrow(EntryCodec.decode(json, Schema.Number)), tagged)
    const old = "{\"$\":1,\"v\":1,\"c\":0,\"s\":10,\"e\":null}"
    const decoded = Option.getOrThrow(EntryCodec.decode(old, undefined))
    assert.isFalse("tags" in decoded)
    assert.isTrue(
      Option.isNone(EntryCodec.decode("{\"$\":1,\"v\":1,\"c\":0,\"s\":10,\"e\":null,\"g\":[1]}", undefined))
    )
    const untagged = CacheEntry.withTags(tagged, [])
    assert.isFalse(Either.getOrThrow(EntryCodec.encode(untagged, undefined, context)).includes("\"g\""))
  })

  it.effect("a serialising store keeps the tags", () =>
    Effect.gen(function*() {
      const store = yield* CacheStore.makeKeyValueStore()
      const entry = CacheEntry.make({ value: "v", createdAt: 0, staleAt: 10, expiresAt: Infinity, tags: ["users"] })
      yield* store.set("k", entry, Schema.String)
      assert.deepStrictEqual(Option.getOrThrow(yield* store.get("k", Schema.String)).tags, ["users"])
    }).pipe(Effect.provide(KeyValueStore.layerMemory)))

  it.scoped("soft and hard against createdAt; hard wins; entries written after are valid", () =>
    Effect.gen(function*() {
      const store = yield* CacheStore.makeMemory()
      const tags = yield* CacheTags.makeWith(store)
      const at = (createdAt: number, entryTags: ReadonlyArray<string>) =>
        CacheEntry.make({ value: 0, createdAt, staleAt: createdAt + 1_000, expiresAt: Infinity, tags: entryTags })
      yield* TestClock.adjust(100)
      yield* tags.invalidate("s")
      yield* TestClock.adjust(100)
      yield* tags.invalidate("h", { mode: "hard" })
      assert.strictEqual(yield* tags.check(at(50, ["s"])), "soft")
      assert.strictEqual(yield* tags.check(at(100, ["s"])), "valid")
      assert.strictEqual(yield* tags.check(at(150, ["s", "h"])), "hard")
      assert.strictEqual(yield* tags.check(at(250, ["s", "h"])), "valid")
      assert.strictEqual(yield* tags.check(at(0, ["other"])), "valid")
      // a soft invalidation after a hard one keeps the hard time
      yield* TestClock.adjust(100)
      yield* tags.invalidate("h", { mode: "soft" })
      assert.strictEqual(yield* tags.check(at(150, ["h"])), "hard")
      assert.strictEqual(yield* tags.check(at(250, ["h"])), "soft")
      // the times live in the store: a new service reads them
      const fresh = yield* CacheTags.makeWith(store)
      assert.strictEqual(yield* fresh.check(at(150, ["h"])), "hard")
    }))

  it.scoped("refreshInterval must be positive and finite", () =>
    Effect.gen(function*() {
      const store = yield* CacheStore.makeMemory()
      const exit = yield* Effect.exit(CacheTags.makeWith(store, { refreshInterval: 0 }))
      assert.strictEqual(exit._tag, "Failure")
    }))
})
