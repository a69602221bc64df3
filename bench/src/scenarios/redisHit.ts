/**
 * Redis hit: 64 concurrent callers, each reading its own present key from Redis over and over
 * (one read in flight per caller, so 64 at once), against the same local `redis-server`. The
 * floor is the least a Redis-backed cache can do for a hit: ioredis `GET` and `JSON.parse` of
 * the same bytes our store keeps, called from the fiber with `Effect.promise`. Every contender
 * reads through Redis on every call: no in-process tier anywhere. A second row reads the same way
 * over a connection with our client's safety settings (a command timeout, no offline queue): what
 * those cost on their own.
 *
 * Each contender has its own connection, loads its 64 keys in setup through its own API (the
 * floor copies our envelopes byte for byte) and checks that they are hits; a run that reaches an
 * upstream fails. Each caller reading its own key means no contender can merge concurrent reads
 * of one key (async-cache-dedupe would): every read is a round trip.
 *
 * @since 0.1.0
 */
import { cachified } from "@epic-web/cachified"
import { CacheEntry, CacheStore, EntryCodec } from "@stalewise/core"
import { RedisClient, RedisStore } from "@stalewise/redis"
import { Job, RefreshQueue } from "@stalewise/refresh"
import { createCache } from "async-cache-dedupe"
import { BentoCache, bentostore } from "bentocache"
import { redisDriver } from "bentocache/drivers/redis"
import { redisCacheAdapter } from "cachified-redis-adapter"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import { Redis, type RedisOptions } from "ioredis"
import * as Harness from "../harness.js"
import * as RedisServer from "../redisServer.js"

/** Concurrent callers; caller `i` reads key `i`. */
export const callers = 64
const dayMillis = 24 * 60 * 60 * 1000

/**
 * The value every contender stores: a user record of about 400 bytes of JSON.
 *
 * @since 0.1.0
 * @category fixtures
 */
export interface User {
  readonly id: number
  readonly name: string
  readonly email: string
  readonly roles: ReadonlyArray<string>
  readonly address: { readonly street: string; readonly city: string; readonly postcode: string }
  readonly preferences: { readonly theme: string; readonly language: string; readonly digest: boolean }
  readonly bio: string
  readonly createdAt: string
}

/**
 * @since 0.1.0
 * @category fixtures
 */
export const user = (id: number): User => ({
  id,
  name: "Ada Lovelace",
  email: `ada.${id}@example.com`,
  roles: ["admin", "editor", "viewer"],
  address: { street: "12 St James's Square", city: "London", postcode: "SW1Y 4JH" },
  preferences: { theme: "dark", language: "en-GB", digest: true },
  bio: "Mathematician and writer, chiefly known for her work on Charles Babbage's proposed mechanical " +
    "general-purpose computer, the Analytical Engine.",
  createdAt: "1815-12-10T00:00:00.000Z"
})

/**
 * A plain ioredis connection to the server (with `options`), closed with `QUIT` when the scope
 * closes.
 *
 * @since 0.1.0
 * @category resources
 */
export const connect = (
  address: RedisServer.Address,
  options: RedisOptions = {}
): Effect.Effect<Redis, unknown, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.tryPromise(async () => {
      const client = new Redis({ ...options, host: address.host, port: address.port, lazyConnect: true })
      await client.connect()
      return client
    }),
    (client) => Effect.promise(() => client.quit().catch(() => client.disconnect()))
  )

/**
 * Our connection, with the settings `RedisStore.layer` gives its own (`RedisStore.clientDefaults`).
 *
 * @since 0.1.0
 * @category resources
 */
export const stalewiseClient = (
  address: RedisServer.Address
): Effect.Effect<RedisClient.RedisClient.Service, unknown, Scope.Scope> =>
  RedisClient.make({ host: address.host, port: address.port, ...RedisStore.clientDefaults })

/** What a contender's setup returns: the read of caller `i`, and how many upstream calls it made. */
interface Reader {
  readonly read: (caller: number) => Effect.Effect<unknown, unknown>
  readonly upstreamCalls: () => number
}

interface RedisHitContender {
  readonly name: string
  readonly baseline?: boolean
  /** The bound with 64 concurrent callers, and with one (sequential) when it differs. */
  readonly target?: number
  readonly sequentialTarget?: number
  /** Connects, loads every caller's key and checks that it is a hit; in the scenario's scope. */
  readonly make: (address: RedisServer.Address) => Effect.Effect<Reader, unknown, Scope.Scope>
}

/** An upstream that counts its calls: only setup may reach it. */
const makeUpstream = () => {
  const state = { calls: 0 }
  return {
    state,
    promise: (id: number): Promise<User> => {
      state.calls++
      return Promise.resolve(user(id))
    }
  }
}

const ids = Array.from({ length: callers }, (_, i) => i)

const toContender = (concurrency: number) => (contender: RedisHitContender): Harness.Contender<unknown> => ({
  name: contender.name,
  baseline: contender.baseline,
  target: concurrency === 1 ? contender.sequentialTarget ?? contender.target : contender.target,
  setup: (reads) =>
    Effect.gen(function*() {
      const address = yield* RedisServer.acquire
      const reader = yield* contender.make(address)
      const loaded = reader.upstreamCalls()
      return Effect.zipRight(
        Harness.concurrentRepeat(concurrency, Math.max(1, Math.round(reads / concurrency)), reader.read),
        Effect.suspend(() =>
          reader.upstreamCalls() === loaded
            ? Effect.void
            : Effect.dieMessage(`${contender.name}: a run reached the upstream, not every read was a hit`)
        )
      )
    })
})

/** Our envelope of `user(id)`, exactly as `RedisStore` writes it. */
const envelope = (id: number, now: number) =>
  Either.getOrThrow(
    EntryCodec.encode(
      CacheEntry.make({ value: user(id), createdAt: now, staleAt: now + dayMillis, expiresAt: now + dayMillis }),
      undefined,
      { backend: "bench", method: "set" }
    )
  )

const plainGet = (name: string, options: RedisOptions, baseline: boolean): RedisHitContender => ({
  name,
  baseline,
  make: (address) =>
    Effect.gen(function*() {
      const client = yield* connect(address, options)
      const now = Date.now()
      const keys = ids.map((id) => `floor:user:${id}`)
      yield* Effect.promise(() =>
        Promise.all(ids.map((id) => client.set(keys[id]!, envelope(id, now), "PX", dayMillis)))
      )
      const read = (caller: number) =>
        Effect.map(Effect.promise(() => client.get(keys[caller]!)), (json) => JSON.parse(json!) as unknown)
      for (const id of ids) {
        if (((yield* read(id)) as { v?: User }).v?.id !== id) return yield* Effect.dieMessage(`${name}: key not loaded`)
      }
      return { read, upstreamCalls: () => 0 }
    })
})

const floor = plainGet("ioredis GET + JSON.parse", {}, true)

// The floor on a connection with our client's safety settings: a command timeout (ioredis arms
// a timer per command), no offline queue, no retries. What those settings cost, apart from ours.
const floorWithTimeout = plainGet(
  "ioredis GET + JSON.parse, commandTimeout 5 s",
  { commandTimeout: 5_000, ...RedisStore.clientDefaults },
  false
)

const storeGet: RedisHitContender = {
  name: "stalewise RedisStore store.get",
  target: 0.9,
  make: (address) =>
    Effect.gen(function*() {
      const redis = yield* stalewiseClient(address)
      const store = yield* Effect.provideService(
        RedisStore.make({ keyPrefix: "store:" }),
        RedisClient.RedisClient,
        redis
      )
      const now = Date.now()
      const keys = ids.map((id) => `users:${id}`)
      for (const id of ids) {
        yield* store.set(
          keys[id]!,
          CacheEntry.make({ value: user(id), createdAt: now, staleAt: now + dayMillis, expiresAt: now + dayMillis })
        )
        if (Option.isNone(yield* store.get(keys[id]!))) return yield* Effect.dieMessage("store: key not loaded")
      }
      return { read: (caller: number) => store.get(keys[caller]!), upstreamCalls: () => 0 }
    })
}

// A stale-while-revalidate job keeps no in-process tier: every `get` reads the store. Its key is
// derived from the argument (canonical encoding + digest), as by default.
const jobGet: RedisHitContender = {
  name: "stalewise Job.get over RedisStore",
  // auto-pipelined (RedisStore.clientDefaults): concurrent reads share round trips
  target: 1.2,
  sequentialTarget: 0.9,
  make: (address) =>
    Effect.gen(function*() {
      const upstream = makeUpstream()
      const redis = yield* stalewiseClient(address)
      const store = yield* Effect.provideService(RedisStore.make({ keyPrefix: "job:" }), RedisClient.RedisClient, redis)
      const queue = yield* Layer.build(RefreshQueue.layerFibers())
      const users = yield* Job.make({
        name: "user",
        fetch: (id: number) => Effect.promise(() => upstream.promise(id)),
        lifetime: Duration.days(1),
        timeToLive: Duration.days(2)
      }).pipe(Effect.provide(Context.add(queue, CacheStore.CacheStore, store)))
      for (const id of ids) {
        yield* users.get(id)
        const outcome = yield* users.getWithOutcome(id)
        if (outcome.status !== "hit") return yield* Effect.dieMessage(`Job: expected a hit, got ${outcome.status}`)
      }
      return { read: (caller: number) => users.get(caller), upstreamCalls: () => upstream.state.calls }
    })
}

// L2 only (the redis driver, no L1 memory layer), so that every read goes to Redis. An L2-only
// `getOrSet` hit is a GET and a deserialisation, without taking the per-key lock.
const bentocache: RedisHitContender = {
  name: "bentocache getOrSet (L2 redis only)",
  make: (address) =>
    Effect.gen(function*() {
      const upstream = makeUpstream()
      const bento = yield* Effect.acquireRelease(
        Effect.sync(() =>
          new BentoCache({
            default: "redis",
            prefix: "bento",
            stores: {
              redis: bentostore().useL2Layer(redisDriver({ connection: { host: address.host, port: address.port } }))
            }
          })
        ),
        (cache) => Effect.promise(() => cache.disconnect())
      )
      const read = (caller: number) =>
        Effect.promise(() =>
          bento.getOrSet({ key: `users:${caller}`, factory: () => upstream.promise(caller), ttl: "1d" })
        )
      for (const id of ids) yield* read(id)
      if (upstream.state.calls !== callers) return yield* Effect.dieMessage("bentocache: keys not loaded")
      return { read, upstreamCalls: () => upstream.state.calls }
    })
}

// cachified-redis-adapter, the Redis adapter cachified's README lists. It is written for
// node-redis (`set(key, value, { EXAT })`); ioredis takes the same command positionally, so its
// `set` is bridged in three lines. Reads are the adapter's own: `GET` and `JSON.parse`.
const cachifiedRedis: RedisHitContender = {
  name: "cachified + cachified-redis-adapter",
  make: (address) =>
    Effect.gen(function*() {
      const upstream = makeUpstream()
      const client = yield* connect(address)
      const cache = redisCacheAdapter({
        get: (key) => client.get(key),
        set: (key, value, options) =>
          options === undefined ? client.set(key, value) : client.set(key, value, "EXAT", options.EXAT),
        del: (key) => client.del(key)
      })
      const read = (caller: number) =>
        Effect.promise(() =>
          cachified({
            key: `cachified:users:${caller}`,
            cache,
            ttl: dayMillis,
            getFreshValue: () => upstream.promise(caller)
          })
        )
      for (const id of ids) yield* read(id)
      if (upstream.state.calls !== callers) return yield* Effect.dieMessage("cachified: keys not loaded")
      return { read, upstreamCalls: () => upstream.state.calls }
    })
}

// `storage: { type: "redis" }` over an ioredis client; ttl a day (whole seconds), no stale window.
const asyncCacheDedupe: RedisHitContender = {
  name: "async-cache-dedupe (redis storage)",
  make: (address) =>
    Effect.gen(function*() {
      const upstream = makeUpstream()
      const client = yield* connect(address)
      const cache = createCache({ ttl: dayMillis / 1000, storage: { type: "redis", options: { client } } })
        .define("users", (id: number) => upstream.promise(id))
      const read = (caller: number) => Effect.promise(() => cache.users(caller))
      for (const id of ids) yield* read(id)
      if (upstream.state.calls !== callers) return yield* Effect.dieMessage("async-cache-dedupe: keys not loaded")
      return { read, upstreamCalls: () => upstream.state.calls }
    })
}

const contenders = [floor, floorWithTimeout, storeGet, jobGet, bentocache, cachifiedRedis, asyncCacheDedupe]

/**
 * @since 0.1.0
 * @category scenarios
 */
export const redisHit: Harness.ThroughputScenario = Harness.throughput({
  name: "redis-hit",
  description: `Redis-backed hits: ${callers} concurrent callers, each reading its own key, one local redis-server`,
  unit: "reads",
  // our store reads about 15k/s today: 6,400 reads keep a full run of the scenario near 20 s
  size: callers * 100,
  quickSize: callers * 40,
  skip: RedisServer.unavailable,
  contenders: contenders.map(toContender(callers))
})

/**
 * The same reads by one caller, one after the other: every read a round trip of its own, so what
 * a contender adds to the round trip shows.
 *
 * @since 0.1.0
 * @category scenarios
 */
export const redisHitSequential: Harness.ThroughputScenario = Harness.throughput({
  name: "redis-hit-sequential",
  description: "Redis-backed hits: one caller reading its key over and over, one local redis-server",
  unit: "reads",
  size: 3_000,
  quickSize: 1_000,
  skip: RedisServer.unavailable,
  contenders: contenders.map(toContender(1))
})
