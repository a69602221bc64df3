/**
 * Vitest global setup of the redis project: starts a throwaway `redis-server` on a free loopback
 * port for the whole run and provides it to the tests as `redisServer` (read it through
 * `test/utils/RedisTest.ts`). Without `redis-server` on `PATH` the run fails in CI
 * (`CI=true`) and elsewhere prints one notice and provides `{ available: false }`, so the
 * Redis-backed tests skip. Starting and stopping servers lives in `test/utils/RedisServer.ts`,
 * shared with the tests that run a server of their own.
 *
 * It also starts a local Redis Cluster (3 masters, 3 replicas, `test/utils/RedisCluster.ts`) for
 * the cluster suites, provided as `redisCluster`: required in CI like the single server.
 */
// tsc only accepts the `declare module "vitest"` augmentation below when this file imports vitest.
import type {} from "vitest"
import type { TestProject } from "vitest/node"
import * as Cluster from "./utils/RedisCluster.js"
import * as Server from "./utils/RedisServer.js"

declare module "vitest" {
  export interface ProvidedContext {
    readonly redisServer: RedisServer
    readonly redisCluster: RedisCluster
  }
}

/**
 * What the tests get: the port of the running server, or the fact that there is none.
 */
export type RedisServer =
  | {
    readonly available: true
    readonly host: string
    readonly port: number
    /** The redis-server executable, for tests that start a server of their own. */
    readonly executable: string
  }
  | { readonly available: false }

/**
 * The shared cluster: its nodes' ports, and the executables for tests that start a cluster of
 * their own.
 */
export type RedisCluster =
  | {
    readonly available: true
    readonly host: string
    readonly ports: ReadonlyArray<number>
    readonly server: string
    readonly cli: string
  }
  | { readonly available: false }

export default async function setup(project: TestProject): Promise<(() => Promise<void>) | undefined> {
  const executable = Server.findOnPath("redis-server")
  if (executable === undefined) {
    if (process.env.CI === "true") {
      throw new Error(
        "[stalewise] redis-server not found on PATH: Redis-backed tests are required in CI (install redis-server)"
      )
    }
    console.warn(
      "[stalewise] redis-server not found: Redis-backed tests are skipped (install redis-server to run them)"
    )
    project.provide("redisServer", { available: false })
    project.provide("redisCluster", { available: false })
    return undefined
  }
  const cli = Server.findOnPath("redis-cli")
  if (cli === undefined && process.env.CI === "true") {
    throw new Error(
      "[stalewise] redis-cli not found on PATH: the Redis Cluster tests are required in CI (install redis-server)"
    )
  }
  const [server, cluster] = await Promise.all([
    Server.startOnFreePort(executable),
    cli === undefined ? undefined : Cluster.start(executable, cli)
  ])
  project.provide("redisServer", { available: true, host: Server.host, port: server.port, executable })
  project.provide(
    "redisCluster",
    cluster === undefined || cli === undefined
      ? { available: false }
      : { available: true, host: Server.host, ports: cluster.ports, server: executable, cli }
  )
  return async () => {
    await Promise.all([server.stop(), cluster?.stop()])
  }
}
