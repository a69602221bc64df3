/**
 * Hostile bytes and bad days against a real `redis-server`: arbitrary bytes where an entry should
 * be, undecodable values dropped without sending them back, command arguments never logged,
 * refused deletes reported to the caller, and an outage that costs a few log lines, not one per call.
 */
import { assert, describe, it } from "@effect/vitest"
import { CacheEntry, CacheFirst, CacheStore, Failover } from "@stalewise/core"
import { RedisStore } from "@stalewise/redis"
import { Job, RefreshQueue } from "@stalewise/refresh"
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FastCheck from "effect/FastCheck"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type { Redis } from "ioredis"
import * as RedisTest from "./utils/RedisTest.js"

const connection = { host: RedisTest.host, port: RedisTest.port }

const raw = <A>(f: (client: Redis) => Promise<A>) =>
  Effect.scoped(Effect.flatMap(RedisTest.connect, (client) => Effect.promise(() => f(client))))

const build = (options: RedisStore.LayerOptions) =>
  Effect.map(Layer.build(RedisStore.layer(options)), Context.get(CacheStore.CacheStore))

const entry = <A>(value: A) => CacheEntry.make({ value, createdAt: 0, staleAt: 60_000, expiresAt: Infinity })

/** Every log line, at every level, with its annotations and the pretty form of its cause. */
const captureLogs = () => {
  const lines: Array<string> = []
  const logger = Logger.make(({ annotations, cause, message }) => {
    lines.push(
      [
        ...(Array.isArray(message) ? message : [message]).map((part) =>
          typeof part === "string" ? part : JSON.stringify(part, (_, v) => typeof v === "bigint" ? String(v) : v)
        ),
        ...[...annotations].map(([k, v]) => `${k}=${String(v)}`),
        Cause.isEmpty(cause) ? "" : Cause.pretty(cause)
      ].join(" ")
    )
  })
  return {
    lines,
    layer: Layer.merge(Logger.replace(Logger.defaultLogger, logger), Logger.minimumLogLevel(LogLevel.All))
  }
}

/** An ACL user of the test server with `rules`, removed when the scope closes. */
const aclUser = (prefix: string, rules: ReadonlyArray<string>) => {
  const username = `hostile-${prefix.slice("stalewise-test:".length, -1)}`
  return Effect.as(
    Effect.acquireRelease(
      raw((client) => client.acl("SETUSER", username, "on", ">pw", "~*", "&*", ...rules)),
      () => raw((client) => client.acl("DELUSER", username))
    ),
    { username, password: "pw" }
  )
}

describe.skipIf(!RedisTest.available)("RedisStore: hostile bytes", () => {
  it.scoped("fuzz: any bytes where an entry should be are a value or a miss, never a defect", () =>
    Effect.gen(function*() {
      const keyPrefix = RedisTest.makePrefix()
      const store = yield* build({ ...connection, keyPrefix })
      const client = yield* RedisTest.connect
      const samples = FastCheck.sample(
        FastCheck.oneof(
          FastCheck.uint8Array({ maxLength: 512 }).map((bytes) => Buffer.from(bytes)),
          FastCheck.string({ unit: "binary" }).map((text) => Buffer.from(text)),
          FastCheck.record({ $: FastCheck.anything(), v: FastCheck.anything(), c: FastCheck.anything() })
            .map((envelope) => Buffer.from(JSON.stringify(envelope) ?? ""))
        ),
        200
      )
      for (const [i, bytes] of samples.entries()) {
        yield* Effect.promise(() => client.set(`${keyPrefix}v:ns:fn:${i}`, bytes))
        for (const schema of [undefined, Schema.String, Schema.Struct({ id: Schema.Number })]) {
          const exit = yield* Effect.exit(
            store.get(`ns:fn:${i}`, schema as Schema.Schema<unknown, unknown> | undefined)
          )
          assert.isTrue(Exit.isSuccess(exit), `sample ${i}`)
        }
      }
    }))

  it.scoped("an undecodable 8 MB value is dropped without being sent back; bytes that are not UTF-8 too", () =>
    Effect.gen(function*() {
      const keyPrefix = RedisTest.makePrefix()
      const store = yield* build({ ...connection, keyPrefix })
      const client = yield* RedisTest.connect
      const big = `{"$":1,"v":"${"x".repeat(8 * 1024 * 1024)}","c":0,"s":1,"e":null}`
      yield* Effect.promise(() => client.set(`${keyPrefix}v:ns:fn:big`, big))
      const inputBytes = Effect.promise(async () =>
        Number(/total_net_input_bytes:(\d+)/.exec(await client.info("stats"))![1])
      )
      const before = yield* inputBytes
      // a number schema cannot decode a string: a miss, and the key is gone
      assert.isTrue(Option.isNone(yield* store.get("ns:fn:big", Schema.Number)))
      const sent = (yield* inputBytes) - before
      assert.strictEqual(yield* Effect.promise(() => client.exists(`${keyPrefix}v:ns:fn:big`)), 0)
      assert.isBelow(sent, 1024 * 1024, `${sent} bytes sent to Redis to drop an 8 MB value`)

      yield* Effect.promise(() => client.set(`${keyPrefix}v:ns:fn:latin1`, Buffer.from([0x7b, 0xff, 0xfe, 0x22])))
      assert.isTrue(Option.isNone(yield* store.get("ns:fn:latin1")))
      assert.strictEqual(yield* Effect.promise(() => client.exists(`${keyPrefix}v:ns:fn:latin1`)), 0)
    }))

  it.scoped("a failed cleanup is logged without the stored value; Redis errors carry no command arguments", () => {
    const logs = captureLogs()
    return Effect.gen(function*() {
      const keyPrefix = RedisTest.makePrefix()
      // a user that may read but not run scripts: dropping an undecodable entry fails
      const user = yield* aclUser(keyPrefix, ["+@all", "-evalsha", "-eval"])
      const { Redacted } = yield* Effect.promise(() => import("effect"))
      const store = yield* build({ ...connection, keyPrefix, username: user.username, password: Redacted.make("pw") })
      const client = yield* RedisTest.connect
      yield* Effect.promise(() =>
        client.set(`${keyPrefix}v:ns:fn:1`, `{"$":1,"v":"SECRET-CARD-4111","c":0,"s":1,"e":null}`)
      )
      assert.isTrue(Option.isNone(yield* store.get("ns:fn:1", Schema.Number)))
      assert.isTrue(logs.lines.some((line) => line.includes("could not drop an undecodable entry")))
      assert.isFalse(logs.lines.some((line) => line.includes("SECRET")), logs.lines.join("\n"))
      // a write refused by the server: the error names the command, never its arguments
      const refusing = yield* aclUser(`${keyPrefix}w:`, ["+@all", "-set"])
      const readOnly = yield* build({
        ...connection,
        keyPrefix,
        username: refusing.username,
        password: Redacted.make("pw")
      })
      const error = yield* Effect.flip(readOnly.set("ns:fn:2", entry("SECRET-CARD-4111")))
      assert.notInclude(JSON.stringify(error), "SECRET")
      assert.notInclude(Cause.pretty(Cause.fail(error)), "SECRET")
    }).pipe(Effect.provide(logs.layer))
  })
})

describe.skipIf(!RedisTest.available)("RedisStore: refused deletes are failures the caller sees", () => {
  it.scoped("UNLINK and SCAN refused: invalidate, invalidateAll, Job.delete and Job.clear fail with CacheStoreError", () =>
    Effect.gen(function*() {
      const keyPrefix = RedisTest.makePrefix()
      const user = yield* aclUser(keyPrefix, ["+@all", "-unlink", "-scan"])
      const { Redacted } = yield* Effect.promise(() => import("effect"))
      const store = yield* build({ ...connection, keyPrefix, username: user.username, password: Redacted.make("pw") })
      const lookup = (id: number) => Effect.succeed(`v${id}`)
      const provide = Effect.provideService(CacheStore.CacheStore, store)
      const failover = yield* provide(Failover.make({ name: "f", lookup, timeout: "1 second" }))
      const cacheFirst = yield* provide(CacheFirst.makePersisted({ name: "c", lookup, timeToLive: "1 hour" }))
      const job = yield* Job.make({ name: `j${crypto.randomUUID().slice(0, 8)}`, fetch: lookup }).pipe(
        Effect.provide(Layer.merge(Layer.succeed(CacheStore.CacheStore, store), RefreshQueue.layerFibers()))
      )
      yield* failover.get(1)
      yield* cacheFirst.get(1)
      yield* job.get(1)
      for (
        const attempt of [
          failover.invalidate(1),
          cacheFirst.invalidate(1),
          cacheFirst.invalidateAll,
          job.delete(1),
          job.clear
        ] as ReadonlyArray<Effect.Effect<unknown, { readonly _tag: string }>>
      ) {
        const error = yield* Effect.flip(attempt)
        assert.strictEqual(error._tag, "CacheStoreError")
      }
      // and the entries are still there, as the caller was told
      assert.isTrue(Option.isSome(yield* failover.peek(1)))
      assert.isTrue(Option.isSome(yield* job.peek(1)))
    }))
})

describe.skipIf(!RedisTest.available)("RedisStore: an outage", () => {
  it.scopedLive("Redis stopped for 3 s under load: a few warning lines with counts, not one per call", () => {
    const logs = captureLogs()
    return Effect.gen(function*() {
      const server = yield* RedisTest.privateServer
      const store = yield* build({ host: RedisTest.host, port: server.port, commandTimeout: "500 millis" })
      const failover = yield* Failover.make({
        name: "rate",
        lookup: (id: number) => Effect.succeed(id),
        timeout: "1 second"
      })
        .pipe(Effect.provideService(CacheStore.CacheStore, store))
      yield* failover.get(0)
      yield* server.stop
      const deadline = performance.now() + 3_000
      let calls = 0
      yield* Effect.all(
        Array.from({ length: 4 }, () =>
          Effect.gen(function*() {
            while (performance.now() < deadline) {
              yield* failover.get(calls++ % 100)
            }
          })),
        { concurrency: "unbounded" }
      )
      const warnings = logs.lines.filter((line) => line.includes("stalewise:") && line.includes("failed"))
      console.info(`[stalewise] Redis down for 3 s: ${calls} calls, ${warnings.length} warning lines`)
      assert.isAtLeast(calls, 100)
      assert.isAtMost(warnings.length, 4)
    }).pipe(Effect.provide(logs.layer))
  })
})
