/**
 * The error raised when a strategy or time policy is given options that cannot work: a duration
 * that is not positive, or a combination such as `lifetime > timeToLive`. It is raised when the
 * policy is defined, before any value is cached.
 *
 * @since 0.1.0
 */
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"

/**
 * Invalid options, named by `option`. `InvalidDuration`: the value is not a positive duration
 * (zero, negative, `NaN` or unparseable). `InvalidValue`: another value out of its range (a
 * capacity that is not a positive integer, a fraction outside `[0, 1)`). `InvalidCombination`:
 * each option is valid on its own
 * but together they are not (e.g. `lifetime` longer than `timeToLive`).
 *
 * @example
 * ```ts
 * import { TimePolicy } from "@stalewise/core"
 * import { Effect } from "effect"
 *
 * const program = TimePolicy.make({ lifetime: "1 hour", timeToLive: "1 minute" }).pipe(
 *   Effect.catchTag("PolicyError", (error) => Effect.logError(error.message))
 * )
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class PolicyError extends Schema.TaggedError<PolicyError>("@stalewise/core/PolicyError")("PolicyError", {
  reason: Schema.Literal("InvalidDuration", "InvalidValue", "InvalidCombination"),
  /** The option at fault, e.g. `timeToLive` or `timeout`. */
  option: Schema.String,
  /** What is wrong, in words. */
  detail: Schema.String
}) {
  /**
   * @since 0.1.0
   */
  override get message(): string {
    return `Invalid option ${this.option}: ${this.detail}`
  }
}

/**
 * Reads a positive integer (a capacity, a count) for the option named `option`, failing with a
 * `PolicyError` (reason `InvalidValue`) otherwise.
 *
 * @since 0.1.0
 * @category constructors
 */
export const positiveInteger = (option: string, n: number): Either.Either<number, PolicyError> =>
  Number.isSafeInteger(n) && n > 0
    ? Either.right(n)
    : Either.left(new PolicyError({ reason: "InvalidValue", option, detail: `${n} is not a positive integer` }))
