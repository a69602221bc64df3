import { assert, describe, it } from "@effect/vitest"
import { CacheKey } from "@stalewise/core"
import { FastCheck } from "effect"
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
