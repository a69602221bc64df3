/**
 * Batched reads: `getMany` of 100 keys against 100 `get`s, and against a peer that batches
 * (DataLoader in front of lru-cache).
 *
 * - `get-many`, in process: each call asks for 100 keys, 30 of them cached (the same hot keys
 *   every call) and 70 never seen (misses). The upstream answers at once; a batched upstream
 *   (`fetchMany`, `lookupMany`, DataLoader's batch function) answers the 70 in one call, per-key
 *   `get`s make 70 calls. What is measured is the cost of the cache's own path for a batch:
 *   keys, store, single flight, bookkeeping.
 * - `get-many-redis`: 100 keys all present in a local `redis-server`, read by a job over
 *   `RedisStore` with one `getMany` (one `MGET`) or 100 concurrent `get`s (100 `GET`s), next to
 *   the floor, ioredis `MGET` and `JSON.parse` of the same bytes.
 *
 * @since 0.1.0
 */
import { CacheEntry, CacheFirst, CacheStore, EntryCodec } from "@stalewise/core"
import { RedisClient, RedisStore } from "@stalewise/redis"
import { Job, RefreshQueue } from "@stalewise/refresh"
import DataLoader from "dataloader"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import { LRUCache } from "lru-cache"
import * as Harness from "../harness.js"
import * as RedisServer from "../redisServer.js"
import { connect, stalewiseClient, user } from "./redisHit.js"

/** Keys per batch call, and how many of them are cached. */
const batch = 100
const hot = 30
const capacity = 100_000
const dayMillis = 24 * 60 * 60 * 1000

const value = (id: number) => ({ id, name: "Ada Lovelace" })

/**
 * The ids of one batch call: the 30 hot ids, then 70 ids never asked before (a counter kept per
 * contender, so every round's misses are new).
 */
const makeIds = () => {
  let next = 1_000_000
  return (): Array<number> => {
    const ids = Array.from({ length: batch }, (_, i) => i < hot ? i : next++)
    return ids
  }
}

/** An upstream counting its calls; `many` is the batched call. */
const makeUpstream = () => {
  const state = { calls: 0 }
  return {
    state,
    one: (id: number) => Effect.sync(() => (state.calls++, value(id))),
    many: (argsList: ReadonlyArray<readonly [number]>) =>
      Effect.sync(() => (state.calls++, argsList.map(([id]) => value(id))))
  }
}

/** Runs `calls` batch calls of `read(ids)` one after the other. */
const batches = (keys: number, read: (ids: Array<number>) => Effect.Effect<unknown, unknown>) => {
  const ids = makeIds()
  return Harness.repeat(Math.max(1, Math.round(keys / batch)), () => read(ids()))
}

const job = (options: { readonly batched: boolean }) =>
  Effect.gen(function*() {
    const upstream = makeUpstream()
    const store = yield* CacheStore.makeMemory({ capacity })
    const queue = yield* Layer.build(RefreshQueue.layerFibers())
    const users = yield* Job.make({
      name: "user",
      fetch: upstream.one,
      fetchMany: options.batched ? upstream.many : undefined,
      lifetime: Duration.days(1)
    }).pipe(Effect.provide(Context.add(queue, CacheStore.CacheStore, store)))
    for (let id = 0; id < hot; id++) yield* users.get(id)
    return users
  })

const cacheFirst = (options: { readonly batched: boolean }) =>
  Effect.gen(function*() {
    const upstream = makeUpstream()
    const users = yield* CacheFirst.make({
      name: "user",
      lookup: upstream.one,
      lookupMany: options.batched ? upstream.many : undefined,
      timeToLive: Duration.days(1),
      capacity
    })
    for (let id = 0; id < hot; id++) yield* users.get(id)
    return users
  })

const checked = (name: string, values: ReadonlyArray<unknown>, ids: ReadonlyArray<number>) =>
  values.length === ids.length && values.every((v, i) => (v as { id: number }).id === ids[i])
    ? Effect.void
    : Effect.dieMessage(`${name}: wrong values`)

/**
 * @since 0.1.0
 * @category scenarios
 */
export const getMany: Harness.ThroughputScenario = Harness.throughput({
  name: "get-many",
  description: `batches of ${batch} keys (${hot} cached, ${batch - hot} misses, a batched upstream), in process`,
  unit: "keys",
  // 100 batches: the per-key contenders run at a few thousand keys a second
  size: 10_000,
  quickSize: 2_000,
  rounds: 8,
  contenders: [
    {
      name: "DataLoader + lru-cache (loadMany)",
      baseline: true,
      setup: (keys) =>
        Effect.sync(() => {
          const upstream = makeUpstream()
          const lru = new LRUCache<number, ReturnType<typeof value>>({ max: capacity })
          // the batch function reads the cache, and asks the upstream once for what it lacks
          const loader = new DataLoader<number, ReturnType<typeof value>>(async (ids) => {
            const found = ids.map((id) => lru.get(id))
            const missing = ids.filter((_, i) => found[i] === undefined)
            if (missing.length > 0) {
              const loaded = Effect.runSync(upstream.many(missing.map((id) => [id] as const)))
              let n = 0
              for (let i = 0; i < ids.length; i++) {
                if (found[i] === undefined) {
                  found[i] = loaded[n++]!
                  lru.set(ids[i]!, found[i]!)
                }
              }
            }
            return found as Array<ReturnType<typeof value>>
          }, { cache: false, maxBatchSize: batch })
          return batches(keys, (ids) => Effect.promise(() => loader.loadMany(ids)))
        })
    },
    {
      name: "stalewise Job.getMany(100)",
      reference: true,
      setup: (keys) =>
        Effect.map(
          job({ batched: true }),
          (users) =>
            batches(keys, (ids) =>
              Effect.flatMap(
                users.getMany(ids.map((id) => [id] as [number])),
                (values) => checked("Job.getMany", values, ids)
              ))
        )
    },
    {
      name: "stalewise Job.get × 100",
      setup: (keys) =>
        Effect.map(
          job({ batched: false }),
          (users) => batches(keys, (ids) => Effect.forEach(ids, (id) => users.get(id), { concurrency: "unbounded" }))
        )
    },
    {
      name: "stalewise CacheFirst.getMany(100)",
      setup: (keys) =>
        Effect.map(
          cacheFirst({ batched: true }),
          (users) =>
            batches(keys, (ids) =>
              Effect.flatMap(
                users.getMany(ids.map((id) => [id] as [number])),
                (values) => checked("CacheFirst.getMany", values, ids)
              ))
        )
    },
    {
      name: "stalewise CacheFirst.get × 100",
      setup: (keys) =>
        Effect.map(
          cacheFirst({ batched: false }),
          (users) => batches(keys, (ids) => Effect.forEach(ids, (id) => users.get(id), { concurrency: "unbounded" }))
        )
    }
  ]
})

const redisIds = Array.from({ length: batch }, (_, i) => i)

/** A job over `RedisStore` with every key of the batch loaded. */
const redisJob = (address: RedisServer.Address, prefix: string) =>
  Effect.gen(function*() {
    const upstream = makeUpstream()
    const redis = yield* stalewiseClient(address)
    const store = yield* Effect.provideService(RedisStore.make({ keyPrefix: prefix }), RedisClient.RedisClient, redis)
    const queue = yield* Layer.build(RefreshQueue.layerFibers())
    const users = yield* Job.make({
      name: "user",
      fetch: (id: number) => Effect.sync(() => (upstream.state.calls++, user(id))),
      lifetime: Duration.days(1),
      timeToLive: Duration.days(2)
    }).pipe(Effect.provide(Context.add(queue, CacheStore.CacheStore, store)))
    for (const id of redisIds) yield* users.get(id)
    const loaded = upstream.state.calls
    const noUpstream = Effect.suspend(() =>
      upstream.state.calls === loaded ? Effect.void : Effect.dieMessage("a run reached the upstream")
    )
    return { users, noUpstream }
  })

/**
 * @since 0.1.0
 * @category scenarios
 */
export const getManyRedis: Harness.ThroughputScenario = Harness.throughput({
  name: "get-many-redis",
  description: `batches of ${batch} keys, all present in a local redis-server`,
  unit: "keys",
  size: 10_000,
  quickSize: 2_000,
  rounds: 8,
  skip: RedisServer.unavailable,
  contenders: [
    {
      name: "ioredis MGET + JSON.parse",
      baseline: true,
      setup: (keys) =>
        Effect.gen(function*() {
          const address = yield* RedisServer.acquire
          const client = yield* connect(address)
          const now = Date.now()
          const names = redisIds.map((id) => `floor:many:${id}`)
          yield* Effect.promise(() =>
            Promise.all(redisIds.map((id) =>
              client.set(
                names[id]!,
                Either.getOrThrow(EntryCodec.encode(
                  CacheEntry.make({
                    value: user(id),
                    createdAt: now,
                    staleAt: now + dayMillis,
                    expiresAt: now + dayMillis
                  }),
                  undefined,
                  { backend: "bench", method: "set" }
                )),
                "PX",
                dayMillis
              )
            ))
          )
          return Harness.repeat(Math.max(1, Math.round(keys / batch)), () =>
            Effect.map(
              Effect.promise(() => client.mget(names)),
              (jsons) => jsons.map((json) => JSON.parse(json!) as unknown)
            ))
        })
    },
    {
      name: "stalewise Job.getMany(100) over RedisStore",
      reference: true,
      setup: (keys) =>
        Effect.gen(function*() {
          const address = yield* RedisServer.acquire
          const { noUpstream, users } = yield* redisJob(address, "many:")
          const args = redisIds.map((id) => [id] as [number])
          return Effect.zipRight(
            Harness.repeat(Math.max(1, Math.round(keys / batch)), () => users.getMany(args)),
            noUpstream
          )
        })
    },
    {
      name: "stalewise Job.get × 100 over RedisStore",
      setup: (keys) =>
        Effect.gen(function*() {
          const address = yield* RedisServer.acquire
          const { noUpstream, users } = yield* redisJob(address, "single:")
          return Effect.zipRight(
            Harness.repeat(
              Math.max(1, Math.round(keys / batch)),
              () => Effect.forEach(redisIds, (id) => users.get(id), { concurrency: "unbounded" })
            ),
            noUpstream
          )
        })
    }
  ]
})
