import { KeyValueStore } from "@effect/platform"
import { SqlClient, Statement } from "@effect/sql"
import { SqliteClient } from "@effect/sql-sqlite-node"
import { assert, describe, it } from "@effect/vitest"
import { CacheStore } from "@stalewise/core"
import { QueryJob, RefreshQueue } from "@stalewise/refresh"
import { Effect, Layer, Option, Schema, TestClock } from "effect"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { eventually, stored, unique } from "./utils.js"

/** SQLite has no booleans: 0 and 1. */
const Flag = Schema.transform(Schema.Literal(0, 1), Schema.Boolean, {
  strict: true,
  decode: (n) => n === 1,
  encode: (b) => (b ? 1 : 0)
})

const User = Schema.Struct({ id: Schema.Number, name: Schema.String, staff: Flag, joined: Schema.Date })

/** Creates and fills the users table of a fresh database. */
const seed = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`create table users (id integer primary key, name text not null, staff integer not null, joined text not null)`
  yield* sql`insert into users ${
    sql.insert([
      { id: 1, name: "Ada", staff: 1, joined: "2024-01-02T00:00:00.000Z" },
      { id: 2, name: "Grace", staff: 1, joined: "2024-03-04T00:00:00.000Z" },
      { id: 3, name: "Linus", staff: 0, joined: "2024-05-06T00:00:00.000Z" }
    ])
  }`
})

/** Counts the SQL statements executed by `effect` (and the fibers it forks). */
const countingQueries = <A, E, R>(effect: (queries: () => number) => Effect.Effect<A, E, R>) => {
  let queries = 0
  return effect(() => queries).pipe(
    Statement.withTransformer((statement) =>
      Effect.sync(() => {
        queries++
        return statement
      })
    )
  )
}

const InMemory = SqliteClient.layer({ filename: ":memory:" })
const Env = Layer.mergeAll(CacheStore.layerMemory, RefreshQueue.layerFibers(), InMemory)

describe("QueryJob (SQLite)", () => {
  it.effect("single: ten gets of the same query cost one SQL query; rows are decoded by the schema", () =>
    Effect.gen(function*() {
      yield* seed
      const sql = yield* SqlClient.SqlClient
      const userById = yield* QueryJob.single({
        name: unique(),
        row: User,
        query: (id: number) => sql`select id, name, staff, joined from users where id = ${id}`
      })
      yield* countingQueries((queries) =>
        Effect.gen(function*() {
          const concurrent = yield* Effect.all(Array.from({ length: 10 }, () => userById.get(1)), {
            concurrency: "unbounded"
          })
          for (let i = 0; i < 10; i++) yield* userById.get(1)
          assert.strictEqual(queries(), 1)
          const user = Option.getOrThrow(concurrent[0]!)
          assert.deepStrictEqual(user, {
            id: 1,
            name: "Ada",
            staff: true,
            joined: new Date("2024-01-02T00:00:00.000Z")
          })
          assert.isTrue(concurrent.every((found) => Option.isSome(found) && found.value === user))
          yield* userById.get(2)
          assert.strictEqual(queries(), 2)
        })
      )
    }).pipe(Effect.scoped, Effect.provide(Env)))

  it.effect("single: an absent row is None, and the absence is cached until invalidated", () =>
    Effect.gen(function*() {
      yield* seed
      const sql = yield* SqlClient.SqlClient
      const userById = yield* QueryJob.single({
        name: unique(),
        row: User,
        query: (id: number) => sql`select id, name, staff, joined from users where id = ${id}`
      })
      yield* countingQueries((queries) =>
        Effect.gen(function*() {
          assert.isTrue(Option.isNone(yield* userById.get(9)))
          assert.isTrue(Option.isNone(yield* userById.get(9)))
          assert.strictEqual(queries(), 1)
        })
      )
      yield* sql`insert into users (id, name, staff, joined) values (9, 'Barbara', 0, '2024-07-08T00:00:00.000Z')`
      yield* userById.invalidate(9)
      yield* eventually(Effect.map(stored(userById, 9), (entry) => entry !== undefined && Option.isSome(entry.value)))
      assert.strictEqual(Option.getOrThrow(yield* userById.get(9)).name, "Barbara")
    }).pipe(Effect.scoped, Effect.provide(Env)))

  it.effect("many: stale rows are served while one query refreshes them", () =>
    Effect.gen(function*() {
      yield* seed
      const sql = yield* SqlClient.SqlClient
      const staff = yield* QueryJob.many({
        name: unique(),
        row: User,
        query: () => sql`select id, name, staff, joined from users where staff = 1 order by id`,
        lifetime: "1 minute"
      })
      yield* countingQueries((queries) =>
        Effect.gen(function*() {
          const first = yield* staff.get()
          assert.deepStrictEqual(first.map((user) => user.name), ["Ada", "Grace"])
          yield* sql`update users set staff = 1 where id = 3`
          assert.strictEqual(queries(), 2)
          yield* TestClock.adjust("1 minute")
          const stale = yield* staff.getWithOutcome()
          assert.deepStrictEqual([stale.status, stale.value.map((user) => user.name)], ["stale", ["Ada", "Grace"]])
          yield* eventually(Effect.map(stored(staff), (entry) => entry?.value.length === 3))
          const fresh = yield* staff.getWithOutcome()
          assert.deepStrictEqual([fresh.status, fresh.value.map((user) => user.name)], ["hit", [
            "Ada",
            "Grace",
            "Linus"
          ]])
          assert.strictEqual(queries(), 3)
        })
      )
    }).pipe(Effect.scoped, Effect.provide(Env)))

  it.effect("with a serialising store and a database file, cached rows come back exactly as decoded", () => {
    const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "stalewise-sqlite-"))
    const FileEnv = Layer.mergeAll(
      CacheStore.layerKeyValueStore.pipe(Layer.provide(KeyValueStore.layerMemory)),
      RefreshQueue.layerFibers(),
      SqliteClient.layer({ filename: Path.join(dir, "users.db") })
    )
    return Effect.gen(function*() {
      yield* seed
      const sql = yield* SqlClient.SqlClient
      const userById = yield* QueryJob.single({
        name: unique(),
        row: User,
        query: (id: number) => sql`select id, name, staff, joined from users where id = ${id}`
      })
      const fromDatabase = yield* userById.getWithOutcome(2)
      const fromCache = yield* userById.getWithOutcome(2)
      assert.deepStrictEqual([fromDatabase.status, fromCache.status], ["miss", "hit"])
      assert.deepStrictEqual(fromCache.value, fromDatabase.value)
      assert.instanceOf(Option.getOrThrow(fromCache.value).joined, Date)
      assert.notStrictEqual(fromCache.value, fromDatabase.value) // decoded from the store, not the live object
    }).pipe(
      Effect.scoped,
      Effect.provide(FileEnv),
      Effect.ensuring(Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true })))
    )
  })
})
