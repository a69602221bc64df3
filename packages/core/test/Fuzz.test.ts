/**
 * Fuzzing: arbitrary values for key derivation (deep, wide, cyclic, exotic prototypes, Proxies,
 * strings with any code units) and arbitrary bytes for every store's decode path (memory,
 * KeyValueStore over memory, file system). Never a defect, never a thrown exception: only values
 * or typed errors.
 */
import { KeyValueStore } from "@effect/platform"
import { NodeContext } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import { CacheEntry, CacheKey, CacheStore, EntryCodec } from "@stalewise/core"
import { Cause, Effect, Either, Exit, FastCheck as fc, Option, Schema } from "effect"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { isDeepStrictEqual } from "node:util"

// --- Values ------------------------------------------------------------------------------------

const plain = fc.anything({
  withBigInt: true,
  withDate: true,
  withMap: true,
  withSet: true,
  withBoxedValues: true,
  withTypedArray: true,
  withNullPrototype: true,
  withSparseArray: true,
  withObjectString: true,
  stringUnit: "binary",
  maxDepth: 4
})

const prototypes = [null, Object.prototype, Array.prototype, Map.prototype, Date.prototype, { inherited: 1 }]

/**
 * Values as a hostile caller builds them: nesting past the stack, cycles, prototypes, Proxies.
 * Generated as recipes (fast-check itself must not touch a Proxy whose traps throw).
 */
const hostile: fc.Arbitrary<() => unknown> = fc.oneof(
  plain.map((value) => () => value),
  // deep
  fc.tuple(fc.integer({ min: 500, max: 20_000 }), fc.boolean(), plain).map(([depth, asArray, leaf]) => () => {
    let value: unknown = leaf
    for (let i = 0; i < depth; i++) value = asArray ? [value] : { a: value }
    return value
  }),
  // wide
  fc.tuple(fc.integer({ min: 1_000, max: 50_000 }), plain).map(([width, leaf]) => () => Array(width).fill(leaf)),
  // cyclic, at any depth
  fc.tuple(fc.array(fc.string(), { minLength: 1, maxLength: 5 }), plain).map(([path, leaf]) => () => {
    const root: Record<string, unknown> = {}
    let at = root
    for (const key of path) at = (at[key] = { leaf }) as Record<string, unknown>
    at.back = root
    return root
  }),
  // exotic prototypes
  fc.tuple(fc.constantFrom(...prototypes), fc.dictionary(fc.string(), plain, { maxKeys: 3 })).map(
    ([proto, fields]) => () => Object.assign(Object.create(proto), fields)
  ),
  // Proxies whose traps throw, and revoked ones
  fc.tuple(fc.constantFrom("ownKeys", "get", "getPrototypeOf", "has", "revoked"), plain).map(([trap, target]) => () => {
    const object = typeof target === "object" && target !== null ? target : { target }
    if (trap === "revoked") {
      const { proxy, revoke } = Proxy.revocable(object, {})
      revoke()
      return proxy
    }
    return new Proxy(object, {
      [trap]: () => {
        throw new Error("trap")
      }
    })
  }),
  // throwing getters
  plain.map((value) => () => ({
    value,
    get boom(): never {
      throw new Error("getter")
    }
  }))
)

describe("fuzz: key derivation", () => {
  it.prop("any value gives a key or a CacheKeyError, never a thrown exception", [hostile], ([build]) => {
    const result = CacheKey.make("ns", "fn", [build()])
    if (Either.isLeft(result)) assert.instanceOf(result.left, CacheKey.CacheKeyError)
    else assert.match(result.right.digest, /^[A-Za-z0-9_-]{22}$/)
  }, { fastCheck: { numRuns: 300 } })

  it.prop(
    "two values share an encoding exactly when isDeepStrictEqual says so",
    [plain, plain],
    ([a, b]) => {
      const [ea, eb] = [CacheKey.encode(a), CacheKey.encode(b)]
      if (Either.isRight(ea) && Either.isRight(eb)) {
        assert.strictEqual(ea.right === eb.right, isDeepStrictEqual(a, b))
      }
      if (Either.isRight(ea)) assert.strictEqual(Either.getOrThrow(CacheKey.encode(a)), ea.right, "deterministic")
    },
    { fastCheck: { numRuns: 500 } }
  )

  it.prop("a value and its structural copy share a key", [plain], ([a]) => {
    const copy = structuredClone(a)
    const [ea, eb] = [CacheKey.encode(a), CacheKey.encode(copy)]
    if (Either.isRight(ea) && Either.isRight(eb) && isDeepStrictEqual(a, copy)) assert.strictEqual(ea.right, eb.right)
  })

  it.prop("strings of any code units: equal keys exactly for equal strings", [
    fc.string({ unit: "binary" }),
    fc.string({ unit: "binary" })
  ], ([a, b]) => {
    const key = (s: string) => Either.getOrThrow(CacheKey.make("ns", "fn", [s])).value
    assert.strictEqual(key(a) === key(b), a === b)
  })
})

// --- Stored bytes --------------------------------------------------------------------------------

/** Bytes as a corrupt disk, another writer or an attacker leaves them: random, or envelope-shaped. */
const storedText = fc.oneof(
  fc.string({ unit: "binary" }),
  fc.uint8Array({ maxLength: 256 }).map((bytes) => Buffer.from(bytes).toString("latin1")),
  fc.record({
    $: fc.oneof(fc.constant(1), plain),
    v: plain,
    c: fc.oneof(fc.double(), fc.integer(), plain),
    s: fc.oneof(fc.double(), fc.integer(), plain),
    e: fc.oneof(fc.constant(null), fc.double(), plain)
  }, { requiredKeys: [] }).map((envelope) => {
    try {
      return JSON.stringify(envelope) ?? ""
    } catch {
      return "{"
    }
  }),
  fc.integer({ min: 1_000, max: 100_000 }).map((depth) =>
    `{"$":1,"v":${"[".repeat(depth)}${"]".repeat(depth)},"c":0,"s":1,"e":null}`
  )
)

const schemas = [undefined, Schema.String, Schema.Struct({ id: Schema.Number }), Schema.Array(Schema.Unknown)] as const

/** Reading must give a value or nothing (a miss), never a failure other than a typed store error, never a defect. */
const readsCleanly = <A, E>(exit: Exit.Exit<A, E>) => {
  if (Exit.isFailure(exit)) {
    assert.isFalse(Cause.isDie(exit.cause), `a defect: ${Cause.pretty(exit.cause)}`)
    const failure = Cause.failureOption(exit.cause)
    assert.isTrue(Option.isSome(failure) && (failure.value as { _tag?: string })._tag === "CacheStoreError")
  }
}

describe("fuzz: every store's decode path", () => {
  it.prop(
    "EntryCodec.decode: any text is an entry or None",
    [storedText, fc.constantFrom(...schemas)],
    ([text, schema]) => {
      const decoded = EntryCodec.decode(text, schema as Schema.Schema<unknown, unknown> | undefined)
      if (Option.isSome(decoded)) {
        assert.isTrue(Number.isFinite(decoded.value.createdAt) && decoded.value.createdAt <= decoded.value.staleAt)
      }
    }
  )

  it("EntryCodec.decode: patches that do not fit the value are a miss, never a write through a prototype", () => {
    const envelope = (v: unknown, p: unknown) => JSON.stringify({ $: 1, v, c: 0, s: 1, e: null, p })
    for (
      const text of [
        envelope({}, [[["__proto__", "polluted"], "u"]]),
        envelope({}, [[["__proto__"], "n"]]),
        envelope({ a: 1 }, [[["missing", "deeper"], "n"]]),
        envelope(1, [[["a"], "u"]]),
        envelope([1], [[[0, 0], "h"]])
      ]
    ) {
      assert.isTrue(Option.isNone(EntryCodec.decode(text, undefined)), text)
    }
    assert.isFalse("polluted" in {})
    // a patch that fits is applied
    const fitting = EntryCodec.decode(envelope({ a: null }, [[["a"], "n"]]), undefined)
    assert.isTrue(Option.isSome(fitting) && Number.isNaN((fitting.value.value as { a: number }).a))
  })

  it.effect.prop(
    "memory: any value is stored and read without a defect",
    [hostile],
    ([build]) =>
      Effect.gen(function*() {
        const store = yield* CacheStore.makeMemory({ capacity: 10, maxBytes: 64 * 1024 * 1024 })
        const entry = CacheEntry.make({ value: build(), createdAt: 0, staleAt: 1, expiresAt: Infinity })
        readsCleanly(yield* Effect.exit(store.set("ns:fn:1", entry)))
        readsCleanly(yield* Effect.exit(store.get("ns:fn:1")))
      }),
    { fastCheck: { numRuns: 100 } }
  )

  it.effect.prop(
    "KeyValueStore (memory): any stored text is a value or a miss",
    [storedText, fc.constantFrom(...schemas)],
    ([text, schema]) =>
      Effect.gen(function*() {
        const kv = yield* KeyValueStore.KeyValueStore
        const store = yield* CacheStore.makeKeyValueStore()
        yield* kv.set("stalewise/v/ns:fn:1", text)
        readsCleanly(yield* Effect.exit(store.get("ns:fn:1", schema as Schema.Schema<unknown, unknown> | undefined)))
      }).pipe(Effect.provide(KeyValueStore.layerMemory))
  )

  const directory = Fs.mkdtempSync(Path.join(Os.tmpdir(), "stalewise-fuzz-"))
  it.live.prop(
    "file system: any bytes in an entry's file are a value or a miss",
    [fc.oneof(storedText.map((text) => Buffer.from(`"ns:fn:1"\n${text}`)), fc.uint8Array({ maxLength: 512 }))],
    ([bytes]) =>
      Effect.gen(function*() {
        const store = yield* CacheStore.makeFileSystem({ directory })
        Fs.writeFileSync(Path.join(directory, "v", encodeURIComponent("ns:fn:1")), bytes)
        for (const schema of schemas) {
          readsCleanly(yield* Effect.exit(store.get("ns:fn:1", schema as Schema.Schema<unknown, unknown> | undefined)))
        }
      }).pipe(Effect.provide(NodeContext.layer)),
    { fastCheck: { numRuns: 50 } }
  )
})
