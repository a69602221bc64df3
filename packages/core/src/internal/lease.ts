/** @internal */
import * as Duration from "effect/Duration"
import * as Either from "effect/Either"
import { PolicyError } from "../PolicyError.js"
import { positiveDuration } from "../TimePolicy.js"

/**
 * A lease token unique across processes: whoever releases must show it.
 *
 * @internal
 */
export const makeToken = (): string => globalThis.crypto.randomUUID()

/**
 * A lease duration in milliseconds, or a `PolicyError` when it is not positive or is infinite
 * (a lease that never runs out would lock a key for good).
 *
 * @internal
 */
export const leaseMillis = (duration: Duration.DurationInput): Either.Either<number, PolicyError> =>
  Either.flatMap(positiveDuration("leaseDuration", duration), (d) =>
    Duration.isFinite(d)
      ? Either.right(Duration.toMillis(d))
      : Either.left(new PolicyError({ reason: "InvalidDuration", option: "leaseDuration", detail: "must be finite" })))
