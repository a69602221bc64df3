/**
 * Demo part: failover and cache-first against a real `@effect/rpc` server on 127.0.0.1 whose
 * handlers are told to succeed, fail or hang. Each line shows what came back, its outcome and
 * the latency the caller saw.
 */
import { CacheStore, type Outcome } from "@stalewise/core"
import { CachedRpcClient, Strategy } from "@stalewise/rpc"
import { Console, Duration, Effect, Ref } from "effect"
import { ControlledServer, UserRpcs } from "./rpcServer.js"

const row = (label: string, status: string, elapsed: Duration.Duration, value: string) =>
  Console.log(
    `  ${label.padEnd(44)} ${status.padEnd(16)} ${Duration.toMillis(elapsed).toFixed(0).padStart(5)} ms   ${value}`
  )

/** Failover and cache-first over a live RPC server. */
export const failoverAndCacheFirstPart = Effect.gen(function*() {
  const server = yield* ControlledServer.make()
  const { control } = server
  // every cached call reports its outcome; the table prints the last one
  const last = yield* Ref.make<Outcome.Outcome<unknown> | undefined>(undefined)
  const client = yield* CachedRpcClient.make(UserRpcs.UserRpcs, {
    GetUser: Strategy.failover({ timeout: "200 millis" }),
    ListUsers: Strategy.cacheFirst({ timeToLive: "1 minute" })
  }, { onOutcome: (_tag, outcome) => Ref.set(last, outcome) }).pipe(
    Effect.provide(ControlledServer.layerProtocol(server))
  )
  const call = <A, E>(label: string, effect: Effect.Effect<A, E>, show: (value: A) => string) =>
    Effect.gen(function*() {
      const [elapsed, value] = yield* Effect.timed(effect)
      const outcome = yield* Ref.get(last)
      const status = outcome === undefined
        ? "?"
        : outcome.reason
        ? `${outcome.status}/${outcome.reason}`
        : outcome.status
      const age = outcome === undefined || Duration.isZero(outcome.age) ? "" : ` (age ${Duration.format(outcome.age)})`
      yield* row(label, status, elapsed, `${show(value)}${age}`)
    })
  const showUser = (user: UserRpcs.User) => `${user.name} v${user.version}`

  yield* Console.log(`\n## Failover and cache-first over a real @effect/rpc server at ${server.url}`)
  yield* Console.log(`  ${"call".padEnd(44)} ${"outcome".padEnd(16)} latency   value`)

  yield* control.slow("GetUser", "40 millis")
  yield* call("GetUser(1), server answers in 40 ms", client.GetUser({ id: 1 }), showUser)
  yield* control.setVersion(2)
  yield* control.fail("GetUser")
  yield* call("GetUser(1), server fails", client.GetUser({ id: 1 }), showUser)
  yield* control.hang("GetUser")
  yield* call("GetUser(1), server hangs (timeout 200 ms)", client.GetUser({ id: 1 }), showUser)
  yield* call("GetUser(1) again, while that call is overdue", client.GetUser({ id: 1 }), showUser)
  yield* control.release("GetUser")
  yield* control.slow("ListUsers", "80 millis")
  const names = (users: ReadonlyArray<UserRpcs.User>) => users.map((u) => u.name).join(", ")
  yield* call("ListUsers(3), cold", client.ListUsers({ limit: 3 }), names)
  yield* call("ListUsers(3) again", client.ListUsers({ limit: 3 }), names)
  yield* Console.log(
    `  server calls: GetUser ${yield* control.calls("GetUser")}, ListUsers ${yield* control.calls("ListUsers")}`
  )
}).pipe(Effect.scoped, Effect.provide(CacheStore.layerMemory))
