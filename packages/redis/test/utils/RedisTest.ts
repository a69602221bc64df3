/**
 * Access to the `redis-server` started by `test/globalSetup.ts`. Redis-backed suites skip with
 * `describe.skipIf(!RedisTest.available)`, and each test takes its own connection and key prefix
 * from `RedisTest.layer` (provided per test, not shared with `it.layer`), so concurrent tests never
 * see each other's keys.
 */
import { inject } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import { Redis } from "ioredis"
import type {} from "../globalSetup.js"

const server = inject("redisServer")

/** Whether a `redis-server` is running for this test run. */
export const available: boolean = server.available

/** The loopback address the server is bound to. */
export const host: string = server.available ? server.host : "127.0.0.1"

/** The server's port; `0` when `available` is false (the suites using it are skipped). */
export const port: number = server.available ? server.port : 0

/** A fresh key prefix, unique to the caller. */
export const makePrefix = (): string => `stalewise-test:${crypto.randomUUID()}:`

/** Opens a connection of its own to the test server; quits when the scope closes. */
export const connect: Effect.Effect<Redis, never, Scope.Scope> = Effect.acquireRelease(
  Effect.promise(async () => {
    const client = new Redis({ host, port, lazyConnect: true, maxRetriesPerRequest: 1 })
    await client.connect()
    return client
  }),
  (client) => Effect.promise(() => client.quit())
)

/**
 * What one test gets: its own connection, and `key(name)` to name keys under its own prefix.
 */
export class RedisTest extends Context.Tag("@stalewise/redis/test/RedisTest")<RedisTest, {
  readonly client: Redis
  readonly prefix: string
  readonly key: (name: string) => string
}>() {}

/** A connection and a key prefix for one test: provide it to each test, not to a shared layer. */
export const layer: Layer.Layer<RedisTest> = Layer.scoped(
  RedisTest,
  Effect.map(connect, (client) => {
    const prefix = makePrefix()
    return { client, prefix, key: (name: string) => `${prefix}${name}` }
  })
)
