import { assert, describe, it } from "@effect/vitest"
import { CacheKey } from "@stalewise/core"

describe("CacheKey.digest memo", () => {
  it("gives the same digest for an encoding however many others were digested in between", () => {
    const encodings = Array.from({ length: 10_000 }, (_, i) => `s${i}`)
    const first = encodings.map((e) => CacheKey.digest(e))
    assert.strictEqual(new Set(first).size, encodings.length)
    // recent, older and forgotten generations alike
    const again = encodings.map((e) => CacheKey.digest(e))
    assert.deepStrictEqual(again, first)
    assert.deepStrictEqual([...encodings].reverse().map((e) => CacheKey.digest(e)), [...first].reverse())
  })
})
