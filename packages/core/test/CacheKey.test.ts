import { assert, describe, it } from "@effect/vitest"
import { CacheKey } from "@stalewise/core"
import { Chunk, Data, Either, FastCheck as fc, HashMap, HashSet, Option, PrimaryKey } from "effect"
import { isDeepStrictEqual } from "node:util"

const encode = (u: unknown): string => Either.getOrThrow(CacheKey.encode(u))

const keyOf = (args: unknown): string => Either.getOrThrow(CacheKey.make("ns", "fn", args)).value

// Plain data as the property tests see it: everything CacheKey accepts that fast-check can build.
const data = fc.anything({
  withBigInt: true,
  withDate: true,
  withMap: true,
  withSet: true,
  withBoxedValues: false,
  withTypedArray: false,
  withNullPrototype: true,
  withSparseArray: true,
  stringUnit: "binary",
  maxDepth: 3
})

/** The same value rebuilt with every object's keys, map entries and set members in reverse order. */
const reorder = (u: unknown): unknown => {
  if (Array.isArray(u)) return u.map(reorder) // `map` keeps holes
  if (u instanceof Map) return new Map([...u].reverse().map(([k, v]) => [reorder(k), reorder(v)]))
  if (u instanceof Set) return new Set([...u].reverse().map(reorder))
  if (u instanceof Date || typeof u !== "object" || u === null) return u
  const out: Record<string, unknown> = Object.getPrototypeOf(u) === null ? Object.create(null) : {}
  for (const key of Object.keys(u).reverse()) {
    Object.defineProperty(out, key, {
      value: reorder((u as Record<string, unknown>)[key]),
      enumerable: true,
      writable: true,
      configurable: true
    })
  }
  return out
}

class Point extends Data.Class<{ readonly x: number; readonly y: number }> {}
class Vector extends Data.Class<{ readonly x: number; readonly y: number }> {}
class UserId implements PrimaryKey.PrimaryKey {
  constructor(readonly id: string, readonly loadedAt: number) {}
  [PrimaryKey.symbol]() {
    return this.id
  }
}

describe("CacheKey", () => {
  describe("properties", () => {
    it.prop("equal arguments give equal keys whatever the order of object keys", [data], ([value]) => {
      assert.strictEqual(keyOf(reorder(value)), keyOf(value))
    })

    it.prop("two values share an encoding exactly when they are deep-equal", [data, data], ([a, b]) => {
      assert.strictEqual(encode(a) === encode(b), isDeepStrictEqual(a, b))
    })

    it.prop("the digest is 22 base64url characters and the key is namespace:name:digest", [data], ([value]) => {
      const key = Either.getOrThrow(CacheKey.make("users", "get", value))
      assert.match(key.digest, /^[A-Za-z0-9_-]{22}$/)
      assert.strictEqual(key.value, `users:get:${key.digest}`)
      assert.strictEqual(String(key), key.value)
    })
  })

  describe("collisions that naive encodings make", () => {
    const pairs: ReadonlyArray<readonly [string, unknown, unknown]> = [
      ["number vs string", [1], ["1"]],
      ["joined strings", ["a:b"], ["a", "b"]],
      ["separator inside a string", ["a", "b,c"], ["a,b", "c"]],
      ["undefined vs null", [undefined], [null]],
      ["missing vs undefined argument", [], [undefined]],
      ["NaN vs null (JSON)", [NaN], [null]],
      ["-0 vs 0", [-0], [0]],
      ["Infinity vs null (JSON)", [Infinity], [null]],
      ["bigint vs number", [1n], [1]],
      ["bigint vs string", [1n], ["1"]],
      ["Date vs its time", [new Date(0)], [0]],
      ["Date vs its ISO string", [new Date(0)], [new Date(0).toISOString()]],
      ["Uint8Array vs array", [new Uint8Array([1, 2])], [[1, 2]]],
      ["Map vs object", [new Map([["a", 1]])], [{ a: 1 }]],
      ["Set vs array", [new Set([1, 2])], [[1, 2]]],
      ["object with undefined vs empty object", [{ a: undefined }], [{}]],
      ["nested arrays", [[1, [2, 3]]], [[1, 2, 3]]],
      ["array vs object with index keys", [["x"]], [{ 0: "x" }]],
      ["Option.none vs undefined", [Option.none()], [undefined]],
      ["Option.some vs value", [Option.some(1)], [1]],
      ["Either.right vs Either.left", [Either.right(1)], [Either.left(1)]],
      ["Data classes with the same fields", [new Point({ x: 1, y: 2 })], [new Vector({ x: 1, y: 2 })]],
      ["Data class vs plain object", [new Point({ x: 1, y: 2 })], [{ x: 1, y: 2 }]],
      ["true vs 1", [true], [1]],
      ["empty string vs undefined", [""], [undefined]],
      ["two lone surrogates", ["\ud800"], ["\ud801"]],
      ["a lone surrogate vs U+FFFD", ["\ud800"], ["\ufffd"]],
      ["a lone low surrogate vs its escape", ["\udc00"], ["\\udc00"]],
      ["a hole vs undefined", [, 1], [undefined, 1]], // eslint-disable-line no-sparse-arrays
      ["an array with a named property vs a plain array", [Object.assign([1], { extra: 2 })], [[1]]],
      ["a null-prototype object vs {}", [Object.assign(Object.create(null), { a: 1 })], [{ a: 1 }]]
    ]
    for (const [name, a, b] of pairs) {
      it(name, () => {
        assert.notStrictEqual(keyOf(a), keyOf(b))
      })
    }
  })

  describe("structural values", () => {
    it("Data classes, Option, Either, Chunk, HashMap and HashSet key by value", () => {
      assert.strictEqual(keyOf([new Point({ x: 1, y: 2 })]), keyOf([new Point({ x: 1, y: 2 })]))
      assert.strictEqual(keyOf(Option.some({ a: 1, b: 2 })), keyOf(Option.some({ b: 2, a: 1 })))
      assert.strictEqual(keyOf(Either.left("e")), keyOf(Either.left("e")))
      assert.strictEqual(keyOf(Chunk.make(1, 2)), keyOf(Chunk.appendAll(Chunk.of(1), Chunk.of(2))))
      assert.strictEqual(keyOf(HashMap.make(["a", 1], ["b", 2])), keyOf(HashMap.make(["b", 2], ["a", 1])))
      assert.strictEqual(keyOf(HashSet.make(1, 2, 3)), keyOf(HashSet.make(3, 2, 1)))
      assert.notStrictEqual(keyOf(HashSet.make(1, 2)), keyOf(new Set([1, 2])))
    })

    it("a PrimaryKey keys by its primary key alone", () => {
      assert.strictEqual(keyOf([new UserId("u1", 1)]), keyOf([new UserId("u1", 2)]))
      assert.notStrictEqual(keyOf([new UserId("u1", 1)]), keyOf([new UserId("u2", 1)]))
      assert.notStrictEqual(keyOf([new UserId("u1", 1)]), keyOf(["u1"]))
    })

    it("a value referenced twice is not a cycle", () => {
      const shared = { id: 1 }
      assert.isTrue(Either.isRight(CacheKey.make("ns", "fn", [shared, { again: shared }])))
    })

    it("namespace and name are part of the key", () => {
      assert.notStrictEqual(Either.getOrThrow(CacheKey.make("a", "fn", [1])).value, keyOf([1]))
      assert.notStrictEqual(Either.getOrThrow(CacheKey.make("ns", "other", [1])).value, keyOf([1]))
      assert.strictEqual(CacheKey.prefix("ns"), "ns:")
      assert.isTrue(keyOf([1]).startsWith(CacheKey.prefix("ns", "fn")))
    })

    it("fromId uses the caller's id verbatim", () => {
      const key = Either.getOrThrow(CacheKey.fromId("users", "get", "42"))
      assert.strictEqual(key.value, "users:get:42")
      assert.isTrue(CacheKey.isCacheKey(key))
    })
  })

  describe("values that cannot be keyed", () => {
    const cyclic: Record<string, unknown> = { a: 1 }
    cyclic.self = cyclic
    const cyclicArray: Array<unknown> = [1]
    cyclicArray.push([cyclicArray])
    class Socket {
      readonly fd = 3
    }
    const cases: ReadonlyArray<readonly [string, unknown, string, string]> = [
      ["a function", [1, () => 1], "function", "$[1]"],
      ["a symbol", { s: Symbol("x") }, "symbol", "$.s"],
      ["an object cycle", [cyclic], "cycle", "$[0].self"],
      ["an array cycle", cyclicArray, "cycle", "$[1][0]"],
      ["a class instance", [{ conn: new Socket() }], "class Socket", "$[0].conn"],
      ["a promise", [Promise.resolve(1)], "class Promise", "$[0]"],
      ["a WeakMap", [new WeakMap()], "class WeakMap", "$[0]"],
      ["a typed array other than Uint8Array", [new Int16Array(2)], "class Int16Array", "$[0]"],
      ["a symbol-keyed property", [{ [Symbol("k")]: 1 }], "symbol-keyed property", "$[0]"],
      ["a function inside a Map", [new Map([["k", () => 1]])], "function", "$[0].<value 0>"]
    ]
    for (const [name, args, found, path] of cases) {
      it(`${name} fails with a typed CacheKeyError`, () => {
        const result = CacheKey.make("ns", "fn", args)
        assert.isTrue(Either.isLeft(result))
        const error = (result as Either.Left<CacheKey.CacheKeyError, CacheKey.CacheKey>).left
        assert.strictEqual(error._tag, "CacheKeyError")
        assert.strictEqual(error.reason, "Unkeyable")
        assert.strictEqual(error.found, found)
        assert.strictEqual(error.path, path)
        assert.include(error.message, found)
      })
    }

    it("an empty or ':'-containing namespace or name is rejected", () => {
      for (const [ns, name] of [["", "fn"], ["a:b", "fn"], ["ns", ""], ["ns", "f:n"]]) {
        const result = CacheKey.make(ns, name, [])
        assert.isTrue(Either.isLeft(result) && result.left.reason === "InvalidSegment", `${ns} / ${name}`)
      }
      assert.isTrue(Either.isLeft(CacheKey.fromId("ns", "fn", "")))
    })

    const nested = (depth: number, wrap: (inner: unknown) => unknown) => {
      let value: unknown = 1
      for (let i = 0; i < depth; i++) value = wrap(value)
      return value
    }
    const revoked = Proxy.revocable({}, {})
    revoked.revoke()
    const hostile: ReadonlyArray<readonly [string, () => unknown, CacheKey.CacheKeyError["reason"], string]> = [
      ["arrays nested 10,000 deep", () => nested(10_000, (inner) => [inner]), "TooDeep", "$"],
      ["objects nested 5,000 deep", () => nested(5_000, (inner) => ({ a: inner })), "TooDeep", "$"],
      ["a Map nested 2,000 deep", () => nested(2_000, (inner) => new Map([["k", inner]])), "TooDeep", "$"],
      [
        "a getter that throws",
        () => [{
          get secret(): string {
            throw new Error("SECRET-4111")
          }
        }],
        "Unkeyable",
        "$[0]"
      ],
      [
        "a Proxy whose trap throws",
        () => [
          new Proxy({}, {
            ownKeys: () => {
              throw new Error("SECRET-4111")
            }
          })
        ],
        "Unkeyable",
        "$[0]"
      ],
      ["a revoked Proxy", () => [revoked.proxy], "Unkeyable", "$[0]"],
      ["an encoding longer than the limit", () => ["x".repeat(CacheKey.limits.length + 1)], "TooLarge", "$[0]"],
      [
        "a PrimaryKey that throws",
        () => [{
          [PrimaryKey.symbol]: () => {
            throw new Error("no")
          }
        }],
        "Unkeyable",
        "$[0]"
      ],
      ["an Array subclass", () => [new (class Rows extends Array<number> {})()], "Unkeyable", "$[0]"],
      ["a Date with own properties", () => [Object.assign(new Date(0), { tz: "UTC" })], "Unkeyable", "$[0]"]
    ]
    for (const [name, args, reason, path] of hostile) {
      it(`${name}: CacheKeyError ${reason}, never a thrown exception`, () => {
        const result = CacheKey.make("ns", "fn", args())
        assert.isTrue(Either.isLeft(result))
        const error = (result as Either.Left<CacheKey.CacheKeyError, CacheKey.CacheKey>).left
        assert.strictEqual(error.reason, reason)
        assert.isTrue(error.path.startsWith(path), error.path)
        assert.notInclude(error.message, "SECRET")
      })
    }

    it("the argument is never part of the error", () => {
      const result = CacheKey.make("ns", "fn", [{ card: "SECRET-4111", f: () => 1 }])
      assert.notInclude(JSON.stringify(Either.flip(result)), "SECRET")
    })

    it.effect("the error is an Effect failure when yielded", () =>
      Either.flip(CacheKey.make("ns", "fn", [() => 1])).pipe(
        Either.map((error) => assert.strictEqual(error.reason, "Unkeyable"))
      ))
  })
})
