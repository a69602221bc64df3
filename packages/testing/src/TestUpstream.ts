/**
 * A controllable upstream for tests: a `lookup` to hand to a strategy (`Failover`, `CacheFirst`, a
 * refresh `Job`), whose behaviour the test switches on cue — answer, answer after a delay, fail,
 * hang, die — and which counts its calls, the calls in flight and the calls interrupted. Delays
 * run on Effect's `Clock`, so `TestClock.adjust` drives them.
 *
 * @since 0.1.0
 */
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Ref from "effect/Ref"

/**
 * What the upstream does on its next calls.
 *
 * - `succeed`: answers with `respond(...args)`, after `after` if given;
 * - `fail`: fails with `error`, after `after` if given;
 * - `hang`: never answers (until interrupted);
 * - `die`: dies with `defect`.
 *
 * @since 0.1.0
 * @category models
 */
export type Behaviour<E> =
  | { readonly _tag: "succeed"; readonly after?: Duration.DurationInput | undefined }
  | { readonly _tag: "fail"; readonly error: E; readonly after?: Duration.DurationInput | undefined }
  | { readonly _tag: "hang" }
  | { readonly _tag: "die"; readonly defect: unknown }

/**
 * A controllable upstream.
 *
 * @since 0.1.0
 * @category models
 */
export interface TestUpstream<in out Args extends ReadonlyArray<any>, in out A, in out E> {
  /** The upstream call to hand to a strategy. */
  readonly lookup: (...args: Args) => Effect.Effect<A, E>
  /** Sets what the next calls do (calls already running keep their behaviour). */
  readonly behave: (behaviour: Behaviour<E>) => Effect.Effect<void>
  /** Answers from now on, after `after` if given. */
  readonly succeed: (after?: Duration.DurationInput) => Effect.Effect<void>
  /** Fails from now on with `error`, after `after` if given. */
  readonly fail: (error: E, after?: Duration.DurationInput) => Effect.Effect<void>
  /** Hangs from now on. */
  readonly hang: Effect.Effect<void>
  /** How many calls started. */
  readonly calls: Effect.Effect<number>
  /** How many calls are running now. */
  readonly inFlight: Effect.Effect<number>
  /** How many calls were interrupted. */
  readonly interrupted: Effect.Effect<number>
  /** The arguments of every call, in order. */
  readonly history: Effect.Effect<ReadonlyArray<Args>>
}

/**
 * Makes an upstream that answers with `respond(...args)` until told otherwise. Give the error
 * type (and so the argument and value types) explicitly when the test makes it fail.
 *
 * @example
 * ```ts
 * import { CacheStore, Failover } from "@stalewise/core"
 * import * as TestUpstream from "@stalewise/testing/TestUpstream"
 * import { Data, Effect, TestClock, TestContext } from "effect"
 *
 * class RatesDown extends Data.TaggedError("RatesDown")<{}> {}
 *
 * const program = Effect.gen(function*() {
 *   const upstream = yield* TestUpstream.make<[currency: string], number, RatesDown>((currency) => currency.length)
 *   const rates = yield* Failover.make({ name: "rate", lookup: upstream.lookup, timeout: "1 second" })
 *   yield* rates.get("EUR") // 3, stored
 *   yield* upstream.fail(new RatesDown())
 *   const outcome = yield* rates.getWithOutcome("EUR") // 3 again, status "failover", reason "error"
 *   yield* upstream.succeed("5 seconds") // slower than the timeout
 *   yield* TestClock.adjust("1 second")
 *   return [outcome.status, yield* upstream.calls] // ["failover", 2]
 * }).pipe(Effect.scoped, Effect.provide(CacheStore.layerMemory), Effect.provide(TestContext.TestContext))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = <Args extends ReadonlyArray<any>, A, E = never>(
  respond: (...args: Args) => A
): Effect.Effect<TestUpstream<Args, A, E>> =>
  Effect.gen(function*() {
    const behaviour = yield* Ref.make<Behaviour<E>>({ _tag: "succeed" })
    const calls = yield* Ref.make(0)
    const inFlight = yield* Ref.make(0)
    const interrupted = yield* Ref.make(0)
    const history = yield* Ref.make<ReadonlyArray<Args>>([])

    const run = (b: Behaviour<E>, args: Args): Effect.Effect<A, E> => {
      switch (b._tag) {
        case "succeed":
          return b.after === undefined
            ? Effect.sync(() => respond(...args))
            : Effect.zipRight(Effect.sleep(b.after), Effect.sync(() => respond(...args)))
        case "fail":
          return b.after === undefined
            ? Effect.fail(b.error)
            : Effect.zipRight(Effect.sleep(b.after), Effect.fail(b.error))
        case "hang":
          return Effect.never
        case "die":
          return Effect.die(b.defect)
      }
    }

    const behave = (b: Behaviour<E>) => Ref.set(behaviour, b)
    return {
      // uninterruptible bookkeeping, so that the counts are exact whenever the call is interrupted
      lookup: (...args: Args) =>
        Effect.uninterruptibleMask((restore) =>
          Effect.gen(function*() {
            yield* Ref.update(calls, (n) => n + 1)
            yield* Ref.update(history, (h) => [...h, args])
            yield* Ref.update(inFlight, (n) => n + 1)
            const b = yield* Ref.get(behaviour)
            return yield* restore(run(b, args)).pipe(
              Effect.onInterrupt(() => Ref.update(interrupted, (n) => n + 1)),
              Effect.ensuring(Ref.update(inFlight, (n) => n - 1))
            )
          })
        ),
      behave,
      succeed: (after) => behave({ _tag: "succeed", after }),
      fail: (error, after) => behave({ _tag: "fail", error, after }),
      hang: behave({ _tag: "hang" }),
      calls: Ref.get(calls),
      inFlight: Ref.get(inFlight),
      interrupted: Ref.get(interrupted),
      history: Ref.get(history)
    }
  })
