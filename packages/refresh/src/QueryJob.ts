/**
 * Query jobs: cacheback's `QuerySetGetJob` and `QuerySetFilterJob` for `@effect/sql`. A query
 * job is a stale-while-revalidate `Job` whose fetch runs a SQL query and decodes its rows with a
 * Schema — `single` for at most one row (`Option`), `many` for all of them. The same row schema
 * encodes the cached value for stores that serialise, so what comes back from Redis or a file is
 * exactly what the database gave.
 *
 * The query is any effect that yields rows, typically an `@effect/sql` statement
 * (`` sql`select …` ``); this module does not import `@effect/sql` itself, so the package's
 * main entry never loads it.
 *
 * @since 0.1.0
 */
import type { PolicyError } from "@stalewise/core"
import type * as Effect from "effect/Effect"
import type * as Option from "effect/Option"
import type { ParseError } from "effect/ParseResult"
import type * as Schema from "effect/Schema"
import * as internal from "./internal/queryJob.js"
import type * as Job from "./Job.js"

/**
 * The options of a query job: a `Job`'s options, with `fetch` replaced by a `query` and the
 * value schema derived from the `row` schema.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options<Args extends ReadonlyArray<any>, Row, I, A, E, R>
  extends Omit<Job.BaseOptions<Args, A, never, E | ParseError>, "schema" | "empty">
{
  /** Decodes each row the query returns, and encodes the cached rows for serialising stores. */
  readonly row: Schema.Schema<Row, I>
  /** Runs the query: any effect yielding rows, typically an `@effect/sql` statement. */
  readonly query: (...args: Args) => Effect.Effect<ReadonlyArray<unknown>, E, R>
  /** What a miss returns without fetching when `fetchOnMiss` is false. Default: no row(s). */
  readonly empty?: (() => NoInfer<A>) | undefined
}

/**
 * A job over one row (cacheback `QuerySetGetJob`): the first row the query returns, decoded,
 * or `None` — absence is cached too, so invalidate the job after inserting the row. Ten `get`s
 * of the same arguments cost one query: concurrent misses share one fetch, and later reads hit.
 *
 * @example
 * ```ts
 * import { SqlClient } from "@effect/sql"
 * import { CacheStore } from "@stalewise/core"
 * import { QueryJob, RefreshQueue } from "@stalewise/refresh"
 * import { Effect, Layer, Schema } from "effect"
 *
 * const User = Schema.Struct({ id: Schema.Number, name: Schema.String })
 *
 * const program = Effect.gen(function*() {
 *   const sql = yield* SqlClient.SqlClient
 *   const userById = yield* QueryJob.single({
 *     name: "userById",
 *     row: User,
 *     query: (id: number) => sql`select id, name from users where id = ${id}`,
 *     lifetime: "1 minute"
 *   })
 *   return yield* userById.get(1) // Option<{ id: number; name: string }>
 * }).pipe(Effect.scoped, Effect.provide(Layer.merge(CacheStore.layerMemory, RefreshQueue.layerFibers())))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const single: <Args extends ReadonlyArray<any>, Row, I, E = never, R = never>(
  options: Options<Args, Row, I, Option.Option<Row>, E, R>
) => Effect.Effect<
  Job.Job<Args, Option.Option<Row>, E | ParseError>,
  PolicyError.PolicyError,
  R | Job.Requirements
> = internal.single

/**
 * A job over many rows (cacheback `QuerySetFilterJob`): every row the query returns, decoded.
 *
 * @example
 * ```ts
 * import { SqlClient } from "@effect/sql"
 * import { CacheStore } from "@stalewise/core"
 * import { QueryJob, RefreshQueue } from "@stalewise/refresh"
 * import { Effect, Layer, Schema } from "effect"
 *
 * const User = Schema.Struct({ id: Schema.Number, name: Schema.String, joined: Schema.Date })
 *
 * const program = Effect.gen(function*() {
 *   const sql = yield* SqlClient.SqlClient
 *   const staff = yield* QueryJob.many({
 *     name: "staff",
 *     row: User,
 *     query: () => sql`select id, name, joined from users where staff = 1 order by id`
 *   })
 *   return yield* staff.get() // ReadonlyArray<{ id: number; name: string; joined: Date }>
 * }).pipe(Effect.scoped, Effect.provide(Layer.merge(CacheStore.layerMemory, RefreshQueue.layerFibers())))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const many: <Args extends ReadonlyArray<any>, Row, I, E = never, R = never>(
  options: Options<Args, Row, I, ReadonlyArray<Row>, E, R>
) => Effect.Effect<
  Job.Job<Args, ReadonlyArray<Row>, E | ParseError>,
  PolicyError.PolicyError,
  R | Job.Requirements
> = internal.many
