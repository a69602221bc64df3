/**
 * What the app and its refresh workers share: the jobs — defined the same way in both processes,
 * same names and same `argsSchema`, so that a refresh requested by the app can run in a worker —
 * and the Redis connection, store and BullMQ queue, configured from the environment
 * (`REDIS_HOST`, default `127.0.0.1`; `REDIS_PORT`, default `6379`; `REFRESH_QUEUE`, default
 * `stalewise-example`).
 */
import { BullRefreshQueue, RedisClient, RedisStore } from "@stalewise/redis"
import { Job } from "@stalewise/refresh"
import type { Scope } from "effect"
import { Config, Console, Context, Effect, Layer, Schema } from "effect"

/** A price as the (simulated) price service answers it, and who asked for it. */
export const Price = Schema.Struct({
  sku: Schema.String,
  cents: Schema.Number,
  fetchedBy: Schema.String,
  fetchedAt: Schema.Date
})

/** @see Price */
export interface Price extends Schema.Schema.Type<typeof Price> {}

/** The jobs, as a service: the app reads through them; in a worker they only need to exist. */
export class Jobs extends Context.Tag("examples/distributed/Jobs")<Jobs, {
  readonly price: Job.Job<[sku: string], Price, never>
}>() {}

/**
 * Defines the jobs in this process. `role` only labels the values this process fetches, so the
 * output shows where each refresh ran.
 */
export const layerJobs = (role: string): Layer.Layer<Jobs, never, Exclude<Job.Requirements, Scope.Scope>> =>
  Layer.scoped(
    Jobs,
    Effect.gen(function*() {
      const fetchedBy = `${role} (pid ${process.pid})`
      // The upstream: a price service that takes 300 ms.
      const fetchPrice = (sku: string) =>
        Console.log(`[${fetchedBy}] fetching the price of ${sku} from the price service…`).pipe(
          Effect.zipRight(Effect.sleep("300 millis")),
          Effect.as({ sku, cents: 990 + (Date.now() % 100), fetchedBy, fetchedAt: new Date() })
        )
      const price = yield* Job.make({
        name: "price",
        namespace: "example",
        fetch: fetchPrice,
        // Requests carry the arguments encoded with this schema: they can cross to a worker.
        argsSchema: Schema.Tuple(Schema.String),
        // Values are stored encoded with this one (a Date comes back a Date).
        schema: Price,
        lifetime: "2 seconds",
        timeToLive: "1 hour"
      }).pipe(Effect.orDie)
      return { price }
    })
  )

const Settings = Config.all({
  host: Config.string("REDIS_HOST").pipe(Config.withDefault("127.0.0.1")),
  port: Config.port("REDIS_PORT").pipe(Config.withDefault(6379)),
  queueName: Config.string("REFRESH_QUEUE").pipe(Config.withDefault("stalewise-example"))
})

/** The queue both sides use, from `REFRESH_QUEUE`. */
export const queueName: Effect.Effect<string, never> = Effect.orDie(
  Effect.map(Settings, (settings) => settings.queueName)
)

/**
 * One connection (with the stores' fail-fast defaults), the Redis store (every process sees the
 * same entries and leases) and the BullMQ refresh queue (stale reads become BullMQ jobs).
 */
export const SharedLive = Layer.unwrapEffect(Effect.map(Settings, ({ host, port, queueName }) =>
  Layer.mergeAll(
    RedisStore.layerFromClient({ keyPrefix: "stalewise-example:" }),
    BullRefreshQueue.layer({ queueName, overflow: "refresh-synchronously" })
  ).pipe(
    Layer.provideMerge(RedisClient.layer({ host, port, commandTimeout: "500 millis", ...RedisStore.clientDefaults }))
  )))
