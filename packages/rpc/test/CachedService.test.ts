import { assert, describe, it } from "@effect/vitest"
import { CacheStore } from "@stalewise/core"
import { CachedService, Strategy } from "@stalewise/rpc"
import { Context, Effect, Layer, Ref, TestClock } from "effect"

interface User {
  readonly id: number
  readonly name: string
}

class Users extends Context.Tag("test/Users")<Users, {
  readonly getUser: (id: number) => Effect.Effect<User, "NotFound" | "Unavailable">
  readonly getProfile: (id: number) => Effect.Effect<User, "Unavailable">
  readonly countries: (region: string) => Effect.Effect<ReadonlyArray<string>>
  readonly notify: (message: { readonly onSent: () => void }) => Effect.Effect<string>
  readonly deleteUser: (id: number) => Effect.Effect<void>
  readonly version: string
}>() {}

/** A real implementation whose calls are counted and whose failures can be switched on. */
const makeBackend = Effect.gen(function*() {
  const calls = yield* Ref.make<Record<string, number>>({})
  const failure = yield* Ref.make<"NotFound" | "Unavailable" | undefined>(undefined)
  const count = (method: string) => Ref.update(calls, (c) => ({ ...c, [method]: (c[method] ?? 0) + 1 }))
  const service: Context.Tag.Service<Users> = {
    getUser: (id) =>
      Effect.flatMap(
        Effect.zipRight(count("getUser"), Ref.get(failure)),
        (f) => f === undefined ? Effect.succeed({ id, name: `user-${id}` }) : Effect.fail(f)
      ),
    getProfile: (id) =>
      Effect.flatMap(
        Effect.zipRight(count("getProfile"), Ref.get(failure)),
        (f) => f === undefined ? Effect.succeed({ id, name: `profile-${id}` }) : Effect.fail("Unavailable" as const)
      ),
    countries: (region) => Effect.as(count("countries"), [`${region}-1`, `${region}-2`]),
    notify: () => Effect.as(count("notify"), "sent"),
    deleteUser: () => count("deleteUser"),
    version: "1.0"
  }
  return { calls, failure, service }
})

const withCachedUsers = <A, E>(
  spec: CachedService.Spec<Context.Tag.Service<Users>>,
  body: (backend: Effect.Effect.Success<typeof makeBackend>) => Effect.Effect<A, E, Users>
) =>
  Effect.gen(function*() {
    const backend = yield* makeBackend
    const layer = CachedService.layer(Users, spec).pipe(
      Layer.provide(Layer.succeed(Users, backend.service)),
      Layer.provide(CacheStore.layerMemory)
    )
    return yield* body(backend).pipe(Effect.provide(layer))
  })

const spec: CachedService.Spec<Context.Tag.Service<Users>> = {
  getUser: Strategy.failover({ timeout: "1 second", fallbackOn: (error) => error === "Unavailable" }),
  getProfile: Strategy.failover({ timeout: "1 second" }),
  countries: Strategy.cacheFirst({ timeToLive: "1 hour", capacity: 10 }),
  notify: Strategy.cacheFirst({ timeToLive: "1 hour" })
}

describe("CachedService", () => {
  it.effect("provides the same tag: chosen methods cached, the others pass through", () =>
    withCachedUsers(spec, (backend) =>
      Effect.gen(function*() {
        const users = yield* Users
        assert.strictEqual(users.version, "1.0")
        yield* users.countries("EU")
        yield* users.countries("EU")
        yield* users.deleteUser(1)
        yield* users.deleteUser(1)
        const calls = yield* Ref.get(backend.calls)
        assert.strictEqual(calls.countries, 1, "cache-first: one upstream call")
        assert.strictEqual(calls.deleteUser, 2, "not cached: every call passes through")
      })))

  it.effect("a failover method serves the last good value when the upstream fails", () =>
    withCachedUsers(spec, (backend) =>
      Effect.gen(function*() {
        const users = yield* Users
        assert.deepStrictEqual(yield* users.getUser(1), { id: 1, name: "user-1" })
        yield* Ref.set(backend.failure, "Unavailable")
        yield* TestClock.adjust("1 minute")
        assert.deepStrictEqual(yield* users.getUser(1), { id: 1, name: "user-1" })
        assert.strictEqual((yield* Ref.get(backend.calls)).getUser, 2, "failover always asks")
        // fallbackOn: NotFound is an answer, not an outage
        yield* Ref.set(backend.failure, "NotFound")
        assert.strictEqual(yield* Effect.flip(users.getUser(1)), "NotFound")
      })))

  it.effect("the method name is part of the key: methods never share entries", () =>
    withCachedUsers(spec, (backend) =>
      Effect.gen(function*() {
        const users = yield* Users
        yield* users.getUser(7)
        yield* users.getProfile(7)
        yield* Ref.set(backend.failure, "Unavailable")
        assert.strictEqual((yield* users.getUser(7)).name, "user-7")
        assert.strictEqual((yield* users.getProfile(7)).name, "profile-7")
      })))

  it.effect("arguments that cannot be keyed bypass the cache instead of failing", () =>
    withCachedUsers(spec, (backend) =>
      Effect.gen(function*() {
        const users = yield* Users
        assert.strictEqual(yield* users.notify({ onSent: () => {} }), "sent")
        assert.strictEqual(yield* users.notify({ onSent: () => {} }), "sent")
        assert.strictEqual((yield* Ref.get(backend.calls)).notify, 2)
      })))

  it.effect("arguments that throw when read or nest past the stack bypass the cache, never die", () =>
    withCachedUsers(spec, (backend) =>
      Effect.gen(function*() {
        const users = yield* Users
        const revoked = Proxy.revocable({}, {})
        revoked.revoke()
        let deep: unknown = 1
        for (let i = 0; i < 20_000; i++) deep = [deep]
        const hostile = [revoked.proxy, deep, {
          get id(): number {
            throw new Error("SECRET")
          }
        }]
        for (const argument of hostile) {
          // notify is cached cache-first: the call bypasses the cache and reaches the method
          assert.strictEqual(yield* users.notify(argument as never), "sent")
        }
        assert.strictEqual((yield* Ref.get(backend.calls)).notify, hostile.length)
      })))

  it.effect("onOutcome reports every cached call's outcome", () =>
    Effect.gen(function*() {
      const backend = yield* makeBackend
      const seen: Array<string> = []
      const layer = CachedService.layer(Users, spec, {
        onOutcome: (method, outcome) =>
          Effect.sync(() => seen.push(`${method}:${outcome.status}${outcome.reason ? `/${outcome.reason}` : ""}`))
      }).pipe(Layer.provide(Layer.succeed(Users, backend.service)), Layer.provide(CacheStore.layerMemory))
      yield* Effect.gen(function*() {
        const users = yield* Users
        yield* users.countries("EU")
        yield* users.countries("EU")
        yield* users.getUser(1)
        yield* Ref.set(backend.failure, "Unavailable")
        yield* users.getUser(1)
        yield* users.deleteUser(1)
      }).pipe(Effect.provide(layer))
      assert.deepStrictEqual(seen, ["countries:miss", "countries:hit", "getUser:miss", "getUser:failover/error"])
    }))

  it.effect("invalid strategy options fail the layer with PolicyError", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(
        withCachedUsers({ getUser: Strategy.failover({ timeout: 0 }) }, () => Effect.void)
      )
      assert.strictEqual(error._tag, "PolicyError")
      assert.strictEqual(error.option, "timeout")
    }))

  it("strategy options are typed by the method they cache", () => {
    CachedService.layer(Users, {
      // @ts-expect-error getProfile never fails with "NotFound"
      getProfile: Strategy.failover({ timeout: "1 second", fallbackOn: (error) => error === "NotFound" })
    })
    CachedService.layer(Users, {
      // @ts-expect-error version is not a method
      version: Strategy.cacheFirst({ timeToLive: "1 hour" })
    })
  })
})
