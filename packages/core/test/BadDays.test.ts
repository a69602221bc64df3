/**
 * Bad days with a store: deletes it refuses are failures the caller sees, an outage costs one
 * warning per kind per interval (with a count) instead of one per call, and what a schema
 * rejects is summarised in logs and errors without the value.
 */
import { KeyValueStore } from "@effect/platform"
import { assert, describe, it } from "@effect/vitest"
import { CacheEntry, CacheFirst, CacheStore, Diagnostics, EntryCodec, Failover } from "@stalewise/core"
import { Duration, Effect, Either, FiberRef, Layer, Logger, LogLevel, Option, Schema, TestClock } from "effect"

const KeyValueStoreMemory = KeyValueStore.layerMemory

const down = (method: string) =>
  new CacheStore.CacheStoreError({ reason: "Unavailable", backend: "memory", method, cause: new Error("refused") })

/** A memory store whose chosen operations fail, as a Redis refusing UNLINK or SCAN does. */
const refusing = (methods: ReadonlyArray<keyof CacheStore.CacheStore.Service>) =>
  Layer.effect(
    CacheStore.CacheStore,
    Effect.map(CacheStore.makeMemory(), (store): CacheStore.CacheStore.Service => {
      const failing: Record<string, unknown> = { ...store }
      for (const method of methods) failing[method] = () => Effect.fail(down(method))
      if (methods.includes("deletePrefix" as never)) failing.deletePrefix = () => Effect.fail(down("deletePrefix"))
      return failing as unknown as CacheStore.CacheStore.Service
    })
  ).pipe(Layer.orDie)

/** Captures every log line: message and annotations. */
const captureLogs = () => {
  const lines: Array<{ readonly level: string; readonly text: string }> = []
  const logger = Logger.make(({ annotations, logLevel, message }) => {
    const text = [
      Array.isArray(message) ? message.join(" ") : String(message),
      ...[...annotations].map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`)
    ].join(" ")
    lines.push({ level: logLevel.label, text })
  })
  return {
    lines,
    layer: Layer.merge(Logger.replace(Logger.defaultLogger, logger), Logger.minimumLogLevel(LogLevel.All))
  }
}

describe("failed invalidations are not successes", () => {
  it.scoped("Failover.invalidate, CacheFirst.invalidate and invalidateAll fail with CacheStoreError", () =>
    Effect.gen(function*() {
      const lookup = (id: number) => Effect.succeed(id)
      const failover = yield* Failover.make({ name: "f", lookup, timeout: "1 second" })
      const cacheFirst = yield* CacheFirst.makePersisted({ name: "c", lookup, timeToLive: "1 hour" })
      yield* failover.get(1)
      yield* cacheFirst.get(1)
      const errors = [
        yield* Effect.flip(failover.invalidate(1)),
        yield* Effect.flip(cacheFirst.invalidate(1)),
        yield* Effect.flip(cacheFirst.invalidateAll)
      ]
      assert.deepStrictEqual(errors.map((e) => [e._tag, e.reason]), [
        ["CacheStoreError", "Unavailable"],
        ["CacheStoreError", "Unavailable"],
        ["CacheStoreError", "Unavailable"]
      ])
      assert.deepStrictEqual(errors.map((e) => (e as CacheStore.CacheStoreError).method), [
        "delete",
        "delete",
        "deletePrefix"
      ])
      // the store still holds the entry: what the caller was told
      assert.strictEqual((yield* failover.peek(1))._tag, "Some")
    }).pipe(Effect.provide(refusing(["delete", "deletePrefix"]))))
})

describe("an outage costs one warning per kind per interval", () => {
  it.scoped("5,500 calls against a store that is down: a line per kind per 10 s window, with a count", () => {
    const logs = captureLogs()
    return Effect.gen(function*() {
      const failover = yield* Failover.make({
        name: "f",
        lookup: (id: number) => Effect.succeed(id),
        timeout: "1 second"
      })
      // 500 calls a second for 11 seconds: two windows
      for (let i = 0; i < 5_500; i++) {
        yield* failover.get(i % 100)
        if (i % 500 === 499) yield* TestClock.adjust("1 second")
      }
      const warnings = logs.lines.filter((line) => line.level === "WARN")
      console.log(`outage of 5,500 calls over 11 s: ${warnings.length} warning lines`)
      // reads and writes fail: two kinds, two windows (0-10 s, 10-11 s)
      assert.strictEqual(warnings.length, 4)
      assert.strictEqual(warnings.filter((w) => w.text.includes("repeated=")).length, 2)
      assert.include(warnings[2]!.text, "repeated=4999")
    }).pipe(Effect.provide(Layer.merge(refusing(["get", "set"]), logs.layer)))
  })

  it.effect("the interval is a FiberRef", () =>
    Effect.gen(function*() {
      const logs = captureLogs()
      const warnings = Diagnostics.makeWarnings()
      yield* Effect.gen(function*() {
        for (let i = 0; i < 5; i++) {
          yield* warnings.warn("k", "down", {})
          yield* TestClock.adjust("1 second")
        }
      }).pipe(Effect.locally(Diagnostics.currentWarningInterval, Duration.seconds(2)), Effect.provide(logs.layer))
      assert.strictEqual(logs.lines.length, 3)
      assert.strictEqual(
        yield* FiberRef.get(Diagnostics.currentWarningInterval).pipe(Effect.map(String)),
        "Duration(10s)"
      )
    }))
})

describe("no values in logs or errors", () => {
  const Card = Schema.Struct({ number: Schema.String.pipe(Schema.pattern(/^\d+$/)) })
  const secret = "SECRET-CARD-4111-1111"

  it("a value its schema rejects: CacheStoreError Encode summarised by path and reason", () => {
    const entry = CacheEntry.make({ value: { number: secret }, createdAt: 0, staleAt: 1, expiresAt: 2 })
    const error = Either.flip(EntryCodec.encode(entry, Card, { backend: "b", method: "set" }))
    assert.isTrue(Either.isRight(error))
    const e = Either.getOrThrow(error)
    assert.strictEqual(e.reason, "Encode")
    assert.include(e.message, "Refinement at $.number")
    assert.notInclude(e.message, "SECRET")
    assert.notInclude(JSON.stringify(e), "SECRET")
    assert.notInclude(String((e.cause as Error).stack), "SECRET")
  })

  it.scoped("the warning of a write that did not encode carries no value", () => {
    const logs = captureLogs()
    return Effect.gen(function*() {
      const cards = yield* Failover.make({
        name: "cards",
        schema: Card,
        lookup: (_: number) => Effect.succeed({ number: secret }),
        timeout: "1 second"
      })
      yield* cards.get(1)
      assert.isTrue(logs.lines.some((line) => line.text.includes("store write failed")))
      assert.isFalse(logs.lines.some((line) => line.text.includes("SECRET")))
    }).pipe(
      Effect.provide(Layer.merge(
        CacheStore.layerKeyValueStore.pipe(Layer.provide(KeyValueStoreMemory)),
        logs.layer
      ))
    )
  })
})

describe("what a serialising store hands back", () => {
  const entry = CacheEntry.make({ value: new Date(0), createdAt: 0, staleAt: 1_000, expiresAt: 60_000 })

  it.effect("an entry written through a schema is never handed back without one (its encoded form is not the value)", () =>
    Effect.gen(function*() {
      const store = yield* CacheStore.makeKeyValueStore()
      yield* store.set("ns:fn:1", entry, Schema.Date)
      assert.instanceOf(Option.getOrThrow(yield* store.get("ns:fn:1", Schema.Date)).value, Date)
      assert.isTrue(Option.isNone(yield* store.get("ns:fn:1")), "not the ISO string posing as a Date")
      // written without a schema, read without one: JSON as is
      yield* store.set("ns:fn:2", CacheEntry.make({ ...entry, value: { n: 1 } }))
      assert.deepStrictEqual(Option.getOrThrow(yield* store.get("ns:fn:2")).value, { n: 1 })
    }).pipe(Effect.provide(KeyValueStoreMemory)))

  it("only exact envelopes decode", () => {
    const good = { $: 1, v: 1, c: 0, s: 1, e: null }
    assert.isTrue(Option.isSome(EntryCodec.decode(JSON.stringify(good), undefined)))
    for (
      const bad of [
        { ...good, extra: 1 },
        { ...good, c: "0" },
        { ...good, c: 2, s: 1 },
        { ...good, s: 5, e: 4 },
        { ...good, $: 2 },
        { ...good, t: 2 },
        { $: 1, c: 0, s: 1, e: null },
        [good]
      ]
    ) {
      assert.isTrue(Option.isNone(EntryCodec.decode(JSON.stringify(bad), undefined)), JSON.stringify(bad))
    }
    assert.isTrue(Option.isNone(EntryCodec.decode(`{"$":1,"v":1,"c":0,"s":1e999,"e":null}`, undefined)))
  })
})

describe("user code and deep data in the store's path", () => {
  interface Tree {
    readonly children: ReadonlyArray<Tree>
  }
  const Tree: Schema.Schema<Tree> = Schema.Struct({ children: Schema.Array(Schema.suspend(() => Tree)) })

  it.effect("a recursive schema over stored data nested past the stack: a miss, not a defect", () =>
    Effect.gen(function*() {
      const kv = yield* KeyValueStore.KeyValueStore
      const store = yield* CacheStore.makeKeyValueStore()
      const depth = 50_000
      const deep = `${"{\"children\":[".repeat(depth)}${"]}".repeat(depth)}`
      yield* kv.set("stalewise/v/ns:fn:1", `{"$":1,"v":${deep},"c":0,"s":1,"e":null,"t":1}`)
      assert.isTrue(Option.isNone(yield* store.get("ns:fn:1", Tree)))
      let tree: Tree = { children: [] }
      for (let i = 0; i < depth; i++) tree = { children: [tree] }
      const error = yield* Effect.flip(
        store.set("ns:fn:2", CacheEntry.make({ value: tree, createdAt: 0, staleAt: 1, expiresAt: 2 }), Tree)
      )
      assert.strictEqual(error.reason, "Encode")
    }).pipe(Effect.provide(KeyValueStoreMemory)))

  it.effect("a sizeOf that throws or answers NaN falls back to the estimate", () =>
    Effect.gen(function*() {
      for (
        const sizeOf of [() => {
          throw new Error("no")
        }, () =>
          NaN, () =>
          -1]
      ) {
        const store = yield* CacheStore.makeMemory({ maxBytes: 1_000_000, sizeOf })
        yield* store.set("ns:fn:1", CacheEntry.make({ value: "v", createdAt: 0, staleAt: 1, expiresAt: Infinity }))
        assert.strictEqual(Option.getOrThrow(yield* store.get("ns:fn:1")).value, "v")
      }
    }))
})
