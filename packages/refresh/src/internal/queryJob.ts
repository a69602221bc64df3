/** @internal */
import type { PolicyError } from "@stalewise/core"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type { ParseError } from "effect/ParseResult"
import * as Schema from "effect/Schema"
import type * as Job from "../Job.js"
import type * as QueryJob from "../QueryJob.js"
import * as internalJob from "./job.js"

/** @internal */
export const single = <Args extends ReadonlyArray<any>, Row, I, E = never, R = never>(
  options: QueryJob.Options<Args, Row, I, Option.Option<Row>, E, R>
): Effect.Effect<Job.Job<Args, Option.Option<Row>, E | ParseError>, PolicyError.PolicyError, R | Job.Requirements> => {
  const { empty, query, row, ...rest } = options
  const decode = Schema.decodeUnknown(row)
  return internalJob.make<Args, Option.Option<Row>, E | ParseError, R, Option.Option<Row>>({
    ...rest,
    schema: Schema.Option(row),
    empty: empty ?? Option.none,
    fetch: (...args) =>
      Effect.flatMap(query(...args), (rows) => rows.length > 0 ? Effect.asSome(decode(rows[0])) : Effect.succeedNone)
  })
}

/** @internal */
export const many = <Args extends ReadonlyArray<any>, Row, I, E = never, R = never>(
  options: QueryJob.Options<Args, Row, I, ReadonlyArray<Row>, E, R>
): Effect.Effect<Job.Job<Args, ReadonlyArray<Row>, E | ParseError>, PolicyError.PolicyError, R | Job.Requirements> => {
  const { empty, query, row, ...rest } = options
  const schema = Schema.Array(row)
  const decode = Schema.decodeUnknown(schema)
  return internalJob.make<Args, ReadonlyArray<Row>, E | ParseError, R, ReadonlyArray<Row>>({
    ...rest,
    schema,
    empty: empty ?? (() => []),
    fetch: (...args) => Effect.flatMap(query(...args), decode)
  })
}
