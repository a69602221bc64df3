/**
 * A strategy (a Failover, a CacheFirst, a refresh Job, …) lives as long as the `Scope` it was made
 * in: its upstream calls and background refreshes run there. Used after that scope closed, it
 * would only see its calls interrupted (`All fibers interrupted without errors`); `guard` makes
 * every use after the close die with a {@link ScopeClosedError} that names the strategy and says
 * what happened instead.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"

/**
 * A strategy was used after the scope it was made in closed — typically one built inside
 * `Effect.scoped` and kept for later (from Promise code, say). It is a defect: build the strategy
 * in a `Layer` (`Layer.scoped`) provided to a `ManagedRuntime` or to the program, or in a scope that
 * lives as long as its callers.
 *
 * @example
 * ```ts
 * import { CacheStore, Failover } from "@stalewise/core"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   // wrong: the failover's scope closes when Effect.scoped returns
 *   const rates = yield* Effect.scoped(Failover.make({
 *     name: "rate",
 *     lookup: (currency: string) => Effect.succeed(currency.length),
 *     timeout: "1 second"
 *   }))
 *   // dies with ScopeClosedError: Failover "rate" was used after the scope it was made in closed; …
 *   return yield* rates.get("EUR")
 * }).pipe(Effect.provide(CacheStore.layerMemory))
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class ScopeClosedError extends Schema.TaggedError<ScopeClosedError>("@stalewise/core/ScopeClosedError")(
  "ScopeClosedError",
  {
    /** What was used: `"Failover"`, `"CacheFirst"`, `"Job"`, … */
    kind: Schema.String,
    /** Its name, the `name` it was made with (`name` itself is the error's name). */
    cacheName: Schema.String
  }
) {
  /**
   * @since 0.1.0
   */
  override get message(): string {
    return `${this.kind} "${this.cacheName}" was used after the scope it was made in closed; build it in a Layer ` +
      `(Layer.scoped, provided to the program or a ManagedRuntime) or a Scope that lives as long as its callers`
  }
}

/**
 * Returns `service` with every member that is an `Effect`, or a function returning one, first
 * checking that `scope` is still open: once it has closed, they die with a
 * {@link ScopeClosedError} naming `kind` and `name`. Other members are copied unchanged.
 *
 * @since 0.1.0
 * @category combinators
 */
export const guard = <S extends object>(
  scope: Scope.Scope,
  kind: string,
  name: string,
  service: S
): Effect.Effect<S> =>
  Effect.suspend(() => {
    let closed = false
    const check = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
      Effect.suspend(() => closed ? Effect.die(new ScopeClosedError({ kind, cacheName: name })) : effect)
    const guarded: Record<PropertyKey, unknown> = {}
    for (const key of Reflect.ownKeys(service)) {
      const member = (service as Record<PropertyKey, unknown>)[key]
      guarded[key] = Effect.isEffect(member)
        ? check(member)
        : typeof member === "function"
        ? (...args: Array<unknown>) => {
          const result = member(...args)
          return Effect.isEffect(result) ? check(result) : result
        }
        : member
    }
    return Effect.as(
      Scope.addFinalizer(
        scope,
        Effect.sync(() => {
          closed = true
        })
      ),
      guarded as S
    )
  })
