import { assert, describe, it } from "@effect/vitest"
import { RedisClient } from "@stalewise/redis"
import * as Clock from "effect/Clock"
import * as Config from "effect/Config"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Scope from "effect/Scope"
import * as Net from "node:net"
import * as Util from "node:util"
import * as RedisTest from "./utils/RedisTest.js"

// A port nobody listens on: bound by the OS, then released.
const closedPort = Effect.promise(() =>
  new Promise<number>((resolve, reject) => {
    const probe = Net.createServer()
    probe.once("error", reject)
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address() as Net.AddressInfo
      probe.close(() => resolve(port))
    })
  })
)

interface SilentServer {
  readonly server: Net.Server
  readonly port: number
  readonly sockets: ReadonlySet<Net.Socket>
  /** How many connections the server has accepted. */
  readonly accepted: () => number
  /** Completes once every connection the server accepted has been closed. */
  readonly allClosed: () => Promise<void>
}

// A TCP server that accepts connections, reads and discards what it gets and never answers, like
// a hung Redis.
const silentServer = Effect.acquireRelease(
  Effect.promise(() =>
    new Promise<SilentServer>((resolve, reject) => {
      const sockets = new Set<Net.Socket>()
      let accepted = 0
      const waiting = new Set<() => void>()
      const settle = () => {
        if (sockets.size > 0) return
        for (const done of waiting) done()
      }
      const server = Net.createServer((socket) => {
        accepted++
        sockets.add(socket)
        socket.resume()
        socket.once("close", () => {
          sockets.delete(socket)
          settle()
        })
      })
      const allClosed = () =>
        new Promise<void>((done) => {
          waiting.add(done)
          settle()
        })
      server.once("error", reject)
      server.listen(0, "127.0.0.1", () => {
        const port = (server.address() as Net.AddressInfo).port
        resolve({ server, port, sockets, accepted: () => accepted, allClosed })
      })
    })
  ),
  ({ server, sockets }) =>
    Effect.promise(() => {
      for (const socket of sockets) socket.destroy()
      return new Promise<void>((resolve) => server.close(() => resolve()))
    })
)

describe("RedisClient without a server", () => {
  it.live("whenUnreachable: fail — fails fast with a Connection error when nothing listens on the port", () =>
    Effect.gen(function*() {
      const port = yield* closedPort
      const start = yield* Clock.currentTimeMillis
      const error = yield* RedisClient.make({
        host: "127.0.0.1",
        port,
        connectTimeout: "2 seconds",
        whenUnreachable: "fail"
      }).pipe(
        Effect.scoped,
        Effect.flip
      )
      const elapsed = (yield* Clock.currentTimeMillis) - start
      assert.strictEqual(error._tag, "RedisError")
      assert.strictEqual(error.reason, "Connection")
      assert.strictEqual(error._tag === "RedisError" && error.method, "connect")
      assert.include(error.message, "ECONNREFUSED")
      assert.isBelow(elapsed, 1_000)
    }))

  it.live("whenUnreachable: fail — a Timeout error when the server does not become ready within connectTimeout", () =>
    Effect.gen(function*() {
      const server = yield* silentServer
      const port = server.port
      const start = yield* Clock.currentTimeMillis
      // The scope stays open while we look: cleaning up a failed connect must not wait for it.
      const error = yield* Effect.flip(
        RedisClient.make({ host: "127.0.0.1", port, connectTimeout: "200 millis", whenUnreachable: "fail" })
      )
      const elapsed = (yield* Clock.currentTimeMillis) - start
      assert.strictEqual(error.reason, "Timeout")
      assert.strictEqual(error._tag === "RedisError" && error.method, "connect")
      assert.isAtLeast(elapsed, 150)
      assert.isBelow(elapsed, 2_000)
      // The connection is not left open for the hung server to keep.
      yield* Effect.promise(server.allClosed).pipe(
        Effect.timeoutFail({ duration: "2 seconds", onTimeout: () => new Error("connection left open") })
      )
      // ioredis would retry within 50 ms (its default retryStrategy); a failed make must not.
      yield* Effect.sleep("300 millis")
      assert.strictEqual(server.accepted(), 1)
    }).pipe(Effect.scoped))
})

describe.skipIf(!RedisTest.available)("RedisClient when Redis is down at first (the default)", () => {
  it.scopedLive("builds at once, commands fail fast with Connection, and it connects when Redis starts", () =>
    Effect.gen(function*() {
      const server = yield* RedisTest.privateServerDown
      const [built, redis] = yield* Effect.timed(
        RedisClient.make({ host: RedisTest.host, port: server.port, commandTimeout: "200 millis" })
      )
      assert.isBelow(Duration.toMillis(built), 1_000)
      const delays: Array<number> = []
      redis.client.on("reconnecting", (delay: number) => delays.push(delay))
      const error = yield* Effect.flip(redis.use("ping", (client) => client.ping()))
      // ioredis's offline queue (on by default here) would hold the command: it fails at the timeout
      // or at once, never hangs past the commandTimeout
      assert.oneOf(error.reason, ["Connection", "Timeout"])
      yield* Effect.sleep("1 second")
      yield* server.start
      const recovered = yield* RedisTest.eventually(
        Effect.map(Effect.either(redis.use("ping", (client) => client.ping())), (result) => result._tag === "Right"),
        { within: "5 seconds", every: "10 millis" }
      )
      assert.isBelow(recovered, 500)
      assert.isAbove(delays.length, 3, "it kept trying")
      assert.isAtMost(Math.max(...delays), 250, "maxReconnectDelay")
    }))

  it.scopedLive("a hung server: make returns after connectTimeout and keeps trying", () =>
    Effect.gen(function*() {
      const server = yield* silentServer
      const [built, redis] = yield* Effect.timed(
        RedisClient.make({
          host: "127.0.0.1",
          port: server.port,
          connectTimeout: "200 millis",
          commandTimeout: "100 millis"
        })
      )
      assert.isAtLeast(Duration.toMillis(built), 150)
      assert.isBelow(Duration.toMillis(built), 1_000)
      const error = yield* Effect.flip(redis.use("ping", (client) => client.ping()))
      assert.oneOf(error.reason, ["Connection", "Timeout"])
      // each attempt times out after connectTimeout; another one follows
      yield* RedisTest.eventually(Effect.sync(() => server.accepted() >= 2), { within: "3 seconds" })
    }))
})

describe.skipIf(!RedisTest.available)("RedisClient against redis-server", () => {
  const options = { host: RedisTest.host, port: RedisTest.port }

  it.scopedLive("connects and round-trips a value", () =>
    Effect.gen(function*() {
      const redis = yield* RedisClient.make(options)
      const key = `${RedisTest.makePrefix()}greeting`
      assert.strictEqual(redis.client.status, "ready")
      assert.strictEqual(yield* redis.use("set", (client) => client.set(key, "hello", "PX", 60_000)), "OK")
      assert.strictEqual(yield* redis.use("get", (client) => client.get(key)), "hello")
    }))

  it.scopedLive("turns a server error reply into a Command error named after the method", () =>
    Effect.gen(function*() {
      const redis = yield* RedisClient.make(options)
      const key = `${RedisTest.makePrefix()}list`
      yield* redis.use("rpush", (client) => client.rpush(key, "a"))
      const error = yield* redis.use("get", (client) => client.get(key)).pipe(Effect.flip)
      assert.strictEqual(error.reason, "Command")
      assert.strictEqual(error.method, "get")
      assert.include(error.message, "WRONGTYPE")
    }))

  it.live("applies commandTimeout, and still closes a connection whose QUIT gets no answer", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const redis = yield* RedisClient.make({ ...options, commandTimeout: "100 millis" }).pipe(Scope.extend(scope))
      const key = `${RedisTest.makePrefix()}queue`
      // BLPOP blocks this connection for 30 s: the server will not answer anything after it either.
      // Uninterruptible, as in a finalizer (releasing a lease): the timeout must hold there too.
      const error = yield* redis.use("blpop", (client) => client.blpop(key, 30)).pipe(
        Effect.uninterruptible,
        Effect.flip
      )
      assert.strictEqual(error.reason, "Timeout")
      assert.strictEqual(error.method, "blpop")
      const start = yield* Clock.currentTimeMillis
      yield* Scope.close(scope, Exit.void)
      assert.strictEqual(redis.client.status, "end")
      assert.isBelow((yield* Clock.currentTimeMillis) - start, 1_000)
    }))

  it.live("closes the connection when its scope closes", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const redis = yield* RedisClient.make(options).pipe(Scope.extend(scope))
      assert.strictEqual(yield* redis.use("ping", (client) => client.ping()), "PONG")
      yield* Scope.close(scope, Exit.void)
      assert.strictEqual(redis.client.status, "end")
      const error = yield* redis.use("ping", (client) => client.ping()).pipe(Effect.flip)
      assert.strictEqual(error.reason, "Connection")
    }))

  it.scopedLive("layerConfig reads its options, password included, from Config", () =>
    Effect.gen(function*() {
      // An ACL user of our own proves that username and the redacted password reach the server.
      const admin = yield* RedisTest.connect
      const prefix = RedisTest.makePrefix()
      const username = `user-${prefix.slice("stalewise-test:".length, -1)}`
      yield* Effect.acquireRelease(
        Effect.promise(() => admin.acl("SETUSER", username, "on", ">s3cret", `~${prefix}*`, "+@all")),
        () => Effect.promise(() => admin.acl("DELUSER", username))
      )
      const config = ConfigProvider.fromMap(
        new Map([
          ["REDIS_HOST", RedisTest.host],
          ["REDIS_PORT", String(RedisTest.port)],
          ["REDIS_DB", "3"],
          ["REDIS_USERNAME", username],
          ["REDIS_PASSWORD", "s3cret"],
          ["REDIS_COMMAND_TIMEOUT", "2 seconds"]
        ])
      )
      const layer = RedisClient.layerConfig({
        host: Config.string("REDIS_HOST"),
        port: Config.port("REDIS_PORT"),
        db: Config.integer("REDIS_DB"),
        username: Config.string("REDIS_USERNAME"),
        password: Config.redacted("REDIS_PASSWORD"),
        commandTimeout: Config.duration("REDIS_COMMAND_TIMEOUT")
      })
      const [whoami, info] = yield* Effect.gen(function*() {
        const redis = yield* RedisClient.RedisClient
        const whoami = yield* redis.use("acl", (client) => client.acl("WHOAMI"))
        const info = yield* redis.use("client", (client) => client.client("INFO") as Promise<string>)
        return [whoami, info] as const
      }).pipe(Effect.provide(layer), Effect.withConfigProvider(config))
      assert.strictEqual(whoami, username)
      assert.match(info, / db=3 /)

      const wrongPassword = ConfigProvider.fromMap(
        new Map([
          ["REDIS_PORT", String(RedisTest.port)],
          ["REDIS_USERNAME", username],
          ["REDIS_PASSWORD", "not-the-password"]
        ])
      )
      const logs: Array<string> = []
      const captureLogs = Logger.make(({ message }) => {
        logs.push(Util.inspect(message, { depth: 10 }))
      })
      const error = yield* RedisClient.RedisClient.pipe(
        Effect.provide(RedisClient.layerConfig({
          host: Config.succeed(RedisTest.host),
          port: Config.port("REDIS_PORT"),
          username: Config.string("REDIS_USERNAME"),
          password: Config.redacted("REDIS_PASSWORD"),
          connectTimeout: Config.succeed(Duration.seconds(2))
        })),
        Effect.withConfigProvider(wrongPassword),
        Effect.flip,
        Effect.provide(Logger.replace(Logger.defaultLogger, captureLogs)),
        Logger.withMinimumLogLevel(LogLevel.Debug)
      )
      assert.strictEqual(error._tag, "RedisError")
      if (error._tag === "RedisError") {
        assert.strictEqual(error.reason, "Connection")
        assert.include(error.message, "WRONGPASS")
        // ioredis attaches the failed AUTH command, password included, to its error: not kept.
        assert.notInclude(Util.inspect(error, { depth: 10 }), "not-the-password")
        assert.isTrue(logs.some((log) => log.includes("WRONGPASS")))
        assert.notInclude(logs.join("\n"), "not-the-password")
      }
    }))
})
