/**
 * The `redis-server` of the Redis scenarios: a throwaway server on a free loopback port, started
 * with `@stalewise/redis`'s test utility (no persistence, bound to 127.0.0.1), shared by the
 * contenders of one scenario and stopped when the last of them is released, that is when the
 * scenario's scope closes. Without `redis-server` on `PATH` those scenarios are skipped.
 *
 * @since 0.1.0
 */
import * as RedisServer from "@stalewise/redis/test/utils/RedisServer"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"

const executable = RedisServer.findOnPath("redis-server")

/**
 * Why the Redis scenarios cannot run here, or `undefined` when they can: a scenario's `skip`.
 *
 * @since 0.1.0
 * @category skipping
 */
export const unavailable = (): string | undefined =>
  executable === undefined ? "redis-server not found on PATH; install it to run the Redis scenarios" : undefined

/**
 * Where a running server listens.
 *
 * @since 0.1.0
 * @category models
 */
export interface Address {
  readonly host: string
  readonly port: number
}

let shared: { readonly server: Promise<RedisServer.RunningServer>; users: number } | undefined

/**
 * The shared server, started by the first contender that asks for it; every acquisition is
 * released with its scope, and the last release stops the server (and removes its directory).
 *
 * @since 0.1.0
 * @category resources
 */
export const acquire: Effect.Effect<Address, unknown, Scope.Scope> = Effect.acquireRelease(
  Effect.tryPromise(() => {
    if (executable === undefined) return Promise.reject(new Error(unavailable()))
    if (shared === undefined) shared = { server: RedisServer.startOnFreePort(executable), users: 0 }
    const current = shared
    current.users++
    return current.server.then(
      (server) => ({ host: RedisServer.host, port: server.port }),
      (error) => {
        if (shared === current) shared = undefined
        throw error
      }
    )
  }),
  () =>
    Effect.promise(async () => {
      const current = shared
      if (current === undefined || --current.users > 0) return
      shared = undefined
      await (await current.server).stop()
    })
)
