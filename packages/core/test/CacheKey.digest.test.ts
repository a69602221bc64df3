import { assert, describe, it } from "@effect/vitest"
import { CacheKey } from "@stalewise/core"
import { Either, FastCheck } from "effect"
import * as KeyMemo from "../src/internal/keyMemo.js"
import { digest128, isNative, portableDigest128 } from "../src/internal/sha256.js"

describe("CacheKey.digest memo", () => {
  it("gives the same digest for an encoding however many others were digested in between", () => {
    const encodings = Array.from({ length: 10_000 }, (_, i) => `s${i}`)
    const first = encodings.map((e) => CacheKey.digest(e))
    assert.strictEqual(new Set(first).size, encodings.length)
    // remembered, replaced in their slot and never admitted alike
    const again = encodings.map((e) => CacheKey.digest(e))
    assert.deepStrictEqual(again, first)
    assert.deepStrictEqual([...encodings].reverse().map((e) => CacheKey.digest(e)), [...first].reverse())
    assert.deepStrictEqual(first, encodings.map(portableDigest128))
  })

  it("answers every encoding by its own digest, at and past the longest one it remembers", () => {
    // 1,024 characters is the longest remembered encoding; longer ones are hashed every time
    for (const length of [1_023, 1_024, 1_025, 4_096]) {
      const a = "x".repeat(length)
      const b = "x".repeat(length - 1) + "y"
      for (let i = 0; i < 16; i++) {
        assert.strictEqual(CacheKey.digest(a), portableDigest128(a))
        assert.strictEqual(CacheKey.digest(b), portableDigest128(b))
      }
      assert.notStrictEqual(CacheKey.digest(a), CacheKey.digest(b))
    }
  })

  it("never answers one encoding with the digest of another sharing its slot", () => {
    // 200,000 encodings in 65,536 slots: many share one; each is read 9 times so most get admitted
    const encodings = Array.from({ length: 200_000 }, (_, i) => `a1[n${i};]`)
    for (let round = 0; round < 9; round++) {
      for (let i = 0; i < encodings.length; i += 97) {
        const e = encodings[(i * 7919 + round) % encodings.length]!
        assert.strictEqual(CacheKey.digest(e), portableDigest128(e))
      }
    }
  })
})

describe("native SHA-256", () => {
  it("is used on Node", () => {
    assert.isTrue(isNative)
  })

  it.prop(
    "gives the portable implementation's digest for any string",
    [FastCheck.string({ unit: "binary" })],
    ([s]) => {
      assert.strictEqual(digest128(s), portableDigest128(s))
    }
  )

  it.prop("and for any string of UTF-16 code units, lone surrogates included", [
    FastCheck.string({ unit: FastCheck.integer({ min: 0, max: 0xffff }).map((n) => String.fromCharCode(n)) })
  ], ([s]) => {
    assert.strictEqual(digest128(s), portableDigest128(s))
  })
})

describe("CacheKey.deriver memo of hot arguments", () => {
  const derive = (args: unknown) => Either.getOrThrow(Either.getOrThrow(CacheKey.deriver("ns", "fn"))(args))

  it.prop(
    "a remembered argument derives the key a fresh deriver derives, and no other argument's",
    [FastCheck.array(FastCheck.oneof(FastCheck.integer(), FastCheck.double(), FastCheck.string({ unit: "binary" })), {
      minLength: 1,
      maxLength: 200
    })],
    ([values]) => {
      const deriver = Either.getOrThrow(CacheKey.deriver("ns", "fn"))
      for (const value of values) deriver.remember([value], Either.getOrThrow(deriver([value])))
      for (const value of values) assert.strictEqual(Either.getOrThrow(deriver([value])), derive([value]))
    }
  )

  it("keeps apart what a Map would merge or confuse: 0 and -0, 1 and \"1\", NaN", () => {
    const deriver = Either.getOrThrow(CacheKey.deriver("ns", "fn"))
    for (const value of [0, -0, 1, "1", NaN, "", "x".repeat(300)]) {
      deriver.remember([value], Either.getOrThrow(deriver([value])))
    }
    assert.strictEqual(Either.getOrThrow(deriver([-0])), derive([-0]))
    assert.strictEqual(Either.getOrThrow(deriver([0])), derive([0]))
    assert.notStrictEqual(Either.getOrThrow(deriver([0])), Either.getOrThrow(deriver([-0])))
    assert.strictEqual(Either.getOrThrow(deriver([1])), derive([1]))
    assert.strictEqual(Either.getOrThrow(deriver(["1"])), derive(["1"]))
    assert.strictEqual(Either.getOrThrow(deriver([NaN])), derive([NaN]))
    // several arguments, or one that is not a string or number, are derived every time
    deriver.remember([1, 2], "ns:fn:wrong")
    deriver.remember([{ id: 1 }], "ns:fn:wrong")
    assert.strictEqual(Either.getOrThrow(deriver([1, 2])), derive([1, 2]))
    assert.strictEqual(Either.getOrThrow(deriver([{ id: 1 }])), derive([{ id: 1 }]))
  })

  it("stays bounded and right across generations: 300,000 arguments remembered, every one answered", () => {
    const deriver = Either.getOrThrow(CacheKey.deriver("ns", "fn"))
    for (let i = 0; i < 300_000; i++) deriver.remember([i], Either.getOrThrow(deriver([i])))
    for (let i = 0; i < 300_000; i += 101) assert.strictEqual(Either.getOrThrow(deriver([i])), derive([i]))
    // a remembered key is the very string derived before (its hash is cached for the store's lookup)
    const key = Either.getOrThrow(deriver([299_999]))
    assert.strictEqual(Either.getOrThrow(deriver([299_999])), key)
  })
})

describe("CacheKey.idDeriver memo of hot ids", () => {
  const expected = (id: string) => `ns:fn:${id}`

  it.prop(
    "every id derives namespace:name:id, however often it was derived before",
    [FastCheck.array(
      FastCheck.oneof(FastCheck.string({ unit: "binary", minLength: 1 }), FastCheck.constant("x".repeat(300))),
      { minLength: 1, maxLength: 100 }
    )],
    ([ids]) => {
      const fromId = Either.getOrThrow(CacheKey.idDeriver("ns", "fn"))
      // three passes: noted, remembered, answered from the memo
      for (let pass = 0; pass < 3; pass++) {
        for (const id of ids) assert.strictEqual(Either.getOrThrow(fromId(id)), expected(id))
      }
    }
  )

  it("stays right past its bounds: 100,000 ids each derived twice, then a scan of 100,000 others", () => {
    const fromId = Either.getOrThrow(CacheKey.idDeriver("ns", "fn"))
    // twice in a row: every id is remembered (the memo holds the last 32,768 to 65,536)
    for (let i = 0; i < 100_000; i++) {
      for (let time = 0; time < 2; time++) assert.strictEqual(Either.getOrThrow(fromId(`u${i}`)), expected(`u${i}`))
    }
    for (let i = 0; i < 100_000; i++) assert.strictEqual(Either.getOrThrow(fromId(`s${i}`)), expected(`s${i}`))
    for (let i = 0; i < 100_000; i += 7) assert.strictEqual(Either.getOrThrow(fromId(`u${i}`)), expected(`u${i}`))
    // an empty id (or one that is not a string) is still refused, remembered or not
    assert.isTrue(Either.isLeft(fromId("")))
    assert.isTrue(Either.isLeft(fromId(42 as unknown as string)))
  })
})

describe("KeyMemo admission of ids", () => {
  it("remembers a string's key on its second sighting only, never a long one, and forgets its notes when full", () => {
    const memo = KeyMemo.make(1_024, 2)
    memo.admitString("a", "k:a")
    assert.isUndefined(memo.getString("a")) // seen once: only noted
    memo.admitString("a", "k:a")
    assert.strictEqual(memo.getString("a"), "k:a")
    // longer than the memo keeps: neither noted nor remembered, however often
    const long = "x".repeat(257)
    memo.admitString(long, `k:${long}`)
    memo.admitString(long, `k:${long}`)
    assert.isUndefined(memo.getString(long))
    // two notes at most: "b" and "c" fill them, "d" starts over, so "b" is new again
    memo.admitString("b", "k:b")
    memo.admitString("c", "k:c")
    memo.admitString("d", "k:d")
    memo.admitString("b", "k:b")
    assert.isUndefined(memo.getString("b"))
    memo.admitString("b", "k:b")
    assert.strictEqual(memo.getString("b"), "k:b")
  })
})
