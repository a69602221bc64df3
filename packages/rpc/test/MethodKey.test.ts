import { assert, describe, it } from "@effect/vitest"
import { MethodKey } from "@stalewise/rpc"
import { Either } from "effect"

const key = (service: string, method: string, args: ReadonlyArray<unknown>) =>
  Either.getOrThrow(MethodKey.make(service, method, args)).value

describe("MethodKey", () => {
  it("the method name is part of the key", () => {
    assert.notStrictEqual(key("@app/Users", "getUser", [1]), key("@app/Users", "deleteUser", [1]))
  })

  it("the service is part of the key, even when ids differ only by ':' or '%'", () => {
    assert.notStrictEqual(key("@app/Users", "get", [1]), key("@app/Orders", "get", [1]))
    assert.notStrictEqual(key("a:b", "get", [1]), key("a%3Ab", "get", [1]))
    assert.isTrue(key("a:b", "get", [1]).startsWith(MethodKey.prefix("a:b", "get")))
  })

  it("equal arguments give one key, different arguments different keys", () => {
    assert.strictEqual(key("s", "m", [{ a: 1, b: 2 }]), key("s", "m", [{ b: 2, a: 1 }]))
    assert.notStrictEqual(key("s", "m", [1]), key("s", "m", ["1"]))
  })

  it("unkeyable arguments and bad method names fail with CacheKeyError", () => {
    const bad = MethodKey.make("s", "m", [() => 1])
    assert.isTrue(Either.isLeft(bad) && bad.left.reason === "Unkeyable")
    const badName = MethodKey.make("s", "a:b", [])
    assert.isTrue(Either.isLeft(badName) && badName.left.reason === "InvalidSegment")
  })
})
