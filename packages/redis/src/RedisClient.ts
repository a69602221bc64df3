/**
 * `RedisClient`: one scoped ioredis connection as a service — to one Redis server, or to a Redis
 * Cluster (`nodes`: an ioredis `Cluster`, which routes each command to the master of its key's
 * slot and follows `MOVED`/`ASK` redirections and failovers). `make` connects and waits for the
 * connection (up to `connectTimeout`); when Redis cannot be reached it returns all the same and
 * keeps connecting in the background (or fails, with `whenUnreachable: "fail"`), so that an app
 * starts while Redis is down. It quits when its scope closes; `use` runs a command through the
 * client as an `Effect`, bounded by `commandTimeout`. After a connection loss it reconnects at
 * most `maxReconnectDelay` apart, whatever the outage's length. The Redis-backed stores, leases
 * and buses of this package are built on it.
 *
 * @since 0.1.0
 */
import { PolicyError, TimePolicy } from "@stalewise/core"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Predicate from "effect/Predicate"
import * as Redacted from "effect/Redacted"
import * as Runtime from "effect/Runtime"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import type { ClusterOptions, RedisOptions as IoRedisOptions } from "ioredis"
import { Cluster, Redis } from "ioredis"
import { knownNodes } from "./internal/cluster.js"

/**
 * @since 0.1.0
 * @category type ids
 */
export const TypeId: TypeId = "~@stalewise/redis/RedisClient"

/**
 * @since 0.1.0
 * @category type ids
 */
export type TypeId = "~@stalewise/redis/RedisClient"

/**
 * What a `RedisClient` holds: a connection to one Redis server (`Redis`) or a client of a Redis
 * Cluster (`Cluster`, from the `nodes` option or an existing ioredis `Cluster`). Both run the
 * same commands; on a cluster a command's keys must share one hash slot, and commands without
 * keys (`SCAN`, `PUBLISH`, …) go to one node (see {@link isCluster}).
 *
 * @since 0.1.0
 * @category models
 */
export type Connection = Redis | Cluster

/**
 * Whether a connection is a Redis Cluster client: then multi-key commands must stay within one
 * hash slot and a key-space walk (`SCAN`) must visit every master (`client.nodes("master")`).
 *
 * @example
 * ```ts
 * import { RedisClient } from "@stalewise/redis"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const redis = yield* RedisClient.RedisClient
 *   return RedisClient.isCluster(redis.client) ? "cluster" : "one server"
 * })
 * ```
 *
 * @since 0.1.0
 * @category guards
 */
export const isCluster = (client: Connection): client is Cluster =>
  (client as { readonly isCluster?: unknown }).isCluster === true

/**
 * The `RedisClient` service tag: a connected ioredis client and `use` to run commands on it.
 *
 * @example
 * ```ts
 * import { RedisClient } from "@stalewise/redis"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const redis = yield* RedisClient.RedisClient
 *   yield* redis.use("set", (client) => client.set("greeting", "hello", "PX", 60_000))
 *   return yield* redis.use("get", (client) => client.get("greeting"))
 * }).pipe(Effect.provide(RedisClient.layer({ host: "127.0.0.1", port: 6379 })))
 * ```
 *
 * @since 0.1.0
 * @category tags
 */
export class RedisClient extends Context.Tag("@stalewise/redis/RedisClient")<RedisClient, RedisClient.Service>() {}

/**
 * @since 0.1.0
 * @category models
 */
export declare namespace RedisClient {
  /**
   * A connected client. It is owned by the scope that made it: do not `quit` or `disconnect` it.
   *
   * @since 0.1.0
   * @category models
   */
  export interface Service {
    readonly [TypeId]: TypeId
    /**
     * The underlying ioredis client, for commands `use` does not wrap (pipelines, scans, pub/sub):
     * a `Redis` connection, or a `Cluster` client (see {@link isCluster}).
     */
    readonly client: Connection
    /**
     * Runs `f` on the client. A rejection becomes a `RedisError` named after `method`: `Connection`
     * when the connection is closed or gave up retrying, `Command` otherwise; no answer within
     * `commandTimeout` is `Timeout` (the command may still run on the server).
     */
    readonly use: <A>(method: string, f: (client: Connection) => Promise<A>) => Effect.Effect<A, RedisError>
    /**
     * Opens another connection with this client's options (`overrides` replacing some of them),
     * owned by the given scope: for what cannot share a connection, such as a pub/sub subscriber.
     */
    readonly duplicate: (overrides?: RedisOptions) => Effect.Effect<RedisClient.Service, RedisError, Scope.Scope>
  }
}

/**
 * A Redis call failed. `Connection`: the server could not be reached, or the connection was
 * closed or gave up retrying. `Command`: the server (or `f` in `use`) rejected the call.
 * `Timeout`: no connection within `connectTimeout` or no answer within `commandTimeout`.
 *
 * @example
 * ```ts
 * import { RedisClient } from "@stalewise/redis"
 * import { Effect } from "effect"
 *
 * const program = RedisClient.RedisClient.pipe(
 *   Effect.flatMap((redis) => redis.use("ping", (client) => client.ping())),
 *   Effect.catchTag("RedisError", (error) => Effect.logWarning(error.message))
 * )
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class RedisError extends Schema.TaggedError<RedisError>("@stalewise/redis/RedisError")("RedisError", {
  reason: Schema.Literal("Connection", "Command", "Timeout"),
  /** The operation, e.g. `connect`, `get` or `set`. */
  method: Schema.String,
  cause: Schema.optional(Schema.Defect)
}) {
  /**
   * @since 0.1.0
   */
  override get message(): string {
    const cause = this.cause instanceof Error ? `: ${this.cause.message}` : ""
    return `Redis ${this.method} failed (${this.reason})${cause}`
  }
}

/**
 * Connection options. Any other ioredis option (`tls`, `retryStrategy`, `maxRetriesPerRequest`,
 * `connectionName`, …) is passed through, except `keyPrefix` (this package prefixes keys itself:
 * ioredis does not apply `keyPrefix` to `SCAN` or `KEYS` patterns) and `lazyConnect` (`make`
 * always starts connecting before it returns). A `retryStrategy` given here replaces the one
 * `maxReconnectDelay` configures.
 *
 * @since 0.1.0
 * @category models
 */
export interface RedisOptions extends
  Omit<
    IoRedisOptions,
    "host" | "port" | "db" | "username" | "password" | "keyPrefix" | "lazyConnect" | "connectTimeout" | "commandTimeout"
  >
{
  /**
   * Where to connect, as a URL: `redis://[[username]:password@]host[:port][/db]`, or `rediss://…`
   * for TLS. Keep it in a `Redacted` when it carries a password (`Config.redacted("REDIS_URL")`).
   * Exclusive with `host`, `port`, `db`, `username` and `password` (`PolicyError` otherwise).
   */
  readonly url?: string | Redacted.Redacted | undefined
  /** Default `"localhost"`. */
  readonly host?: string | undefined
  /** Default `6379`. */
  readonly port?: number | undefined
  /** The database index selected on connect. Default `0`. */
  readonly db?: number | undefined
  /** The ACL user (Redis 6+); without it `password` authenticates the `default` user. */
  readonly username?: string | undefined
  /** Sent with `AUTH` on connect; kept out of errors and logs. */
  readonly password?: Redacted.Redacted | undefined
  /**
   * The startup nodes of a Redis Cluster: connects with an ioredis `Cluster` instead of one
   * connection. Each is a URL (`redis://[[username]:password@]host[:port]`, `rediss://…` for
   * TLS) or `host:port`; a few nodes suffice, the client discovers the others and follows
   * failovers and slot migrations. Credentials (in a URL, or `username` and `password`) and the
   * other connection options apply to every node. Exclusive with `url`, `host`, `port` and `db`
   * (`PolicyError` otherwise), and not empty.
   */
  readonly nodes?: ReadonlyArray<string | Redacted.Redacted> | undefined
  /**
   * Options only a cluster client has (ioredis `ClusterOptions`: `scaleReads`, `natMap`,
   * `slotsRefreshInterval`, `retryDelayOnFailover`, …); used with `nodes`.
   */
  readonly cluster?: ClusterExtras | undefined
  /**
   * How long `make` waits for a ready connection, and how long each connection attempt may take.
   * Default 10 seconds. Positive and finite: anything else is a `PolicyError`.
   */
  readonly connectTimeout?: Duration.DurationInput | undefined
  /**
   * How long `use` waits for an answer. Default 5 seconds. Positive (`PolicyError` otherwise);
   * `Duration.infinity` waits as long as it takes.
   */
  readonly commandTimeout?: Duration.DurationInput | undefined
  /**
   * What `make` does when Redis cannot be reached (refused, or not ready within
   * `connectTimeout`): `"keep-trying"` (the default) returns the client, logs a warning and keeps
   * connecting in the background — commands fail with `Connection` until it is ready, so that
   * the stores degrade to the upstream and recover by themselves; `"fail"` fails with
   * `RedisError` and stops trying. A server that rejects the credentials fails `make` either way:
   * retrying cannot fix that.
   */
  readonly whenUnreachable?: "keep-trying" | "fail" | undefined
  /**
   * The longest wait between two reconnection attempts after the connection is lost (or was never
   * made): attempts start 50 ms apart and grow by 50 ms up to this, with jitter, so a Redis that
   * comes back is used again within about this long, however long it was away. Default 250 ms.
   * Ignored when `retryStrategy` is given.
   */
  readonly maxReconnectDelay?: Duration.DurationInput | undefined
}

/**
 * The ioredis `ClusterOptions` a cluster client may be given besides the connection options,
 * which apply to every node (`redisOptions`, `lazyConnect` and the offline queue are set from
 * those).
 *
 * @since 0.1.0
 * @category models
 */
export interface ClusterExtras
  extends Omit<ClusterOptions, "redisOptions" | "lazyConnect" | "enableOfflineQueue" | "keyPrefix" | "scripts">
{}

const defaultConnectTimeout = Duration.seconds(10)
const defaultCommandTimeout = Duration.seconds(5)
const defaultMaxReconnectDelay = Duration.millis(250)

/**
 * ioredis's `retryStrategy` for a `maxReconnectDelay`: 50 ms, 100 ms, … up to `max`, each delay
 * drawn in its upper half (jitter, so that many instances do not reconnect in step). ioredis's
 * own grows to 2 s, which made recovery after a long outage take up to that long.
 *
 * @example
 * ```ts
 * import { RedisClient } from "@stalewise/redis"
 *
 * const delays = RedisClient.reconnectDelays("1 second")
 * delays(1) // between 25 and 50 (ms)
 * delays(100) // between 500 and 1000 (ms)
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const reconnectDelays = (max: Duration.DurationInput): (attempt: number) => number => {
  const maxMillis = Math.max(1, Duration.toMillis(max))
  return (attempt) => {
    const delay = Math.min(50 * Math.max(1, attempt), maxMillis)
    return Math.max(1, Math.round(delay * (0.5 + Math.random() / 2)))
  }
}

/**
 * Connects to Redis and returns the client once the connection is ready; the connection is
 * closed with `QUIT` when the scope closes (with `disconnect` when `QUIT` fails or gets no answer
 * in `commandTimeout`). When Redis cannot be reached (refused, or not ready within
 * `connectTimeout`), it returns the client all the same and keeps connecting in the background
 * (`whenUnreachable: "keep-trying"`, the default), or fails with `RedisError` (`Connection`, or
 * `Timeout`) and stops trying (`"fail"`). Credentials the server rejects fail with `RedisError`
 * `Connection` either way. Invalid options (a timeout that is not positive,
 * `url` together with `host`, …) fail with `PolicyError` before any connection is made.
 *
 * @example
 * ```ts
 * import { RedisClient } from "@stalewise/redis"
 * import { Effect, Redacted } from "effect"
 *
 * const program = Effect.scoped(
 *   Effect.gen(function*() {
 *     const redis = yield* RedisClient.make({
 *       host: "127.0.0.1",
 *       port: 6379,
 *       password: Redacted.make("secret"),
 *       connectTimeout: "2 seconds"
 *     })
 *     return yield* redis.use("ping", (client) => client.ping())
 *   })
 * )
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = Effect.fnUntraced(function*(
  options: RedisOptions
): Effect.fn.Return<RedisClient.Service, RedisError | PolicyError.PolicyError, Scope.Scope> {
  const {
    cluster: clusterExtras,
    commandTimeout: commandTimeoutInput,
    connectTimeout: connectTimeoutInput,
    db,
    host,
    maxReconnectDelay,
    nodes,
    password,
    port,
    url,
    username,
    whenUnreachable,
    ...passthrough
  } = options
  // Validated like every other duration: a zero or negative timeout is a PolicyError, not a
  // connect failure (ioredis would read 0 as "no timeout" and a negative one as "at once").
  const connectTimeout = yield* TimePolicy.finiteDuration(
    "connectTimeout",
    connectTimeoutInput ?? defaultConnectTimeout
  )
  const commandTimeout = yield* TimePolicy.positiveDuration(
    "commandTimeout",
    commandTimeoutInput ?? defaultCommandTimeout
  )
  if (url !== undefined) {
    const also = Object.entries({ host, port, db, username, password }).filter(([, value]) => value !== undefined)
    if (also.length > 0) {
      return yield* new PolicyError.PolicyError({
        reason: "InvalidCombination",
        option: "url",
        detail: `url and ${also.map(([name]) => name).join(", ")} are exclusive: the URL says where to connect`
      })
    }
  }
  const startupNodes = nodes === undefined ? undefined : yield* parseNodes(nodes, { url, host, port, db })
  const ioOptions: IoRedisOptions = {
    retryStrategy: reconnectDelays(maxReconnectDelay ?? defaultMaxReconnectDelay),
    ...passthrough,
    lazyConnect: true,
    connectTimeout: Duration.toMillis(connectTimeout)
  }
  // ioredis enforces the command timeout itself: its promise rejects, also inside finalizers,
  // without an Effect timer per command (which cost more than the command on a local Redis).
  if (Duration.isFinite(commandTimeout)) ioOptions.commandTimeout = Math.max(1, Duration.toMillis(commandTimeout))
  if (host !== undefined) ioOptions.host = host
  if (port !== undefined) ioOptions.port = port
  if (db !== undefined) ioOptions.db = db
  if (username !== undefined) ioOptions.username = username
  if (password !== undefined) ioOptions.password = Redacted.value(password)

  const runtime = yield* Effect.runtime<never>()
  const client = yield* Effect.acquireRelease(
    Effect.sync((): Connection => {
      const client = startupNodes !== undefined
        ? makeCluster(startupNodes, ioOptions, clusterExtras)
        : url === undefined
        ? new Redis(ioOptions)
        : new Redis(Redacted.isRedacted(url) ? Redacted.value(url) : url, ioOptions)
      // ioredis prints unhandled "error" events to the console; reconnect noise goes to the
      // Effect logger instead, and failed commands surface through `use`.
      client.on("error", (error: unknown) => {
        Runtime.runFork(runtime)(Effect.logDebug("Redis connection error", redactArguments(error)))
      })
      return client
    }),
    (client) => close(client, commandTimeout)
  )
  yield* connect(client, connectTimeout).pipe(
    Effect.catchAll((error) => {
      if (whenUnreachable === "fail" || isRejectedByServer(error.cause)) {
        // ioredis keeps reconnecting after a failed connect (retryStrategy); a failed `make` must not.
        return Effect.zipRight(Effect.sync(() => disconnectNow(client)), Effect.fail(error))
      }
      // ioredis goes on reconnecting (retryStrategy); commands fail fast until it is ready.
      return Effect.logWarning("stalewise: Redis unreachable, connecting in the background").pipe(
        Effect.annotateLogs({ error: error.message })
      )
    })
  )

  return RedisClient.of({
    [TypeId]: TypeId,
    client,
    // options were valid; overrides that are not are a programming error: a defect
    duplicate: (overrides) =>
      Effect.catchTag(
        make(overrides === undefined ? options : { ...options, ...overrides }),
        "PolicyError",
        Effect.die
      ),
    use: useOn(client)
  })
})

/**
 * A `RedisClient` over an ioredis client you already have (shared with other code, or configured
 * in ways these options do not cover): a `Redis` connection or a `Cluster` client. It stays yours: closing the scope does not close it.
 * A client made with `lazyConnect` that has not connected yet is connected here, within
 * `connectTimeout` (default 10 seconds); commands are bounded by the client's own
 * `commandTimeout`. `duplicate` opens connections of its own with the client's options, owned by
 * the scope it is given.
 *
 * The stores' connection settings (`RedisStore.clientDefaults`: no offline queue, no per-request
 * retries) are yours to set on the client: without them a command issued while Redis is down
 * waits in ioredis's offline queue until it reconnects or the command times out.
 *
 * @example
 * ```ts
 * import { Failover } from "@stalewise/core"
 * import { RedisClient, RedisStore } from "@stalewise/redis"
 * import { Effect, Layer } from "effect"
 * import { Redis } from "ioredis"
 *
 * // the client the application already has
 * const redis = new Redis({ host: "127.0.0.1", port: 6379, lazyConnect: true, ...RedisStore.clientDefaults })
 *
 * const StoreLive = RedisStore.layerFromClient({ keyPrefix: "myapp:" }).pipe(
 *   Layer.provide(RedisClient.layerIoRedis(redis))
 * )
 *
 * const program = Effect.gen(function*() {
 *   const rates = yield* Failover.make({
 *     name: "rate",
 *     lookup: (currency: string) => Effect.succeed(currency.length),
 *     timeout: "250 millis"
 *   })
 *   return yield* rates.get("EUR")
 * }).pipe(Effect.scoped, Effect.provide(StoreLive))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromIoRedis = (
  client: Connection,
  options?: { readonly connectTimeout?: Duration.DurationInput | undefined }
): Effect.Effect<RedisClient.Service, RedisError | PolicyError.PolicyError> =>
  Effect.gen(function*() {
    const connectTimeout = yield* TimePolicy.finiteDuration(
      "connectTimeout",
      options?.connectTimeout ?? defaultConnectTimeout
    )
    if (client.status === "wait") yield* connect(client, connectTimeout)
    return RedisClient.of({
      [TypeId]: TypeId,
      client,
      // options were valid; overrides that are not are a programming error: a defect
      duplicate: (overrides) =>
        Effect.catchTag(make({ ...inheritedOptions(client), ...overrides }), "PolicyError", Effect.die),
      use: useOn(client)
    })
  })

/**
 * A `RedisClient` layer over an ioredis client you already have; see {@link fromIoRedis}. The
 * client is not closed when the layer is released.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerIoRedis = (
  client: Connection,
  options?: { readonly connectTimeout?: Duration.DurationInput | undefined }
): Layer.Layer<RedisClient, RedisError | PolicyError.PolicyError> =>
  Layer.effect(RedisClient, fromIoRedis(client, options))

const useOn = (client: Connection) =>
<A>(
  method: string,
  f: (client: Connection) => Promise<A>
): Effect.Effect<A, RedisError> =>
  Effect.tryPromise({
    try: () => f(client),
    catch: (cause) =>
      new RedisError({
        reason: isCommandTimeout(cause) ? "Timeout" : isConnectionError(cause) ? "Connection" : "Command",
        method,
        cause: redactArguments(cause)
      })
  })

// The options of a client someone else made, as ours, for `duplicate`: what `make` sets itself
// (lazyConnect, keyPrefix) is left out, timeouts and the password are converted back.
const inheritedOptions = (client: Connection): RedisOptions => {
  if (isCluster(client)) return inheritedClusterOptions(client)
  const {
    commandTimeout,
    connectTimeout,
    db,
    host,
    keyPrefix: _keyPrefix,
    lazyConnect: _lazyConnect,
    password,
    port,
    username,
    ...rest
  } = client.options
  return {
    ...rest,
    host,
    port,
    db,
    username: username ?? undefined,
    password: password === undefined || password === null ? undefined : Redacted.make(password),
    connectTimeout: connectTimeout ?? undefined,
    commandTimeout: commandTimeout ?? undefined
  }
}

/**
 * A `RedisClient` connected with the given options, closed when the layer is released.
 *
 * @example
 * ```ts
 * import { RedisClient } from "@stalewise/redis"
 *
 * const RedisLive = RedisClient.layer({ host: "127.0.0.1", port: 6379, commandTimeout: "500 millis" })
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: RedisOptions): Layer.Layer<RedisClient, RedisError | PolicyError.PolicyError> =>
  Layer.scoped(RedisClient, make(options))

/**
 * A `RedisClient` whose options are read from `Config`; keep the password in `Config.redacted`.
 *
 * @example
 * ```ts
 * import { RedisClient } from "@stalewise/redis"
 * import { Config } from "effect"
 *
 * const RedisLive = RedisClient.layerConfig({
 *   host: Config.string("REDIS_HOST"),
 *   port: Config.integer("REDIS_PORT"),
 *   password: Config.redacted("REDIS_PASSWORD")
 * })
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  config: Config.Config.Wrap<RedisOptions>
): Layer.Layer<RedisClient, RedisError | PolicyError.PolicyError | ConfigError.ConfigError> =>
  Layer.scoped(RedisClient, Effect.flatMap(Config.unwrap(config), make))

const connect = (client: Connection, timeout: Duration.Duration): Effect.Effect<void, RedisError> => {
  // The "close" that rejects `connect()` carries no reason; the "error" before it does.
  let lastError: unknown
  const onError = (error: unknown) => {
    lastError = error
  }
  return Effect.tryPromise({
    try: () => {
      client.on("error", onError)
      return client.connect()
    },
    catch: (cause) => {
      const error = redactArguments(lastError ?? cause)
      return new RedisError({
        reason: isTimeoutError(error) ? "Timeout" : "Connection",
        method: "connect",
        cause: error
      })
    }
  }).pipe(
    // Interruptible, so that the timeout holds even when `make` runs uninterruptibly (an acquire).
    Effect.interruptible,
    Effect.timeoutFail({
      duration: timeout,
      onTimeout: () => new RedisError({ reason: "Timeout", method: "connect", cause: redactArguments(lastError) })
    }),
    Effect.ensuring(Effect.sync(() => client.off("error", onError)))
  )
}

// Finalizers run uninterruptibly: the waits are made interruptible so that their timeouts can
// cut them short (a QUIT queued behind a blocking command would otherwise wait for that command).
const close = (client: Connection, timeout: Duration.Duration): Effect.Effect<void> =>
  Effect.suspend(() => {
    // Without a ready connection there is nobody to say QUIT to: stop any reconnecting and be done.
    if (client.status !== "ready") return Effect.sync(() => disconnectNow(client))
    return Effect.tryPromise(() => client.quit()).pipe(
      Effect.zipRight(awaitEnd(client)),
      Effect.interruptible,
      Effect.timeout(timeout),
      Effect.catchAll(() =>
        Effect.sync(() => disconnectNow(client)).pipe(
          Effect.zipRight(Effect.interruptible(awaitEnd(client))),
          Effect.timeout(timeout),
          Effect.ignore
        )
      )
    )
  })

// `disconnect()` stops reconnecting but only half-closes the socket (`end()`); a server that has
// stopped reading would keep it open, so the socket is destroyed as well.
const disconnectNow = (client: Connection): void => {
  client.disconnect()
  if (!isCluster(client)) client.stream?.destroy()
}

// `quit()` resolves on the server's OK; the client is closed once it reaches status "end".
const awaitEnd = (client: Connection): Effect.Effect<void> =>
  Effect.async<void>((resume) => {
    if (client.status === "end") {
      resume(Effect.void)
      return
    }
    const onEnd = () => resume(Effect.void)
    client.once("end", onEnd)
    return Effect.sync(() => {
      client.off("end", onEnd)
    })
  })

// What ioredis rejects commands with when there is no usable connection: closed for good, not
// writable with the offline queue disabled, or aborted because the connection closed mid-pipeline.
const connectionErrorMessages = new Set([
  "Connection is closed.",
  "Stream isn't writeable and enableOfflineQueue options is false",
  "Command aborted due to connection close",
  // a cluster client: no slot map yet (or any more), or closed
  "Cluster isn't ready and enableOfflineQueue options is false",
  "Cluster is ended."
])

// ioredis's own commandTimeout rejects with this message.
const isCommandTimeout = (error: unknown): boolean => error instanceof Error && error.message === "Command timed out"

// ioredis does not export MaxRetriesPerRequestError from its entry point; its name identifies it.
// A cluster that gave up following redirections or failing over, or that lost a slot's master
// (CLUSTERDOWN), cannot be reached for that key: a connection problem too.
const isConnectionError = (error: unknown): boolean =>
  error instanceof Error &&
  (error.name === "MaxRetriesPerRequestError" || connectionErrorMessages.has(error.message) ||
    error.message.startsWith("Too many Cluster redirections") || error.message.startsWith("CLUSTERDOWN"))

// ioredis attaches the failed command to a reply error: its arguments are stored values, keys
// and, for AUTH (and HELLO … AUTH), the password in plain text. None of it may travel with the
// error into logs: only the command's name and how many arguments it had are kept.
const redactArguments = (error: unknown): unknown => {
  if (Predicate.hasProperty(error, "command") && Predicate.hasProperty(error.command, "name")) {
    const args = Predicate.hasProperty(error.command, "args") && Array.isArray(error.command.args)
      ? error.command.args.length
      : 0
    error.command = { name: error.command.name, args: [`<${args} arguments redacted>`] }
  }
  return error
}

// The server answered the handshake with an error (WRONGPASS, NOAUTH, …): a configuration
// mistake that reconnecting cannot fix, unlike a refused or hung connection.
const isRejectedByServer = (error: unknown): boolean =>
  Predicate.hasProperty(error, "name") && error.name === "ReplyError"

const isTimeoutError = (error: unknown): boolean => Predicate.hasProperty(error, "code") && error.code === "ETIMEDOUT"

// --- Cluster ---------------------------------------------------------------------------------------

interface StartupNodes {
  readonly nodes: ReadonlyArray<{ readonly host: string; readonly port: number }>
  readonly username: string | undefined
  readonly password: string | undefined
  readonly tls: boolean
}

const invalidNodes = (detail: string) =>
  new PolicyError.PolicyError({ reason: "InvalidValue", option: "nodes", detail })

// `nodes` as ioredis startup nodes; credentials and TLS found in the URLs apply to every node.
const parseNodes = (
  nodes: ReadonlyArray<string | Redacted.Redacted>,
  exclusive: Record<string, unknown>
): Effect.Effect<StartupNodes, PolicyError.PolicyError> =>
  Effect.gen(function*() {
    const also = Object.entries(exclusive).filter(([, value]) => value !== undefined)
    if (also.length > 0) {
      return yield* new PolicyError.PolicyError({
        reason: "InvalidCombination",
        option: "nodes",
        detail: `nodes and ${also.map(([name]) => name).join(", ")} are exclusive: the nodes say where to connect`
      })
    }
    if (nodes.length === 0) return yield* invalidNodes("at least one node is needed")
    let username: string | undefined
    let password: string | undefined
    let tls = false
    const parsed: Array<{ host: string; port: number }> = []
    for (const [index, node] of nodes.entries()) {
      const text = Redacted.isRedacted(node) ? Redacted.value(node) : node
      let address: URL
      try {
        address = new URL(text.includes("://") ? text : `redis://${text}`)
      } catch {
        // the node may carry a password: never echo it
        return yield* invalidNodes(`node ${index} is not a URL or host:port`)
      }
      if (address.protocol !== "redis:" && address.protocol !== "rediss:") {
        return yield* invalidNodes(`node ${index}: only redis:// and rediss:// URLs`)
      }
      if (address.pathname !== "" && address.pathname !== "/" && address.pathname !== "/0") {
        return yield* invalidNodes(`node ${index}: a cluster has only database 0`)
      }
      if (address.protocol === "rediss:") tls = true
      if (address.username !== "") username ??= decodeURIComponent(address.username)
      if (address.password !== "") password ??= decodeURIComponent(address.password)
      const port = address.port === "" ? 6379 : Number(address.port)
      parsed.push({ host: address.hostname.replace(/^\[(.*)\]$/, "$1"), port })
    }
    return { nodes: parsed, username, password, tls }
  })

// The per-node options go to `redisOptions`; the client-wide ones (reconnecting, the offline
// queue, auto-pipelining) to the cluster itself, where ioredis reads them.
const makeCluster = (startup: StartupNodes, ioOptions: IoRedisOptions, extras: ClusterExtras | undefined): Cluster => {
  const {
    autoPipeliningIgnoredCommands,
    enableAutoPipelining,
    enableOfflineQueue,
    enableReadyCheck,
    retryStrategy,
    ...node
  } = ioOptions
  const redisOptions: ClusterOptions["redisOptions"] = { ...node }
  if (redisOptions.username === undefined && startup.username !== undefined) redisOptions.username = startup.username
  if (redisOptions.password === undefined && startup.password !== undefined) redisOptions.password = startup.password
  if (redisOptions.tls === undefined && startup.tls) redisOptions.tls = {}
  const options: ClusterOptions = {
    ...(retryStrategy === undefined ? {} : { clusterRetryStrategy: retryStrategy }),
    ...(enableOfflineQueue === undefined ? {} : { enableOfflineQueue }),
    ...(enableAutoPipelining === undefined ? {} : { enableAutoPipelining }),
    ...(autoPipeliningIgnoredCommands === undefined ? {} : { autoPipeliningIgnoredCommands }),
    ...(enableReadyCheck === undefined ? {} : { enableReadyCheck }),
    ...extras,
    redisOptions,
    lazyConnect: true
  }
  return new Cluster(startup.nodes.map((node) => ({ ...node })), options)
}

// A cluster client someone else made, as our options: its known nodes (or its startup nodes
// before it connected) and its per-node options.
const inheritedClusterOptions = (client: Cluster): RedisOptions => {
  const nodes = knownNodes(client).map(({ host, port }) => `${host.includes(":") ? `[${host}]` : host}:${port}`)
  const { lazyConnect: _lazyConnect, redisOptions = {}, ...cluster } = client.options
  const { commandTimeout, connectTimeout, keyPrefix: _keyPrefix, password, username, ...rest } = redisOptions
  return {
    ...rest,
    nodes,
    cluster,
    ...(client.options.enableOfflineQueue === undefined
      ? {}
      : { enableOfflineQueue: client.options.enableOfflineQueue }),
    username: username ?? undefined,
    password: password === undefined || password === null ? undefined : Redacted.make(password),
    connectTimeout: connectTimeout ?? undefined,
    commandTimeout: commandTimeout ?? undefined
  }
}
