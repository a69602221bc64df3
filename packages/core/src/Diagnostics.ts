/**
 * What the toolkit says when something goes wrong, and how much of it: schema errors summarised
 * by path and reason (never the value that failed), and warnings rate-limited per kind, so that
 * an outage costs one line per kind per interval, with a count, instead of one line per call.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FiberRef from "effect/FiberRef"
import { globalValue } from "effect/GlobalValue"
import * as ParseResult from "effect/ParseResult"

/**
 * A one-line account of a schema failure: each issue's kind and where it is
 * (`Type at $.card; Missing at $.id`), at most five of them. The value that failed, which a
 * `ParseError`'s own message quotes, is never part of it.
 *
 * @example
 * ```ts
 * import { Diagnostics } from "@stalewise/core"
 * import { Either, Schema } from "effect"
 *
 * const result = Schema.decodeUnknownEither(Schema.Struct({ card: Schema.Number }))({ card: "4111-1111" })
 * if (Either.isLeft(result)) console.log(Diagnostics.summarizeParseError(result.left)) // "Type at $.card"
 * ```
 *
 * @since 0.1.0
 * @category utils
 */
export const summarizeParseError = (error: ParseResult.ParseError): string => {
  const issues = ParseResult.ArrayFormatter.formatErrorSync(error)
  const shown = issues.slice(0, 5).map((issue) => `${issue._tag} at ${formatPath(issue.path)}`)
  if (issues.length > shown.length) shown.push(`${issues.length - shown.length} more`)
  return shown.join("; ")
}

const formatPath = (path: ReadonlyArray<PropertyKey>): string =>
  "$" + path.map((key) => typeof key === "number" ? `[${key}]` : `.${String(key)}`).join("")

/**
 * An `Error` that stands for a schema failure in a `cause` field: its message is
 * {@link summarizeParseError}'s summary, and the `ParseError` (which holds the value) is dropped.
 *
 * @since 0.1.0
 * @category utils
 */
export const redactParseError = (error: ParseResult.ParseError): Error => new SchemaIssues(summarizeParseError(error))

class SchemaIssues extends Error {
  override readonly name = "SchemaIssues"
}

/**
 * How long a warning of one kind stays quiet after it was logged: the repeats within the
 * interval are counted and reported with the next line of that kind. Default 10 seconds.
 *
 * @since 0.1.0
 * @category fiber refs
 */
export const currentWarningInterval: FiberRef.FiberRef<Duration.Duration> = globalValue(
  "@stalewise/core/Diagnostics/currentWarningInterval",
  () => FiberRef.unsafeMake(Duration.seconds(10))
)

/**
 * Rate-limited warnings: `warn(kind, message, annotations)` logs the first warning of a kind at
 * once, then at most one per {@link currentWarningInterval} (measured on the `Clock`). The line
 * after a quiet interval carries `repeated`: how many warnings of the kind it left out.
 *
 * @since 0.1.0
 * @category models
 */
export interface Warnings {
  readonly warn: (
    kind: string,
    message: string,
    annotations: Readonly<Record<string, unknown>>
  ) => Effect.Effect<void>
}

/**
 * Builds rate-limited warnings with their own windows.
 *
 * @example
 * ```ts
 * import { Diagnostics } from "@stalewise/core"
 * import { Effect } from "effect"
 *
 * const warnings = Diagnostics.makeWarnings()
 * // a thousand failures, one line (the next line of the kind reports the 999 left out)
 * const program = Effect.repeatN(warnings.warn("store-down", "store unavailable", { backend: "redis" }), 999)
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeWarnings = (): Warnings => {
  const windows = new Map<string, { until: number; repeated: number }>()
  return {
    warn: (kind, message, annotations) =>
      Effect.flatMap(
        Effect.zip(Clock.currentTimeMillis, FiberRef.get(currentWarningInterval)),
        ([now, interval]) => {
          const window = windows.get(kind)
          if (window !== undefined && now < window.until) {
            window.repeated++
            return Effect.void
          }
          const repeated = window?.repeated ?? 0
          windows.set(kind, { until: now + Duration.toMillis(interval), repeated: 0 })
          return Effect.logWarning(message).pipe(
            Effect.annotateLogs(repeated > 0 ? { ...annotations, repeated } : annotations)
          )
        }
      )
  }
}

const owned = globalValue("@stalewise/core/Diagnostics/owned", () => new WeakMap<object, Warnings>())

/**
 * The rate-limited warnings of `owner` (a store, a queue, a strategy): everything that reports
 * on one owner shares its windows, so one outage of one store is one line per kind per
 * interval, whichever strategies use the store.
 *
 * @since 0.1.0
 * @category constructors
 */
export const warningsOf = (owner: object): Warnings => {
  let warnings = owned.get(owner)
  if (warnings === undefined) {
    warnings = makeWarnings()
    owned.set(owner, warnings)
  }
  return warnings
}
