/**
 * Access to the `redis-server` started by `test/globalSetup.ts`. Redis-backed suites skip with
 * `describe.skipIf(!RedisTest.available)`, and each test takes its own connection and key prefix
 * from `RedisTest.layer` (provided per test, not shared with `it.layer`), so concurrent tests never
 * see each other's keys. A test that must stop, pause or restart Redis takes a server of its own
 * from `RedisTest.privateServer`.
 */
import { afterAll, assert, beforeAll, inject } from "@effect/vitest"
import { InvalidationBus, type PolicyError } from "@stalewise/core"
import { RedisClient, RedisInvalidationBus, RedisStore, TieredStore } from "@stalewise/redis"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import { Cluster, Redis } from "ioredis"
import * as Net from "node:net"
import type {} from "../globalSetup.js"
import * as RedisCluster from "./RedisCluster.js"
import * as Server from "./RedisServer.js"

const server = inject("redisServer")
const cluster = inject("redisCluster")

/** Whether a `redis-server` is running for this test run. */
export const available: boolean = server.available

/** The loopback address the server is bound to. */
export const host: string = server.available ? server.host : "127.0.0.1"

/** The server's port; `0` when `available` is false (the suites using it are skipped). */
export const port: number = server.available ? server.port : 0

/** Whether the shared Redis Cluster is running for this test run. */
export const clusterAvailable: boolean = cluster.available

/** The shared cluster's nodes as `host:port`, for `RedisClient`'s `nodes` option. */
export const clusterNodes: ReadonlyArray<string> = cluster.available
  ? cluster.ports.map((port) => `${cluster.host}:${port}`)
  : []

/**
 * Where a suite connects, by topology: one server (`host`, `port`) or the shared cluster
 * (`nodes`). Suites that run on both iterate over this.
 */
export const topologies: ReadonlyArray<{
  readonly name: "single" | "cluster"
  readonly available: boolean
  readonly connection: { readonly host: string; readonly port: number } | { readonly nodes: ReadonlyArray<string> }
}> = [
  {
    name: "single",
    available: server.available,
    connection: { host: server.available ? server.host : "", port: server.available ? server.port : 0 }
  },
  { name: "cluster", available: cluster.available, connection: { nodes: clusterNodes } }
]

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
 * Raw access to one topology, behind the stores' backs, and where the stores keep a key there
 * (on a cluster the cache key is a hash tag).
 */
export const rawAccess = (topology: typeof topologies[number]) => {
  const cluster = topology.name === "cluster"
  return {
    run: <A>(f: (client: Redis | Cluster) => Promise<A>): Effect.Effect<A> =>
      Effect.scoped(
        Effect.flatMap(
          cluster ? connectCluster : connect,
          (client: Redis | Cluster) => Effect.promise(() => f(client))
        )
      ),
    entryKey: (keyPrefix: string, key: string) => cluster ? `${keyPrefix}v:{${key}}` : `${keyPrefix}v:${key}`,
    leaseKey: (keyPrefix: string, key: string) => cluster ? `${keyPrefix}l:{${key}}` : `${keyPrefix}l:${key}`
  }
}

/** Opens a cluster client of its own to the shared cluster; quits when the scope closes. */
export const connectCluster: Effect.Effect<Cluster, never, Scope.Scope> = Effect.acquireRelease(
  Effect.promise(async () => {
    const client = new Cluster(
      clusterNodes.map((node) => {
        const [nodeHost, nodePort] = node.split(":")
        return { host: nodeHost!, port: Number(nodePort) }
      }),
      { lazyConnect: true, redisOptions: { maxRetriesPerRequest: 1 } }
    )
    await client.connect()
    return client
  }),
  (client) => Effect.promise(() => client.quit())
)

/**
 * A Redis Cluster of one test's own (3 masters, 3 replicas, `cluster-node-timeout` 1 s), for
 * failovers and slot migrations.
 */
export interface PrivateCluster {
  readonly ports: ReadonlyArray<number>
  /** The nodes as `host:port`, for `RedisClient`'s `nodes` option. */
  readonly nodes: ReadonlyArray<string>
  /** What the node on `port` knows of the cluster (`CLUSTER NODES`). */
  readonly describe: (port: number) => Effect.Effect<ReadonlyArray<RedisCluster.NodeInfo>>
  /** SIGKILLs the node on `port`. */
  readonly kill: (port: number) => Effect.Effect<void>
  /** Moves `count` slots (the lowest ones of `fromPort`) to the master on `toPort`. */
  readonly reshard: (fromPort: number, toPort: number, count: number) => Effect.Effect<void>
}

/** Starts a private cluster; it is stopped when the scope closes. */
export const privateCluster: Effect.Effect<PrivateCluster, never, Scope.Scope> = Effect.acquireRelease(
  Effect.promise(async () => {
    if (!cluster.available) throw new Error("no redis cluster")
    const running = await RedisCluster.start(cluster.server, cluster.cli, { nodeTimeoutMillis: 1_000 })
    return { running, cli: cluster.cli }
  }),
  ({ running }) => Effect.promise(() => running.stop())
).pipe(Effect.map(({ cli, running }): PrivateCluster => ({
  ports: running.ports,
  nodes: running.ports.map((port) => `${Server.host}:${port}`),
  describe: (port) => Effect.promise(() => RedisCluster.nodes(port)),
  kill: (port) => Effect.sync(() => running.kill(port)),
  reshard: (fromPort, toPort, count) => Effect.promise(() => RedisCluster.reshard(cli, fromPort, toPort, count))
})))

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

/**
 * A `redis-server` of one test's own, on its own loopback port, that the test may stop, pause and
 * restart (on the same port) without disturbing the others.
 */
export interface PrivateServer {
  readonly port: number
  /** Stops the server (SIGTERM): it closes every connection and the port refuses new ones. */
  readonly stop: Effect.Effect<void>
  /** Starts the server again, empty, on the same port; completes once it answers PING. */
  readonly start: Effect.Effect<void>
  /** Freezes the server (SIGSTOP): connections stay open and nothing is answered. */
  readonly pause: Effect.Effect<void>
  /** Lets a paused server go on (SIGCONT). */
  readonly resume: Effect.Effect<void>
}

const makePrivateServer = (started: boolean): Effect.Effect<PrivateServer, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      if (!server.available) throw new Error("no redis-server")
      const executable = server.executable
      let current: Server.RunningServer | undefined = started ? await Server.startOnFreePort(executable) : undefined
      const port = current?.port ?? await Server.freePort()
      const signal = (name: NodeJS.Signals) =>
        Effect.sync(() => {
          current?.process.kill(name)
        })
      const stop = Effect.promise(async () => {
        const running = current
        current = undefined
        await running?.stop()
      })
      const start = Effect.promise(async () => {
        if (current === undefined) current = await Server.start(executable, port)
      })
      return { port, stop, start, pause: signal("SIGSTOP"), resume: signal("SIGCONT") }
    }),
    (server) => server.stop
  )

/** Starts a private server; it is stopped when the scope closes. */
export const privateServer: Effect.Effect<PrivateServer, never, Scope.Scope> = makePrivateServer(true)

/**
 * A private server that is not running yet (a free port is picked; nothing listens on it until
 * `start`): for what must work while Redis is down at startup.
 */
export const privateServerDown: Effect.Effect<PrivateServer, never, Scope.Scope> = makePrivateServer(false)

/**
 * Polls `check` until it holds, for at most `within`; returns how long it took (ms, measured with
 * `performance.now`). Between attempts it waits `every` (default 5 ms), or only for the event
 * loop to turn (`setImmediate`) with `every: 0`, for the finest resolution. For real server
 * behaviour only (pub/sub delivery, reconnects): time rules use `TestClock`.
 */
export const eventually = <E, R>(
  check: Effect.Effect<boolean, E, R>,
  options: { readonly within: Duration.DurationInput; readonly every?: Duration.DurationInput | undefined }
): Effect.Effect<number, E | Error, R> =>
  Effect.suspend(() => {
    const start = performance.now()
    const deadline = start + Duration.toMillis(options.within)
    const every = Duration.decode(options.every ?? "5 millis")
    const pause = Duration.toMillis(every) === 0
      ? Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))
      : Effect.promise(() => new Promise<void>((resolve) => setTimeout(resolve, Duration.toMillis(every))))
    const attempt: Effect.Effect<number, E | Error, R> = Effect.flatMap(check, (ok) => {
      const now = performance.now()
      if (ok) return Effect.succeed(now - start)
      if (now > deadline) {
        return Effect.fail(new Error(`not within ${Duration.format(Duration.decode(options.within))}`))
      }
      return Effect.zipRight(pause, attempt)
    })
    return attempt
  })

/** A TCP proxy in front of the test server whose first connection gets every reply late. */
export interface SlowProxy {
  readonly port: number
  /** Bytes the server has answered on the slow connection so far (before they are delayed). */
  readonly answered: () => number
}

/**
 * Starts a proxy to the test server on a loopback port: the first connection through it (a
 * store's command connection; later ones, such as its subscriber, are not slowed) receives each
 * reply `delayMillis` late, in order. Closed with the scope.
 */
export const slowProxy = (delayMillis: number): Effect.Effect<SlowProxy, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.promise(() =>
      new Promise<{ readonly proxy: SlowProxy; readonly server: Net.Server; readonly sockets: Set<Net.Socket> }>(
        (resolve, reject) => {
          const sockets = new Set<Net.Socket>()
          let accepted = 0
          let answered = 0
          const server = Net.createServer((client) => {
            const slow = accepted++ === 0
            const upstream = Net.connect({ host, port })
            for (const socket of [client, upstream]) {
              sockets.add(socket)
              socket.once("close", () => {
                sockets.delete(socket)
                // replies still being delayed go first, as a server's would before its close
                setTimeout(() => {
                  client.destroy()
                  upstream.destroy()
                }, slow ? delayMillis : 0)
              })
              socket.on("error", () => undefined)
            }
            client.on("data", (chunk) => upstream.write(chunk))
            upstream.on("data", (chunk) => {
              if (!slow) return client.write(chunk)
              answered += chunk.length
              setTimeout(() => client.write(chunk), delayMillis)
            })
          })
          server.once("error", reject)
          server.listen(0, host, () => {
            const address = server.address() as Net.AddressInfo
            resolve({ proxy: { port: address.port, answered: () => answered }, server, sockets })
          })
        }
      )
    ),
    ({ server, sockets }) =>
      Effect.promise(() => {
        for (const socket of sockets) socket.destroy()
        return new Promise<void>((resolve) => server.close(() => resolve()))
      })
  ).pipe(Effect.map(({ proxy }) => proxy))

/**
 * Fails the enclosing `describe` if an unhandled promise rejection happened while its tests ran
 * (vitest reports them too; this names them next to the tests that caused them). Call it inside
 * the `describe` block.
 */
export const assertNoUnhandledRejections = (): void => {
  const unhandled: Array<unknown> = []
  const onUnhandled = (reason: unknown) => {
    unhandled.push(reason)
  }
  beforeAll(() => {
    process.on("unhandledRejection", onUnhandled)
  })
  afterAll(() => {
    process.off("unhandledRejection", onUnhandled)
    assert.deepStrictEqual(unhandled, [], "no unhandled rejections")
  })
}

/**
 * One tiered-store instance with connections of its own (commands, bus subscriber), as in
 * another process; its bus listens on `${keyPrefix}invalidate`, like `TieredStore.layer`'s.
 */
export const tieredInstance = (
  options: TieredStore.Options & {
    readonly port?: number | undefined
    /** A cluster's nodes instead of a server's port. */
    readonly nodes?: ReadonlyArray<string> | undefined
    readonly commandTimeout?: Duration.DurationInput | undefined
  }
): Effect.Effect<TieredStore.TieredStore, RedisClient.RedisError | PolicyError.PolicyError, Scope.Scope> => {
  const { commandTimeout, nodes, port: instancePort, ...store } = options
  return Effect.gen(function*() {
    const redis = yield* RedisClient.make({
      ...(nodes === undefined ? { host, port: instancePort ?? port } : { nodes }),
      ...(commandTimeout === undefined ? {} : { commandTimeout }),
      ...RedisStore.clientDefaults
    })
    const bus = yield* RedisInvalidationBus.make({ channel: `${store.keyPrefix ?? "stalewise:"}invalidate` }).pipe(
      Effect.provideService(RedisClient.RedisClient, redis)
    )
    return yield* TieredStore.make(store).pipe(
      Effect.provideService(RedisClient.RedisClient, redis),
      Effect.provideService(InvalidationBus.InvalidationBus, bus)
    )
  })
}

/**
 * Reads `key` through `store` until its memory tier holds a copy. A read that an invalidation
 * message overtakes (one still on its way from a write that just completed) does not fill the
 * memory tier; the next read does.
 */
export const filled = (store: TieredStore.TieredStore, key: string) =>
  eventually(
    Effect.zipRight(Effect.ignore(store.get(key)), Effect.map(store.peekMemory(key), Option.isSome)),
    { within: "2 seconds", every: "1 millis" }
  )
