/**
 * The controlled RPC/HTTP server fixture over real HTTP on 127.0.0.1. Real time is used on
 * purpose (`it.live`): a network server is involved. Each test starts its own server.
 */
import { FetchHttpClient, HttpClient, HttpClientResponse } from "@effect/platform"
import { assert, describe, it } from "@effect/vitest"
import { Cause, Duration, Effect, Exit, Fiber, Layer, Option, Scope } from "effect"
import * as Net from "node:net"
import * as Os from "node:os"
import * as ControlledServer from "./fixtures/ControlledServer.js"
import { User, userFor, UserNotFound, UsersClient, UsersUnavailable } from "./fixtures/UserRpcs.js"

const withServer = ControlledServer.layerWithClient()

/** Opens a TCP connection and reports the peer address, or fails with the socket error. */
const connect = (host: string, port: number) =>
  Effect.async<string | undefined, NodeJS.ErrnoException>((resume) => {
    const socket = Net.connect({ host, port })
    socket.once("connect", () => {
      const peer = socket.remoteAddress
      socket.destroy()
      resume(Effect.succeed(peer))
    })
    socket.once("error", (error) => {
      socket.destroy()
      resume(Effect.fail(error))
    })
    return Effect.sync(() => socket.destroy())
  })

const millis = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.map(Effect.timed(effect), ([duration, value]) => [Duration.toMillis(duration), value] as const)

describe("ControlledServer", () => {
  it.live("a call succeeds and decodes the User exactly (Date, bigint, brand)", () =>
    Effect.gen(function*() {
      const users = yield* UsersClient
      const user = yield* users.GetUser({ id: 7 })
      assert.instanceOf(user, User)
      assert.deepStrictEqual(user, userFor(7))
      assert.instanceOf(user.joined, Date)
      assert.strictEqual(user.joined.getTime(), userFor(7).joined.getTime())
      assert.strictEqual(typeof user.credits, "bigint")
      assert.isTrue(user.credits > BigInt(Number.MAX_SAFE_INTEGER))

      assert.deepStrictEqual(yield* users.ListUsers({ limit: 3 }), [userFor(1), userFor(2), userFor(3)])
      const message = { text: "hi", at: new Date(Date.UTC(2024, 1, 29, 12, 0, 0, 7)), amount: 2n ** 70n }
      assert.deepStrictEqual(yield* users.Echo(message), message)

      const notFound = yield* Effect.flip(users.GetUser({ id: 1000 }))
      assert.instanceOf(notFound, UserNotFound)
      assert.deepStrictEqual(notFound, new UserNotFound({ id: 1000 }))
    }).pipe(Effect.provide(withServer)))

  it.live("ndjson serialization round-trips exactly too", () =>
    Effect.gen(function*() {
      const users = yield* UsersClient
      assert.deepStrictEqual(yield* users.GetUser({ id: 42 }), userFor(42))
      assert.strictEqual((yield* Effect.flip(users.GetUser({ id: 0 })))._tag, "UserNotFound")
    }).pipe(Effect.provide(ControlledServer.layerWithClient({ serialization: "ndjson" }))))

  it.live("fail answers the typed UsersUnavailable on that endpoint only, until set back", () =>
    Effect.gen(function*() {
      const { control } = yield* ControlledServer.ControlledServer
      const users = yield* UsersClient
      yield* control.fail("GetUser")
      const error = yield* Effect.flip(users.GetUser({ id: 1 }))
      assert.instanceOf(error, UsersUnavailable)
      assert.deepStrictEqual(error, new UsersUnavailable({ endpoint: "GetUser" }))
      assert.strictEqual((yield* users.ListUsers({ limit: 1 })).length, 1)
      yield* control.succeed("GetUser")
      assert.deepStrictEqual(yield* users.GetUser({ id: 1 }), userFor(1))
    }).pipe(Effect.provide(withServer)))

  it.live("die is a defect of that call only, not of the other calls in flight", () =>
    Effect.gen(function*() {
      const { control } = yield* ControlledServer.ControlledServer
      const users = yield* UsersClient
      yield* control.hang("Echo")
      const echo = yield* Effect.fork(users.Echo({ text: "still here", at: new Date(0), amount: 1n }))
      yield* control.awaitCalls("Echo", 1)
      yield* control.die("GetUser")
      const exit = yield* Effect.exit(users.GetUser({ id: 1 }))
      assert.isTrue(Exit.isFailure(exit) && Cause.isDie(exit.cause), String(exit))
      yield* control.release("Echo")
      assert.strictEqual((yield* Fiber.join(echo)).text, "still here")
    }).pipe(Effect.provide(withServer)))

  it.live("slow answers after at least the delay, other endpoints stay fast", () =>
    Effect.gen(function*() {
      const { control } = yield* ControlledServer.ControlledServer
      const users = yield* UsersClient
      yield* control.slow("GetUser", "150 millis")
      const [slow, user] = yield* millis(users.GetUser({ id: 3 }))
      assert.deepStrictEqual(user, userFor(3))
      // A timer may fire up to a millisecond before a fresh reading of the clock.
      assert.isAtLeast(slow, 148)
      const [fast] = yield* millis(users.ListUsers({ limit: 1 }))
      assert.isBelow(fast, 100)
    }).pipe(Effect.provide(withServer)))

  it.live("hang does not answer within a client timeout; release lets hung and later calls succeed", () =>
    Effect.gen(function*() {
      const { control } = yield* ControlledServer.ControlledServer
      const users = yield* UsersClient
      yield* control.hang("GetUser")
      const hung = yield* Effect.fork(users.GetUser({ id: 1 }))
      yield* control.awaitCalls("GetUser", 1)

      const timedOut = yield* Effect.flip(Effect.timeout(users.GetUser({ id: 2 }), "100 millis"))
      assert.strictEqual(timedOut._tag, "TimeoutException")
      assert.isTrue(Option.isNone(yield* Fiber.poll(hung)))

      yield* control.release("GetUser")
      assert.deepStrictEqual(yield* Fiber.join(hung), userFor(1))
      assert.deepStrictEqual(yield* users.GetUser({ id: 3 }), userFor(3))
      assert.strictEqual((yield* control.behaviour("GetUser"))._tag, "Succeed")
      assert.strictEqual(yield* control.calls("GetUser"), 3)
    }).pipe(Effect.provide(withServer)))

  it.live("a call released after the endpoint was set to fail answers the failure", () =>
    Effect.gen(function*() {
      const { control } = yield* ControlledServer.ControlledServer
      const users = yield* UsersClient
      yield* control.hang("ListUsers")
      const hung = yield* Effect.fork(Effect.flip(users.ListUsers({ limit: 2 })))
      yield* control.awaitCalls("ListUsers", 1)
      yield* control.fail("ListUsers")
      yield* control.release("ListUsers")
      assert.strictEqual((yield* Fiber.join(hung))._tag, "UsersUnavailable")
    }).pipe(Effect.provide(withServer)))

  it.live("calls are counted per endpoint, whatever the answer; reset clears counts and behaviours", () =>
    Effect.gen(function*() {
      const { control } = yield* ControlledServer.ControlledServer
      const users = yield* UsersClient
      yield* users.GetUser({ id: 1 })
      yield* users.GetUser({ id: 2 })
      yield* control.fail("GetUser")
      yield* Effect.flip(users.GetUser({ id: 3 }))
      yield* users.Echo({ text: "x", at: new Date(0), amount: 0n })
      yield* control.awaitCalls("GetUser", 3)
      assert.strictEqual(yield* control.calls("GetUser"), 3)
      assert.strictEqual(yield* control.calls("Echo"), 1)
      assert.strictEqual(yield* control.calls("ListUsers"), 0)
      assert.strictEqual(yield* control.calls("GET /users/:id"), 0)

      yield* control.setVersion(2)
      yield* control.reset
      assert.strictEqual(yield* control.calls("GetUser"), 0)
      assert.strictEqual(yield* control.calls("Echo"), 0)
      assert.deepStrictEqual(yield* users.GetUser({ id: 4 }), userFor(4, 1))
    }).pipe(Effect.provide(withServer)))

  it.live("setVersion changes the data every endpoint answers", () =>
    Effect.gen(function*() {
      const { control } = yield* ControlledServer.ControlledServer
      const users = yield* UsersClient
      assert.strictEqual((yield* users.GetUser({ id: 5 })).version, 1)
      yield* control.setVersion(2)
      assert.deepStrictEqual(yield* users.GetUser({ id: 5 }), userFor(5, 2))
      assert.deepStrictEqual(yield* users.ListUsers({ limit: 1 }), [userFor(1, 2)])
    }).pipe(Effect.provide(withServer)))

  it.live("the plain HTTP GET route answers JSON that decodes to the exact User", () =>
    Effect.gen(function*() {
      const server = yield* ControlledServer.ControlledServer
      const response = yield* HttpClient.get(server.userUrl(5))
      assert.strictEqual(response.status, 200)
      assert.strictEqual(response.headers["content-type"], "application/json")
      assert.deepStrictEqual(yield* HttpClientResponse.schemaBodyJson(User)(response), userFor(5))

      const missing = yield* HttpClient.get(server.userUrl(1000))
      assert.strictEqual(missing.status, 404)
      assert.deepStrictEqual(
        yield* HttpClientResponse.schemaBodyJson(UserNotFound)(missing),
        new UserNotFound({ id: 1000 })
      )
      assert.strictEqual((yield* HttpClient.get(`${server.url}/users/abc`)).status, 400)
      // The route has its own counter: the RPC endpoint was not called.
      assert.strictEqual(yield* server.control.calls("GET /users/:id"), 2)
      assert.strictEqual(yield* server.control.calls("GetUser"), 0)
    }).pipe(Effect.provide(Layer.merge(withServer, FetchHttpClient.layer))))

  it.live("the plain HTTP GET route honours fail, die, slow and hang", () =>
    Effect.gen(function*() {
      const { control, userUrl } = yield* ControlledServer.ControlledServer
      const route = "GET /users/:id"
      yield* control.fail(route)
      const failed = yield* HttpClient.get(userUrl(1))
      assert.strictEqual(failed.status, 503)
      assert.deepStrictEqual(
        yield* HttpClientResponse.schemaBodyJson(UsersUnavailable)(failed),
        new UsersUnavailable({ endpoint: route })
      )
      yield* control.die(route)
      assert.strictEqual((yield* HttpClient.get(userUrl(1))).status, 500)

      yield* control.slow(route, "120 millis")
      const [slow, response] = yield* millis(HttpClient.get(userUrl(2)))
      assert.strictEqual(response.status, 200)
      assert.isAtLeast(slow, 118)

      yield* control.hang(route)
      const timedOut = yield* Effect.flip(Effect.timeout(HttpClient.get(userUrl(3)), "100 millis"))
      assert.strictEqual(timedOut._tag, "TimeoutException")
      yield* control.release(route)
      const released = yield* HttpClient.get(userUrl(3))
      assert.deepStrictEqual(yield* HttpClientResponse.schemaBodyJson(User)(released), userFor(3))
      assert.strictEqual(yield* control.calls(route), 5)
    }).pipe(Effect.provide(Layer.merge(withServer, FetchHttpClient.layer))))

  it.live("the server is bound to 127.0.0.1 only", () =>
    Effect.gen(function*() {
      const server = yield* ControlledServer.ControlledServer
      assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+$/)
      assert.strictEqual(server.url, `http://127.0.0.1:${server.port}`)
      assert.strictEqual(yield* connect("127.0.0.1", server.port), "127.0.0.1")
      // Bound to 0.0.0.0 or :: it would accept on the machine's other addresses too.
      const others = Object.values(Os.networkInterfaces()).flatMap((addresses) => addresses ?? [])
        .map(({ address }) => address)
        .filter((address) => address !== "127.0.0.1" && !address.startsWith("fe80:"))
      for (const address of new Set(["::1", ...others])) {
        const error = yield* Effect.flip(connect(address, server.port))
        assert.include(["ECONNREFUSED", "EADDRNOTAVAIL", "ENETUNREACH"], error.code, `${address}: ${error.message}`)
      }
    }).pipe(Effect.provide(withServer)))

  it.scopedLive("closing the scope stops the server, cutting a call that hangs", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const server = yield* Scope.extend(ControlledServer.make(), scope)
      // The client outlives the server: the hanging call must be ended by the server side.
      const users = yield* ControlledServer.makeClient(server)
      assert.deepStrictEqual(yield* users.GetUser({ id: 1 }), userFor(1))
      yield* server.control.hang("GetUser")
      const hung = yield* Effect.fork(Effect.flip(users.GetUser({ id: 2 })))
      yield* server.control.awaitCalls("GetUser", 2)

      const [closing] = yield* millis(Scope.close(scope, Exit.void))
      assert.isBelow(closing, 1000)
      assert.strictEqual((yield* Fiber.join(hung))._tag, "RpcClientError")
      const refused = yield* Effect.flip(connect("127.0.0.1", server.port))
      assert.strictEqual(refused.code, "ECONNREFUSED")
    }))

  it.scoped("slow is real time even where the test runs on the TestClock", () =>
    Effect.gen(function*() {
      const { control } = yield* ControlledServer.ControlledServer
      const users = yield* UsersClient
      yield* control.slow("GetUser", "50 millis")
      // No TestClock.adjust: the server sleeps on the live clock.
      assert.deepStrictEqual(yield* users.GetUser({ id: 9 }), userFor(9))
    }).pipe(Effect.provide(withServer)))
})
