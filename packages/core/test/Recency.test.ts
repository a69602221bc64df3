import { assert, describe, it } from "@effect/vitest"
import { FastCheck as fc } from "effect"
import { type Node, Recency } from "../src/internal/recency.js"

interface Item extends Node {
  readonly version: number
}

const item = (key: string, version: number): Item => ({ key, version, slot: -1 })

type Op =
  | { readonly op: "set"; readonly key: string }
  | { readonly op: "use" | "peek" | "delete"; readonly key: string }
  | { readonly op: "trim"; readonly capacity: number }
  | { readonly op: "clear" }

const key = fc.constantFrom("a", "b", "c", "d", "e")
const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ op: fc.constant("set" as const), key }),
  fc.record({ op: fc.constantFrom("use" as const, "peek" as const, "delete" as const), key }),
  fc.record({ op: fc.constant("trim" as const), capacity: fc.integer({ min: 0, max: 4 }) }),
  fc.record({ op: fc.constant("clear" as const) })
)

describe("Recency (CacheFirst's least-recently-used order)", () => {
  it("grows past its first slots and reuses freed ones", () => {
    const recency = new Recency<Item>()
    for (let i = 0; i < 1_000; i++) recency.set(item(`k${i}`, i))
    assert.strictEqual(recency.size, 1_000)
    const evicted = recency.trim(10)
    assert.deepStrictEqual(evicted.map((node) => node.key), Array.from({ length: 990 }, (_, i) => `k${i}`))
    assert.isTrue(evicted.every((node) => node.slot === -1))
    assert.deepStrictEqual(recency.order(), Array.from({ length: 10 }, (_, i) => `k${990 + i}`))
    for (let i = 0; i < 990; i++) recency.set(item(`n${i}`, i))
    assert.strictEqual(recency.size, 1_000)
    assert.strictEqual(recency.order()[0], "k990")
  })

  it.prop("matches a reference model: an array of keys, oldest first", [fc.array(op, { maxLength: 80 })], ([ops]) => {
    const recency = new Recency<Item>()
    // the model: keys oldest first, and the item held at each
    let order: Array<string> = []
    const held = new Map<string, Item>()
    const removed: Array<Item> = []
    let version = 0
    for (const step of ops) {
      switch (step.op) {
        case "set": {
          const next = item(step.key, ++version)
          const before = held.get(step.key)
          if (before !== undefined) removed.push(before)
          recency.set(next)
          order = [...order.filter((k) => k !== step.key), step.key]
          held.set(step.key, next)
          break
        }
        case "use": {
          assert.strictEqual(recency.use(step.key), held.get(step.key))
          if (held.has(step.key)) order = [...order.filter((k) => k !== step.key), step.key]
          break
        }
        case "peek":
          assert.strictEqual(recency.peek(step.key), held.get(step.key))
          break
        case "delete": {
          const before = held.get(step.key)
          assert.strictEqual(recency.delete(step.key), before !== undefined)
          if (before !== undefined) removed.push(before)
          order = order.filter((k) => k !== step.key)
          held.delete(step.key)
          break
        }
        case "trim": {
          const evicted = recency.trim(step.capacity)
          const expected = order.slice(0, Math.max(0, order.length - step.capacity))
          assert.deepStrictEqual(evicted.map((node) => node.key), expected)
          for (const k of expected) {
            assert.strictEqual(evicted.find((node) => node.key === k), held.get(k))
            removed.push(held.get(k)!)
            held.delete(k)
          }
          order = order.slice(expected.length)
          break
        }
        case "clear":
          for (const node of held.values()) removed.push(node)
          recency.clear()
          order = []
          held.clear()
          break
      }
      assert.deepStrictEqual(recency.order(), order)
      assert.strictEqual(recency.size, order.length)
      assert.deepStrictEqual([...recency.keys()].sort(), [...order].sort())
      // a node out of the order has no slot: refreshing it later changes nothing
      for (const node of removed) {
        if (held.get(node.key) !== node) assert.strictEqual(node.slot, -1)
      }
      for (const node of held.values()) assert.strictEqual(recency.peek(node.key), node)
    }
  })

  it("refresh makes a held node the newest without looking its key up", () => {
    const recency = new Recency<Item>()
    const [a, b, c] = [item("a", 1), item("b", 2), item("c", 3)]
    recency.set(a)
    recency.set(b)
    recency.set(c)
    recency.refresh(a)
    assert.deepStrictEqual(recency.order(), ["b", "c", "a"])
    recency.refresh(a)
    assert.deepStrictEqual(recency.order(), ["b", "c", "a"])
    assert.deepStrictEqual(recency.trim(1).map((node) => node.key), ["b", "c"])
    assert.deepStrictEqual(recency.order(), ["a"])
  })
})
