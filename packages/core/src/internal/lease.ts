/** @internal */
import * as Duration from "effect/Duration"
import * as Either from "effect/Either"
import type { PolicyError } from "../PolicyError.js"
import { finiteDuration } from "../TimePolicy.js"

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
  Either.map(finiteDuration("leaseDuration", duration), Duration.toMillis)
