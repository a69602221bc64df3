/**
 * Any argument gives a key or a typed `CacheKeyError`, inside the Effect, on every strategy:
 * nesting past the stack, getters and Proxies that throw, revoked Proxies, `key` functions that
 * throw. Creating the call's Effect never throws; running it never dies.
 */
import { assert, describe, it } from "@effect/vitest"
import { CacheFirst, CacheKey, CacheStore, Failover } from "@stalewise/core"
import { Cause, Effect, Exit } from "effect"

const deepArray = (depth: number): unknown => {
  let value: unknown = 1
  for (let i = 0; i < depth; i++) value = [value]
  return value
}
const revoked = Proxy.revocable({}, {})
revoked.revoke()

const hostileArguments: ReadonlyArray<readonly [string, () => unknown]> = [
  ["arrays nested 20,000 deep", () => deepArray(20_000)],
  ["a getter that throws", () => ({
    get id(): number {
      throw new Error("SECRET")
    }
  })],
  ["a Proxy whose traps throw", () =>
    new Proxy({}, {
      ownKeys: () => {
        throw new Error("SECRET")
      }
    })],
  ["a revoked Proxy", () => revoked.proxy]
]

const expectKeyError = <A, E>(exit: Exit.Exit<A, E>) => {
  assert.isTrue(Exit.isFailure(exit), "the call fails")
  const failure = Exit.isFailure(exit) ? Cause.failureOption(exit.cause) : undefined
  assert.isTrue(failure?._tag === "Some" && failure.value instanceof CacheKey.CacheKeyError, "with CacheKeyError")
}

describe("hostile arguments", () => {
  for (const [name, argument] of hostileArguments) {
    it.scoped(`Failover and CacheFirst: ${name} is a CacheKeyError, raised inside the Effect`, () =>
      Effect.gen(function*() {
        let calls = 0
        const lookup = (_: unknown) => Effect.sync(() => ++calls)
        const failover = yield* Failover.make({ name: "f", lookup, timeout: "1 second" })
        const cacheFirst = yield* CacheFirst.make({ name: "c", lookup, timeToLive: "1 minute" })
        const persisted = yield* CacheFirst.makePersisted({ name: "p", lookup, timeToLive: "1 minute" })
        for (
          const make of [
            () => failover.get(argument()),
            () => cacheFirst.get(argument()),
            () => persisted.get(argument())
          ]
        ) {
          const effect = make() // creating the call derives nothing yet: it must not throw
          expectKeyError(yield* Effect.exit(effect))
        }
        expectKeyError(yield* Effect.exit(failover.invalidate(argument())))
        expectKeyError(yield* Effect.exit(cacheFirst.invalidate(argument())))
        assert.strictEqual(calls, 0, "the upstream is never called with arguments that cannot be keyed")
      }).pipe(Effect.provide(CacheStore.layerMemory)))
  }

  it.scoped("a key function that throws, or returns no string, is a CacheKeyError", () =>
    Effect.gen(function*() {
      const lookup = (id: number) => Effect.succeed(id)
      const throwing = yield* Failover.make({
        name: "k",
        lookup,
        timeout: "1 second",
        key: (id) => {
          if (id < 0) throw new Error("SECRET")
          return id === 0 ? (undefined as unknown as string) : String(id)
        }
      })
      const thrown = yield* Effect.flip(throwing.get(-1))
      assert.strictEqual(thrown._tag, "CacheKeyError")
      assert.notInclude(thrown.message, "SECRET")
      assert.strictEqual((yield* Effect.flip(throwing.get(0)))._tag, "CacheKeyError")
      assert.strictEqual(yield* throwing.get(1), 1)
    }).pipe(Effect.provide(CacheStore.layerMemory)))

  it.scoped("the key is derived when the Effect runs, not when it is created", () =>
    Effect.gen(function*() {
      const seen: Array<number> = []
      const cached = yield* CacheFirst.make({
        name: "late",
        timeToLive: "1 minute",
        lookup: (arg: { n: number }) => Effect.sync(() => (seen.push(arg.n), arg.n))
      })
      const arg = { n: 1 }
      const call = cached.get(arg)
      arg.n = 2
      assert.strictEqual(yield* call, 2)
      assert.strictEqual(yield* cached.get({ n: 2 }), 2)
      assert.deepStrictEqual(seen, [2])
    }).pipe(Effect.provide(CacheStore.layerMemory)))
})
