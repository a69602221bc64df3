import { assert, describe, it } from "@effect/vitest"
import { RedisClient, RedisStore } from "@stalewise/redis"
import * as Config from "effect/Config"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Scope from "effect/Scope"
import { Redis } from "ioredis"
import * as RedisTest from "./utils/RedisTest.js"

describe("RedisClient options", () => {
  // No server needed: invalid options fail before any connection is attempted.
  for (
    const [option, input, detail] of [
      ["commandTimeout", 0, "0 is not positive"],
      ["commandTimeout", "-5 seconds", "\"-5 seconds\" is not positive"],
      ["connectTimeout", -1, "-1 is not positive"],
      ["connectTimeout", "0 millis", "\"0 millis\" is not positive"],
      ["connectTimeout", Duration.infinity, "is not finite"]
    ] as const
  ) {
    it.effect(`${option}: ${String(input)} is a PolicyError, not a connect failure`, () =>
      Effect.gen(function*() {
        const error = yield* RedisClient.make({ host: "127.0.0.1", port: 1, [option]: input }).pipe(
          Effect.scoped,
          Effect.flip
        )
        assert.strictEqual(error._tag, "PolicyError")
        assert.include(error.message, option)
        assert.include(error.message, detail)
      }))
  }

  it.effect("url is exclusive with host, port, db, username and password", () =>
    Effect.gen(function*() {
      const error = yield* RedisClient.make({ url: "redis://127.0.0.1:1", port: 2 }).pipe(Effect.scoped, Effect.flip)
      assert.strictEqual(error._tag, "PolicyError")
      assert.strictEqual(error._tag === "PolicyError" && error.reason, "InvalidCombination")
    }))

  it.effect("nodes (a cluster) are exclusive with url, host, port and db; not empty; only database 0; never echoed", () =>
    Effect.gen(function*() {
      const fails = (options: RedisClient.RedisOptions) =>
        Effect.flip(
          Effect.scoped(RedisClient.make({ ...options, whenUnreachable: "fail", connectTimeout: "100 millis" }))
        )
      for (const options of [{ port: 2 }, { host: "h" }, { url: "redis://h:1" }, { db: 1 }]) {
        const error = yield* fails({ nodes: ["127.0.0.1:1"], ...options })
        assert.strictEqual(error._tag === "PolicyError" && error.reason, "InvalidCombination", JSON.stringify(options))
      }
      for (
        const [nodes, detail] of [
          [[], "at least one node"],
          [["redis://127.0.0.1:1/2"], "only database 0"],
          [["http://127.0.0.1:1"], "only redis:// and rediss://"],
          [[Redacted.make("redis://:s3cret@bad host:1")], "node 0 is not a URL"]
        ] as const
      ) {
        const error = yield* fails({ nodes })
        assert.strictEqual(error._tag, "PolicyError")
        assert.include(error.message, detail)
        assert.notInclude(error.message, "s3cret")
      }
    }))

  it.effect("the stores' layers report invalid Redis timeouts as PolicyError too", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(
        Effect.scoped(
          Layer.build(RedisStore.layer({ host: "127.0.0.1", port: 1, commandTimeout: "-5 seconds", keyPrefix: "x:" }))
        )
      )
      assert.strictEqual(error._tag, "PolicyError")
      assert.include(error.message, "\"-5 seconds\" is not positive")
    }))
})

describe.skipIf(!RedisTest.available)("RedisClient connection sources", () => {
  it.scopedLive("connects from a URL kept in a Redacted, read from Config (REDIS_URL)", () =>
    Effect.gen(function*() {
      const url = `redis://${RedisTest.host}:${RedisTest.port}/5`
      const layer = RedisClient.layerConfig({ url: Config.redacted("REDIS_URL") })
      const info = yield* Effect.flatMap(
        RedisClient.RedisClient,
        (redis) => redis.use("client", (client) => client.client("INFO") as Promise<string>)
      ).pipe(
        Effect.provide(layer),
        Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["REDIS_URL", url]])))
      )
      assert.match(info, / db=5 /)
    }))

  it.scopedLive("a plain URL string works too; a wrong one fails with RedisError, the URL's password redacted", () =>
    Effect.gen(function*() {
      const redis = yield* RedisClient.make({ url: `redis://${RedisTest.host}:${RedisTest.port}` })
      assert.strictEqual(yield* redis.use("ping", (client) => client.ping()), "PONG")
      const error = yield* RedisClient.make({
        url: Redacted.make(
          `redis://nobody-${crypto.randomUUID()}:not-the-password@${RedisTest.host}:${RedisTest.port}`
        ),
        connectTimeout: "2 seconds"
      }).pipe(Effect.scoped, Effect.flip)
      assert.strictEqual(error._tag, "RedisError")
      assert.notInclude(JSON.stringify(error), "not-the-password")
    }))

  it.scopedLive("wraps an ioredis client the application already has, connects it if lazy, and leaves it open", () =>
    Effect.gen(function*() {
      const client = new Redis({ host: RedisTest.host, port: RedisTest.port, lazyConnect: true })
      yield* Effect.addFinalizer(() => Effect.promise(() => client.quit()))
      const key = `${RedisTest.makePrefix()}k`

      const scope = yield* Scope.make()
      const redis = yield* Effect.provide(RedisClient.RedisClient, RedisClient.layerIoRedis(client)).pipe(
        Scope.extend(scope)
      )
      assert.strictEqual(redis.client, client)
      yield* redis.use("set", (c) => c.set(key, "v"))
      // duplicate opens a connection of its own, with the client's options
      const other = yield* redis.duplicate().pipe(Scope.extend(scope))
      assert.notStrictEqual(other.client, client)
      assert.strictEqual(yield* other.use("get", (c) => c.get(key)), "v")
      yield* Scope.close(scope, Exit.void)

      // the duplicate was ours to close; the application's client is still usable
      assert.strictEqual(other.client.status, "end")
      assert.strictEqual(client.status, "ready")
      assert.strictEqual(yield* Effect.promise(() => client.get(key)), "v")
      yield* Effect.promise(() => client.del(key))
    }))
})

describe("RedisClient on a Redis Cluster that cannot be reached", () => {
  it.scopedLive("keep-trying: make returns, commands fail fast with Connection, closing stops it; fail: a RedisError", () =>
    Effect.gen(function*() {
      const nodes = ["127.0.0.1:1", "127.0.0.1:2"]
      const [took, redis] = yield* Effect.timed(
        RedisClient.make({ nodes, connectTimeout: "300 millis", ...RedisStore.clientDefaults })
      )
      assert.isBelow(Duration.toMillis(took), 2_000)
      const [failedIn, error] = yield* Effect.timed(Effect.flip(redis.use("get", (client) => client.get("k"))))
      assert.strictEqual(error.reason, "Connection")
      assert.isBelow(Duration.toMillis(failedIn), 100)
      const refused = yield* Effect.flip(
        Effect.scoped(RedisClient.make({ nodes, whenUnreachable: "fail", connectTimeout: "300 millis" }))
      )
      assert.strictEqual(refused._tag, "RedisError")
    }))
})

describe.skipIf(!RedisTest.clusterAvailable)("RedisClient on a Redis Cluster", () => {
  it.scopedLive("connects from a node list read from Config (REDIS_NODES, comma-separated)", () =>
    Effect.gen(function*() {
      const layer = RedisClient.layerConfig({ nodes: Config.array(Config.string(), "REDIS_NODES") })
      const redis = yield* Effect.map(Layer.build(layer), Context.get(RedisClient.RedisClient)).pipe(
        Effect.withConfigProvider(
          ConfigProvider.fromMap(new Map([["REDIS_NODES", RedisTest.clusterNodes.slice(0, 2).join(",")]]))
        )
      )
      assert.isTrue(RedisClient.isCluster(redis.client))
      // the two startup nodes were enough: the client found the three masters
      yield* RedisTest.eventually(
        Effect.sync(() => RedisClient.isCluster(redis.client) && redis.client.nodes("master").length === 3),
        { within: "5 seconds" }
      )
      // keys of every slot are reachable through it
      const prefix = RedisTest.makePrefix()
      for (let i = 0; i < 50; i++) yield* redis.use("set", (client) => client.set(`${prefix}${i}`, String(i)))
      for (let i = 0; i < 50; i++) {
        assert.strictEqual(yield* redis.use("get", (client) => client.get(`${prefix}${i}`)), String(i))
      }
    }))

  it.scopedLive("wraps an ioredis Cluster the application already has, and duplicates it", () =>
    Effect.gen(function*() {
      const client = yield* RedisTest.connectCluster
      const redis = yield* RedisClient.fromIoRedis(client)
      assert.strictEqual(redis.client, client)
      const key = `${RedisTest.makePrefix()}k`
      yield* redis.use("set", (c) => c.set(key, "v"))
      const other = yield* redis.duplicate()
      assert.isTrue(RedisClient.isCluster(other.client))
      assert.notStrictEqual(other.client, client)
      assert.strictEqual(yield* other.use("get", (c) => c.get(key)), "v")
    }))

  it.scopedLive("a node list with credentials in its URLs: the credentials apply to every node, never echoed", () =>
    Effect.gen(function*() {
      // the test cluster knows no user "nobody": the credentials are refused by every node
      const error = yield* Effect.flip(
        RedisClient.make({
          nodes: RedisTest.clusterNodes.map((node) => Redacted.make(`redis://nobody:s3cret@${node}`)),
          whenUnreachable: "fail",
          connectTimeout: "2 seconds"
        })
      )
      assert.strictEqual(error._tag, "RedisError")
      assert.notInclude(error.message, "s3cret")
    }))
})
