import { assert, describe, it } from "@effect/vitest"
import { CacheStore, ScopeGuard } from "@stalewise/core"
import { Job, RefreshQueue } from "@stalewise/refresh"
import { Cause, Effect, Exit, Layer, Option } from "effect"

const Env = Layer.merge(CacheStore.layerMemory, RefreshQueue.layerFibers())

describe("a Job used after its scope closed", () => {
  // The trap users fall into: the job is built inside Effect.scoped and kept for Promise code.
  it("fails from Promise code with an error that says so, not 'All fibers interrupted'", async () => {
    const users = await Effect.runPromise(
      Job.make({ name: "users", fetch: (id: number) => Effect.succeed({ id }), lifetime: "1 minute" }).pipe(
        Effect.scoped,
        Effect.provide(Env)
      )
    )
    const error = await Effect.runPromise(users.get(1)).then(() => undefined, (error: unknown) => error)
    assert.instanceOf(error, Error)
    assert.include(error.message, "Job \"users\" was used after the scope it was made in closed")
    assert.notInclude(error.message, "All fibers interrupted")
  })

  it.effect("every member that returns an effect dies with ScopeClosedError; name and policy stay readable", () =>
    Effect.gen(function*() {
      const users = yield* Effect.scoped(
        Job.make({ name: "users", fetch: (id: number) => Effect.succeed({ id }), lifetime: "1 minute" })
      )
      assert.strictEqual(users.name, "users")
      for (
        const effect of [users.get(1), users.refresh(1), users.refreshInBackground(1), users.peek(1), users.clear]
      ) {
        const exit = yield* Effect.exit(effect as Effect.Effect<unknown, unknown>)
        const defect = Exit.isFailure(exit) ? Option.getOrUndefined(Cause.dieOption(exit.cause)) : undefined
        assert.instanceOf(defect, ScopeGuard.ScopeClosedError)
      }
    }).pipe(Effect.provide(Env)))
})
