/** @internal */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as CacheMetrics from "../CacheMetrics.js"
import type * as Outcome from "../Outcome.js"

/** What a log may say of a failure: its tag, never its fields (they may hold arguments). */
const kindOf = (cause: Cause.Cause<unknown>): string =>
  Option.match(Cause.failureOption(cause), {
    onNone: () => Cause.isInterruptedOnly(cause) ? "interrupted" : "defect",
    onSome: (error) =>
      typeof error === "object" && error !== null && "_tag" in error ? String(error._tag) : typeof error
  })

/**
 * Runs `load` for every argument list, at most `concurrency` at once, and counts what landed;
 * a failure is logged with the key's digest and the error's tag only.
 *
 * @internal
 */
export const preload = <Args, K, E, E2>(
  strategy: string,
  argsList: Iterable<Args>,
  deriveKey: (args: Args) => Effect.Effect<string, K>,
  load: (key: string, args: Args) => Effect.Effect<unknown, E>,
  options: { readonly concurrency?: number | undefined } | undefined
): Effect.Effect<Outcome.Preloaded, E2> =>
  Effect.map(
    Effect.forEach(
      argsList,
      (args) =>
        Effect.exit(Effect.flatMap(deriveKey(args), (key) =>
          Effect.tapErrorCause(load(key, args), (cause) =>
            Effect.logWarning("stalewise: preload failed").pipe(
              Effect.annotateLogs({ strategy, key_digest: CacheMetrics.keyDigest(key), error: kindOf(cause) })
            )))),
      { concurrency: options?.concurrency ?? 4 }
    ),
    (exits) => {
      const loaded = exits.filter(Exit.isSuccess).length
      return { loaded, failed: exits.length - loaded }
    }
  )
