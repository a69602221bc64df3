/**
 * Throwaway Redis Clusters on loopback ports: 3 masters and 3 replicas (`redis-server
 * --cluster-enabled yes`, joined with `redis-cli --cluster create`), for `test/globalSetup.ts`
 * (the cluster the whole run shares) and for tests that kill a master or move slots on a cluster
 * of their own (`RedisTest.privateCluster`). Plain promises: the global setup runs outside Effect.
 */
import { Redis } from "ioredis"
import * as ChildProcess from "node:child_process"
import * as Net from "node:net"
import * as Server from "./RedisServer.js"

/** How long a cluster may take to be formed and agree on it (`cluster_state:ok` everywhere). */
const readyTimeoutMillis = 30_000
const startAttempts = 3

/** A running cluster. */
export interface RunningCluster {
  /** The nodes' ports, masters and replicas alike (roles change on failover). */
  readonly ports: ReadonlyArray<number>
  /** SIGKILLs one node: no goodbye, its connections just drop. */
  readonly kill: (port: number) => void
  /** Stops every node still running and removes their directories. */
  readonly stop: () => Promise<void>
}

/** What a node says about the cluster, one line per node (`CLUSTER NODES`). */
export interface NodeInfo {
  readonly id: string
  readonly port: number
  readonly master: boolean
  /** The master's id, for a replica. */
  readonly masterId: string | undefined
  /** The slots it serves, as `[first, last]` ranges (masters only). */
  readonly slots: ReadonlyArray<readonly [number, number]>
  readonly failed: boolean
}

/**
 * A port `P` such that both `P` and its cluster bus port `P + 10000` are free: ephemeral ports
 * (32768 and up) would put the bus port past 65535, so ports are drawn from 20000–29999.
 */
const freeClusterPort = async (taken: Set<number>): Promise<number> => {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * 10_000)
    if (taken.has(port)) continue
    if ((await isFree(port)) && (await isFree(port + 10_000))) {
      taken.add(port)
      return port
    }
  }
  throw new Error("no free port pair for a cluster node")
}

const isFree = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const probe = Net.createServer()
    probe.once("error", () => resolve(false))
    probe.listen(port, Server.host, () => probe.close(() => resolve(true)))
  })

const run = (executable: string, args: ReadonlyArray<string>): Promise<string> =>
  new Promise((resolve, reject) => {
    ChildProcess.execFile(executable, args, { timeout: readyTimeoutMillis }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${executable} ${args.join(" ")} failed: ${error.message}\n${stdout}\n${stderr}`))
      else resolve(stdout)
    })
  })

/** Runs one command on one node, on a connection opened for it. */
export const command = async (port: number, name: string, ...args: Array<string>): Promise<unknown> => {
  const client = new Redis({
    host: Server.host,
    port,
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null
  })
  client.on("error", () => undefined)
  try {
    await client.connect()
    return await client.call(name, ...args)
  } finally {
    client.disconnect()
  }
}

/** Parses `CLUSTER NODES` as seen from `port`. */
export const nodes = async (port: number): Promise<ReadonlyArray<NodeInfo>> => {
  const text = String(await command(port, "CLUSTER", "NODES"))
  return text.trim().split("\n").map((line) => {
    const [id, address, flags, masterId, , , , , ...slots] = line.split(" ")
    const flagSet = new Set((flags ?? "").split(","))
    return {
      id: id!,
      port: Number(address!.split("@")[0]!.split(":")[1]),
      master: flagSet.has("master"),
      masterId: masterId === "-" ? undefined : masterId,
      failed: flagSet.has("fail") || flagSet.has("fail?"),
      slots: slots.filter((slot) => !slot.startsWith("[")).map((slot) => {
        const [first, last] = slot.split("-")
        return [Number(first), Number(last ?? first)] as const
      })
    }
  })
}

/** Whether the node on `port` sees a healthy cluster: every slot served, state ok. */
const healthy = async (port: number, nodeCount: number): Promise<boolean> => {
  try {
    const info = String(await command(port, "CLUSTER", "INFO"))
    return info.includes("cluster_state:ok") && info.includes("cluster_slots_ok:16384") &&
      info.includes(`cluster_known_nodes:${nodeCount}`)
  } catch {
    return false
  }
}

/** Whether the node on `port`, if a replica, has synced with its master. */
const synced = async (port: number): Promise<boolean> => {
  try {
    const info = String(await command(port, "INFO", "replication"))
    return info.includes("role:master") || info.includes("master_link_status:up")
  } catch {
    return false
  }
}

/**
 * Waits until every port in `ports` sees a healthy cluster of `nodeCount` nodes and every
 * replica among them has synced.
 */
export const waitHealthy = async (
  ports: ReadonlyArray<number>,
  nodeCount: number,
  timeoutMillis = readyTimeoutMillis
): Promise<void> => {
  const deadline = Date.now() + timeoutMillis
  while (Date.now() < deadline) {
    const states = await Promise.all(
      ports.map(async (port) => (await healthy(port, nodeCount)) && (await synced(port)))
    )
    if (states.every(Boolean)) return
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  throw new Error(`the cluster on ${ports.join(", ")} is not healthy within ${timeoutMillis} ms`)
}

/**
 * Starts 6 nodes (3 masters, 3 replicas) and waits until the cluster is healthy everywhere.
 * `nodeTimeoutMillis` is `cluster-node-timeout`: how long a master may be unreachable before its
 * replica takes over (Redis's default is 15 s; tests use 1 s).
 */
export const start = async (
  server: string,
  cli: string,
  options: { readonly nodeTimeoutMillis?: number | undefined } = {}
): Promise<RunningCluster> => {
  let lastError: unknown
  for (let attempt = 1; attempt <= startAttempts; attempt++) {
    try {
      return await startOnce(server, cli, options.nodeTimeoutMillis ?? 1_000)
    } catch (error) {
      lastError = error
    }
  }
  throw lastError
}

const startOnce = async (server: string, cli: string, nodeTimeoutMillis: number): Promise<RunningCluster> => {
  const taken = new Set<number>()
  const ports: Array<number> = []
  for (let i = 0; i < 6; i++) ports.push(await freeClusterPort(taken))
  const settled = await Promise.allSettled(ports.map((port) =>
    Server.start(server, port, [
      "--cluster-enabled",
      "yes",
      "--cluster-config-file",
      "nodes.conf",
      "--cluster-node-timeout",
      String(nodeTimeoutMillis),
      // a replica that lost its master for a while may still take over (tests kill masters)
      // replicas sync at once (the default waits 5 s for more replicas to share a transfer)
      "--repl-diskless-sync-delay",
      "0",
      "--cluster-replica-validity-factor",
      "0"
    ])
  ))
  const running = settled.flatMap((result) => result.status === "fulfilled" ? [result.value] : [])
  const byPort = new Map(running.map((node) => [node.port, node]))
  const stop = async () => {
    await Promise.all(running.map((node) => node.stop()))
  }
  try {
    const failed = settled.find((result) => result.status === "rejected")
    if (failed !== undefined) throw failed.reason
    await run(cli, [
      "--cluster",
      "create",
      ...ports.map((port) => `${Server.host}:${port}`),
      "--cluster-replicas",
      "1",
      "--cluster-yes"
    ])
    await waitHealthy(ports, ports.length)
  } catch (error) {
    await stop()
    throw error
  }
  return {
    ports,
    kill: (port) => {
      byPort.get(port)?.process.kill("SIGKILL")
    },
    stop
  }
}

/**
 * Moves `count` slots from the master on `fromPort` to the master on `toPort` with `redis-cli
 * --cluster reshard` (keys are migrated with `MIGRATE`, clients see `ASK` and `MOVED` meanwhile).
 * redis-cli takes the source's lowest slots first.
 */
export const reshard = async (cli: string, fromPort: number, toPort: number, count: number): Promise<void> => {
  const all = await nodes(fromPort)
  const from = all.find((node) => node.port === fromPort)
  const to = all.find((node) => node.port === toPort)
  if (from === undefined || to === undefined) throw new Error("reshard: unknown node")
  await run(cli, [
    "--cluster",
    "reshard",
    `${Server.host}:${fromPort}`,
    "--cluster-from",
    from.id,
    "--cluster-to",
    to.id,
    "--cluster-slots",
    String(count),
    "--cluster-yes"
  ])
}

/** The hash slot of a Redis key (its hash tag's, when it has one), as the cluster computes it. */
export { slotOf } from "../../src/internal/cluster.js"
