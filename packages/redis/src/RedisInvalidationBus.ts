/**
 * `RedisInvalidationBus`: core's `InvalidationBus` over Redis pub/sub, for instances in several
 * processes. Messages are published on one channel through the `RedisClient` in context and
 * received on a subscriber connection of the bus's own.
 *
 * The subscriber never stops the app: it connects in the background (the layer builds while
 * Redis is down), reconnects with ioredis's back-off, and subscribes again after every reconnect,
 * retrying a subscribe that fails. Messages published while it is not subscribed are lost, so
 * whenever the subscription is lost, and again when it is back, listeners get a `Flush`: every
 * in-process tier drops its copies instead of serving what it may have missed.
 *
 * On a Redis Cluster (a `RedisClient` made with `nodes`) a `PUBLISH` reaches every node: the
 * subscriber is a connection to one of them, and when it is lost (the node failed) the bus
 * flushes, connects to the next node the cluster client knows and subscribes there.
 *
 * @since 0.1.0
 */
import * as CacheMetrics from "@stalewise/core/CacheMetrics"
import * as InvalidationBus from "@stalewise/core/InvalidationBus"
import type { PolicyError } from "@stalewise/core/PolicyError"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberSet from "effect/FiberSet"
import * as Layer from "effect/Layer"
import * as MetricLabel from "effect/MetricLabel"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import { Redis } from "ioredis"
import { knownNodes } from "./internal/cluster.js"
import * as RedisClient from "./RedisClient.js"
import { clientDefaults } from "./RedisStore.js"

/**
 * Options of the bus.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** The pub/sub channel. Default `"stalewise:invalidate"`; instances that must hear each other share it. */
  readonly channel?: string | undefined
  /**
   * The longest wait between two attempts to subscribe again after a failed one (the first
   * waits 50 ms, doubling). Default 2 seconds.
   */
  readonly maxResubscribeDelay?: Duration.DurationInput | undefined
  /**
   * How long `make` waits for the first subscription before it returns anyway (it returns at once
   * when the first connection attempt fails: Redis down). Default 1 second.
   */
  readonly startupWait?: Duration.DurationInput | undefined
}

/**
 * Options of {@link layer}: the connection's and the bus's.
 *
 * @since 0.1.0
 * @category models
 */
export interface LayerOptions extends RedisClient.RedisOptions, Options {}

/**
 * The channel used unless told otherwise.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultChannel = "stalewise:invalidate"

const WireTypeId: unique symbol = Symbol.for("@stalewise/redis/RedisInvalidationBus/Wire")

/**
 * The channel and encoding of a Redis bus, for a Redis store that publishes an invalidation in
 * the same `MULTI … EXEC` as the write it announces (the tiered store), so that the write and its
 * message land together — also for writes made in the background.
 *
 * @since 0.1.0
 * @category models
 */
export interface Wire {
  readonly channel: string
  readonly encode: (invalidation: InvalidationBus.Invalidation) => string
}

/**
 * The wire of `bus` when it is a Redis bus, `undefined` otherwise.
 *
 * @since 0.1.0
 * @category utils
 */
export const wireOf = (bus: InvalidationBus.InvalidationBus.Service): Wire | undefined =>
  (bus as { readonly [WireTypeId]?: Wire })[WireTypeId]

/**
 * What travels on the channel: `t` the target's kind (`k` key, `p` prefix), `v` the key or
 * prefix, `o` the origin, `a` the time.
 */
const encode = (invalidation: InvalidationBus.Invalidation): string =>
  JSON.stringify({
    t: invalidation._tag === "Key" ? "k" : "p",
    v: invalidation._tag === "Key" ? invalidation.key : invalidation.prefix,
    o: invalidation.origin,
    a: invalidation.at
  })

const decode = (message: string): InvalidationBus.Invalidation | undefined => {
  try {
    const u: unknown = JSON.parse(message)
    if (typeof u !== "object" || u === null) return undefined
    const { a, o, t, v } = u as Record<string, unknown>
    if (typeof v !== "string" || typeof o !== "string" || typeof a !== "number") return undefined
    if (t === "k") return { _tag: "Key", key: v, origin: o, at: a }
    if (t === "p") return { _tag: "Prefix", prefix: v, origin: o, at: a }
    return undefined
  } catch {
    return undefined
  }
}

const flushLabels = {
  Disconnected: [MetricLabel.make("reason", "Disconnected")],
  Resubscribed: [MetricLabel.make("reason", "Resubscribed")]
} as const

/**
 * Builds a bus over the `RedisClient` in context (which publishes) with a subscriber connection
 * of its own, closed with the scope. Never fails, whether Redis is up or not.
 *
 * **Details**
 *
 * - `publish`: `PUBLISH` on the client's connection, bounded by its `commandTimeout`; a failure
 *   is logged and counted in `CacheMetrics.busPublishFailures` (the receivers' bounds cover the
 *   lost message).
 * - The subscriber is opened with the client's options (`autoResubscribe` off: the bus
 *   subscribes itself), connects in the background and reconnects with ioredis's
 *   `retryStrategy`. After each connect it sends `SUBSCRIBE`, retried with a doubling delay up to
 *   `maxResubscribeDelay` while it fails (an ACL that refuses the channel, a timeout).
 * - `make` waits for the first subscription (at most `startupWait`), so that a store built on
 *   a reachable Redis hears invalidations from its first call; with Redis down it returns at once.
 * - Listeners get a `Flush` with reason `Disconnected` when a subscribed connection closes, and
 *   one with reason `Resubscribed` each time the subscription is in place again (also the first
 *   time: whatever was cached before could not have been told), counted in
 *   `CacheMetrics.busFlushes` by reason.
 *
 * @example
 * ```ts
 * import { InvalidationBus } from "@stalewise/core"
 * import { RedisClient, RedisInvalidationBus, RedisStore } from "@stalewise/redis"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const bus = yield* RedisInvalidationBus.make({ channel: "myapp:invalidate" })
 *   yield* bus.subscribe((event) => console.log(event._tag))
 *   yield* bus.publish({ _tag: "Key", key: "users:get:1", origin: "instance-a", at: Date.now() })
 * }).pipe(
 *   Effect.scoped,
 *   Effect.provide(RedisClient.layer({ host: "127.0.0.1", port: 6379, ...RedisStore.clientDefaults }))
 * )
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = Effect.fnUntraced(function*(
  options: Options = {}
): Effect.fn.Return<InvalidationBus.InvalidationBus.Service, never, RedisClient.RedisClient | Scope.Scope> {
  const redis = yield* RedisClient.RedisClient
  const channel = options.channel ?? defaultChannel
  const maxDelay = Duration.decode(options.maxResubscribeDelay ?? Duration.seconds(2))
  // between two subscriber connections to a cluster's nodes (a single server's reconnects follow
  // the client's own `retryStrategy`)
  const maxReconnectDelay = Duration.millis(250)
  const run = yield* FiberSet.makeRuntime<never>()
  // settled by the first subscription, or by the first connection closing (Redis down)
  const firstAttempt = yield* Deferred.make<void>()
  const listeners = new Set<(event: InvalidationBus.Event) => void>()
  const emit = (event: InvalidationBus.Event) => {
    if (event._tag === "Flush") CacheMetrics.busFlushes.unsafeUpdate(1, flushLabels[event.reason])
    for (const listener of listeners) listener(event)
  }

  // Each connection gets its own subscribe loop; a loop whose connection is gone stops.
  let connection = 0
  let subscribed = false
  let released = false
  // Once per subscription: the flush that covers what was missed comes before any message heard
  // on it (a message can arrive in the same read as the SUBSCRIBE reply, before the loop resumes).
  const markSubscribed = () => {
    if (subscribed) return
    subscribed = true
    Deferred.unsafeDone(firstAttempt, Exit.void)
    emit({ _tag: "Flush", reason: "Resubscribed" })
  }
  const subscribe = (current: number, subscriber: Redis) =>
    Effect.tryPromise(() => subscriber.subscribe(channel)).pipe(
      Effect.tapError((error) =>
        Effect.logWarning("stalewise: could not subscribe to invalidations, retrying").pipe(
          Effect.annotateLogs({ channel, error: error.cause instanceof Error ? error.cause.message : String(error) })
        )
      ),
      Effect.retry({
        schedule: Schedule.exponential("50 millis").pipe(Schedule.union(Schedule.spaced(maxDelay))),
        while: () => current === connection && subscriber.status === "ready"
      }),
      Effect.flatMap(() =>
        Effect.sync(() => {
          if (current === connection) markSubscribed()
        })
      ),
      Effect.ignore
    )

  const attach = (subscriber: Redis): Redis => {
    subscriber.on("ready", () => {
      run(subscribe(++connection, subscriber))
    })
    subscriber.on("close", () => {
      connection++
      Deferred.unsafeDone(firstAttempt, Exit.void)
      if (!subscribed) return
      subscribed = false
      emit({ _tag: "Flush", reason: "Disconnected" })
    })
    subscriber.on("message", (from: string, message: string) => {
      if (from !== channel) return
      markSubscribed()
      const invalidation = decode(message)
      if (invalidation !== undefined) emit(invalidation)
    })
    // ioredis prints unhandled "error" events; the reconnects are expected while Redis is away.
    subscriber.on("error", () => undefined)
    // a failed first connect is retried by ioredis's retryStrategy, like any reconnect
    subscriber.connect().catch(() => undefined)
    return subscriber
  }
  const detach = (subscriber: Redis) => {
    subscriber.removeAllListeners()
    subscriber.on("error", () => undefined)
    subscriber.disconnect()
  }

  const cluster = RedisClient.isCluster(redis.client) ? redis.client : undefined
  if (cluster === undefined) {
    const client = redis.client as Redis
    yield* Effect.acquireRelease(
      Effect.sync(() =>
        attach(client.duplicate({ lazyConnect: true, autoResubscribe: false, enableOfflineQueue: false }))
      ),
      (subscriber) => Effect.sync(() => detach(subscriber))
    )
  } else {
    // On a cluster a PUBLISH reaches every node: the subscriber is a plain connection to one of
    // them. When it is lost (that node failed), the next connection goes to the next known node,
    // so the bus hears the channel again as soon as any node answers.
    const nodeOptions = cluster.options.redisOptions ?? {}
    const delays = RedisClient.reconnectDelays(maxReconnectDelay)
    let attempt = 0
    let turn = 0
    let current: Redis | undefined
    let timer: ReturnType<typeof setTimeout> | undefined
    const next = () => {
      const nodes = knownNodes(cluster)
      const node = nodes[turn++ % Math.max(1, nodes.length)]
      const subscriber = attach(
        new Redis({
          ...nodeOptions,
          ...node,
          lazyConnect: true,
          autoResubscribe: false,
          enableOfflineQueue: false,
          // a lost node is not retried: the next attempt goes to another node
          retryStrategy: () => null
        })
      )
      subscriber.on("ready", () => {
        attempt = 0
      })
      subscriber.once("end", () => {
        if (released) return
        timer = setTimeout(next, delays(++attempt))
      })
      current = subscriber
    }
    yield* Effect.acquireRelease(
      Effect.sync(next),
      () =>
        Effect.sync(() => {
          released = true
          clearTimeout(timer)
          if (current !== undefined) detach(current)
        })
    )
  }
  yield* Effect.ignore(Effect.timeout(Deferred.await(firstAttempt), options.startupWait ?? Duration.seconds(1)))

  const wire: Wire = { channel, encode }
  return Object.assign(
    InvalidationBus.make({
      publish: (invalidation) =>
        redis.use("publish", (client) => client.publish(channel, encode(invalidation))).pipe(
          Effect.catchAll((error) => {
            CacheMetrics.busPublishFailures.unsafeUpdate(1, [])
            return Effect.logWarning("stalewise: invalidation not published").pipe(
              Effect.annotateLogs({ channel, error: error.message })
            )
          })
        ),
      subscribe: (listener) =>
        Effect.acquireRelease(
          Effect.sync(() => {
            listeners.add(listener)
          }),
          () =>
            Effect.sync(() => {
              listeners.delete(listener)
            })
        )
    }),
    { [WireTypeId]: wire }
  )
})

/**
 * A bus over the `RedisClient` in context (which keeps owning that connection); the subscriber
 * connection is the layer's own.
 *
 * @example
 * ```ts
 * import { RedisClient, RedisInvalidationBus, RedisStore } from "@stalewise/redis"
 * import { Layer } from "effect"
 *
 * const RedisLive = RedisClient.layer({ host: "127.0.0.1", port: 6379, ...RedisStore.clientDefaults })
 * const BusLive = RedisInvalidationBus.layerFromClient({ channel: "myapp:invalidate" }).pipe(Layer.provide(RedisLive))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerFromClient = (
  options?: Options
): Layer.Layer<InvalidationBus.InvalidationBus, never, RedisClient.RedisClient> =>
  Layer.scoped(InvalidationBus.InvalidationBus, make(options))

/**
 * A bus with connections of its own (publisher and subscriber), closed when the layer is
 * released. The publisher gets `RedisStore.clientDefaults` unless told otherwise.
 *
 * @example
 * ```ts
 * import { RedisInvalidationBus } from "@stalewise/redis"
 *
 * const BusLive = RedisInvalidationBus.layer({ host: "127.0.0.1", port: 6379, channel: "myapp:invalidate" })
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: LayerOptions
): Layer.Layer<InvalidationBus.InvalidationBus, RedisClient.RedisError | PolicyError> =>
  Layer.scoped(InvalidationBus.InvalidationBus, scoped(options))

/**
 * A bus with connections of its own, its options read from `Config`.
 *
 * @example
 * ```ts
 * import { RedisInvalidationBus } from "@stalewise/redis"
 * import { Config } from "effect"
 *
 * const BusLive = RedisInvalidationBus.layerConfig({
 *   host: Config.string("REDIS_HOST"),
 *   port: Config.port("REDIS_PORT"),
 *   password: Config.redacted("REDIS_PASSWORD")
 * })
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  config: Config.Config.Wrap<LayerOptions>
): Layer.Layer<InvalidationBus.InvalidationBus, RedisClient.RedisError | PolicyError | ConfigError.ConfigError> =>
  Layer.scoped(InvalidationBus.InvalidationBus, Effect.flatMap(Config.unwrap(config), scoped))

const scoped = (options: LayerOptions) => {
  const { channel, maxResubscribeDelay, startupWait, ...connection } = options
  return Effect.flatMap(
    RedisClient.make({ ...clientDefaults, ...connection }),
    (redis) =>
      Effect.provideService(make({ channel, maxResubscribeDelay, startupWait }), RedisClient.RedisClient, redis)
  )
}
