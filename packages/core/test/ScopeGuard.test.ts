import { assert, describe, it } from "@effect/vitest"
import { CacheFirst, CacheStore, Failover, ScopeGuard } from "@stalewise/core"
import { Cause, Effect, Exit, Option, Scope } from "effect"

const deathOf = <A, E>(exit: Exit.Exit<A, E>): unknown =>
  Exit.isFailure(exit) ? Option.getOrUndefined(Cause.dieOption(exit.cause)) : undefined

describe("ScopeGuard", () => {
  it.effect("a Failover used after its scope closed dies with ScopeClosedError naming it", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const rates = yield* Failover.make({
        name: "rate",
        lookup: (currency: string) => Effect.succeed(currency.length),
        timeout: "1 second"
      }).pipe(Scope.extend(scope))
      assert.strictEqual(yield* rates.get("EUR"), 3)
      yield* Scope.close(scope, Exit.void)

      for (const effect of [rates.get("EUR"), rates.peek("EUR")] as Array<Effect.Effect<unknown, unknown>>) {
        const defect = deathOf(yield* Effect.exit(effect))
        assert.instanceOf(defect, ScopeGuard.ScopeClosedError)
        assert.deepStrictEqual([defect.kind, defect.cacheName], ["Failover", "rate"])
        assert.include(defect.message, "Failover \"rate\" was used after the scope it was made in closed")
      }
    }).pipe(Effect.provide(CacheStore.layerMemory)))

  it.effect("a CacheFirst used after its scope closed dies with ScopeClosedError, effect members included", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const users = yield* CacheFirst.make({
        name: "users",
        lookup: (id: number) => Effect.succeed({ id }),
        timeToLive: "1 minute"
      }).pipe(Scope.extend(scope))
      yield* users.get(1)
      yield* Scope.close(scope, Exit.void)

      assert.instanceOf(deathOf(yield* Effect.exit(users.get(1))), ScopeGuard.ScopeClosedError)
      assert.instanceOf(deathOf(yield* Effect.exit(users.invalidateAll)), ScopeGuard.ScopeClosedError)
    }))

  it.effect("an effect made while the scope was open and run after it closed dies too; other members are kept", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const service = yield* ScopeGuard.guard(scope, "Thing", "thing", {
        label: "thing",
        plain: (n: number) => n + 1,
        run: (n: number) => Effect.succeed(n * 2)
      })
      const pending = service.run(2)
      assert.strictEqual(yield* pending, 4)
      yield* Scope.close(scope, Exit.void)
      assert.strictEqual(service.label, "thing")
      assert.strictEqual(service.plain(1), 2)
      assert.instanceOf(deathOf(yield* Effect.exit(pending)), ScopeGuard.ScopeClosedError)
    }))
})
