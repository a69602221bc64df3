/**
 * Facade hit: hits over a working set of 10,000 keys, read in turn (key `i % 10,000`), by a
 * Promise caller — code that is not written in Effect awaiting one read after another, as a
 * route handler or an adapter does. Every contender holds all 10,000 keys before the clock
 * starts; a run is one `async` loop of awaited reads inside one `Effect.promise`.
 *
 * The floor is lru-cache's `fetch()` (its Promise API, with a `fetchMethod` that a run never
 * reaches); beside it, the same with `ttlResolution: 0`, reading the clock on every hit as our
 * strategies do (lru-cache's default reads it at most once a millisecond). Ours: `Facade.make` over a `Job` (memory store) and over a `CacheFirst`, whose hits
 * answer without starting a fiber; and the same `Job.get` through `ManagedRuntime.runPromise`,
 * the way a Promise caller reached it before the facade. Peers: async-cache-dedupe, cachified
 * (over a `Map`), and effect's `Cache.get` through `ManagedRuntime.runPromise`.
 *
 * The in-fiber contenders read the same 10,000 keys inside one Effect fiber (`Harness.repeat`),
 * with effect's `Cache.get` as the reference (`× ref`): what a hit costs an Effect caller at a
 * working set larger than the key-digest memo. The `key: String` variants take the argument as
 * the key's id (no canonical encoding, no digest): what the rest of the read costs.
 *
 * @since 0.1.0
 */
import { cachified } from "@epic-web/cachified"
import type { CacheEntry } from "@epic-web/cachified"
import { CacheFirst, CacheStore, Facade } from "@stalewise/core"
import { Job, RefreshQueue } from "@stalewise/refresh"
import { createCache } from "async-cache-dedupe"
import * as Cache from "effect/Cache"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import type * as Scope from "effect/Scope"
import { LRUCache } from "lru-cache"
import * as Harness from "../harness.js"

/** The working set: keys 0 … 9,999, read in turn. */
export const workingSet = 10_000
const dayMillis = 24 * 60 * 60 * 1000

interface User {
  readonly id: number
  readonly name: string
}
const user = (id: number): User => ({ id, name: "Ada Lovelace" })

// Where each read's result goes, so no engine can prove a read unused.
const sink: { value: unknown } = { value: undefined }

/** One run of a Promise caller: `reads` awaited reads, key `i % workingSet`. */
const promiseLoop = (reads: number, read: (id: number) => Promise<unknown>): Effect.Effect<void> =>
  Effect.promise(async () => {
    for (let i = 0; i < reads; i++) sink.value = await read(i % workingSet)
  })

/** One run of an Effect caller: `reads` reads in one fiber, key `i % workingSet`. */
const fiberLoop = (reads: number, read: (id: number) => Effect.Effect<unknown, unknown>) =>
  Effect.suspend(() => {
    let i = 0
    return Harness.repeat(reads, () => read(i++ % workingSet))
  })

/** Loads every key through `read` and checks that a second read is a hit. */
const loadAll = <E>(
  name: string,
  read: (id: number) => Promise<unknown>,
  hit: (id: number) => Promise<boolean>
): Effect.Effect<void, E> =>
  Effect.promise(async () => {
    for (let id = 0; id < workingSet; id++) await read(id)
    for (let id = 0; id < workingSet; id += 997) {
      if (!(await hit(id))) throw new Error(`${name}: key ${id} is not a hit`)
    }
  })

const fetchUser = (id: number) => Effect.sync(() => user(id))

class Users extends Context.Tag("bench/facade-hit/Users")<Users, Job.Job<[id: number], User, never>>() {}
class Countries
  extends Context.Tag("bench/facade-hit/Countries")<Countries, CacheFirst.CacheFirst<[id: number], User, never>>()
{}

// `key: String`: the key's id is the argument itself, no canonical encoding or digest — what the
// rest of the read costs
const idKey = (byId: boolean) => byId ? { key: (id: number) => String(id) } : {}

const usersLive = (byId: boolean) =>
  Layer.scoped(
    Users,
    Job.make({
      name: "users",
      fetch: fetchUser,
      lifetime: Duration.days(1),
      timeToLive: Duration.days(2),
      ...idKey(byId)
    })
  ).pipe(
    Layer.provide(Layer.merge(CacheStore.layerMemoryWith({ capacity: 2 * workingSet }), RefreshQueue.layerFibers()))
  )

const countriesLive = (byId: boolean) =>
  Layer.scoped(
    Countries,
    CacheFirst.make({
      name: "users",
      lookup: fetchUser,
      timeToLive: Duration.days(1),
      capacity: 2 * workingSet,
      ...idKey(byId)
    })
  )

/** A managed runtime for the scenario's scope, disposed when it closes. */
const managed = <R, E>(
  layer: Layer.Layer<R, E>
): Effect.Effect<ManagedRuntime.ManagedRuntime<R, E>, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => ManagedRuntime.make(layer)),
    (runtime) => Effect.promise(() => runtime.dispose())
  )

/** A job over its runtime, every key loaded, as a facade. */
const jobFacade = (byId = false) =>
  Effect.gen(function*() {
    const runtime = yield* managed(usersLive(byId))
    const getUser = Facade.make(runtime, Users)
    yield* loadAll("Job facade", getUser, async (id) => (await getUser.withOutcome(id)).status === "hit")
    return { runtime, getUser }
  })

/** A cache-first function over its runtime, every key loaded, as a facade. */
const cacheFirstFacade = (byId = false) =>
  Effect.gen(function*() {
    const runtime = yield* managed(countriesLive(byId))
    const getUser = Facade.make(runtime, Countries)
    yield* loadAll("CacheFirst facade", getUser, async (id) => (await getUser.withOutcome(id)).status === "hit")
    return { runtime, getUser }
  })

/**
 * @since 0.1.0
 * @category scenarios
 */
export const facadeHit: Harness.ThroughputScenario = Harness.throughput({
  name: "facade-hit",
  description: `hits over a ${workingSet.toLocaleString("en")}-key working set, by a Promise caller and in a fiber`,
  unit: "reads",
  // the slowest contenders read about 30k/s: 50,000 reads keep a run under 2 s
  size: 50_000,
  quickSize: 20_000,
  rounds: 10,
  contenders: [
    {
      name: "lru-cache fetch()",
      baseline: true,
      setup: (reads) =>
        Effect.gen(function*() {
          const lru = new LRUCache<number, User>({
            max: 2 * workingSet,
            ttl: dayMillis,
            fetchMethod: async (id) => user(id)
          })
          yield* loadAll("lru-cache", (id) => lru.fetch(id), async (id) => lru.has(id))
          return promiseLoop(reads, (id) => lru.fetch(id))
        })
    },
    {
      // lru-cache reads its clock at most once a millisecond (`ttlResolution`), and not at all
      // while a run of awaited reads keeps its timer from firing; a TTL cache that reads the clock
      // on every hit (as ours do: a value is never served past its time) pays this much more
      name: "lru-cache fetch(), ttlResolution: 0",
      setup: (reads) =>
        Effect.gen(function*() {
          const lru = new LRUCache<number, User>({
            max: 2 * workingSet,
            ttl: dayMillis,
            ttlResolution: 0,
            fetchMethod: async (id) => user(id)
          })
          yield* loadAll("lru-cache", (id) => lru.fetch(id), async (id) => lru.has(id))
          return promiseLoop(reads, (id) => lru.fetch(id))
        })
    },
    {
      name: "stalewise Facade(Job)",
      target: 0.5,
      setup: (reads) => Effect.map(jobFacade(), ({ getUser }) => promiseLoop(reads, getUser))
    },
    {
      name: "stalewise Facade(Job), key: String",
      setup: (reads) => Effect.map(jobFacade(true), ({ getUser }) => promiseLoop(reads, getUser))
    },
    {
      name: "stalewise Facade(CacheFirst)",
      target: 0.5,
      setup: (reads) => Effect.map(cacheFirstFacade(), ({ getUser }) => promiseLoop(reads, getUser))
    },
    {
      name: "stalewise Facade(CacheFirst), key: String",
      setup: (reads) => Effect.map(cacheFirstFacade(true), ({ getUser }) => promiseLoop(reads, getUser))
    },
    {
      // the way a Promise caller reached a job before the facade: one runPromise per read
      name: "stalewise Job.get via runtime.runPromise",
      setup: (reads) =>
        Effect.map(jobFacade(), ({ runtime }) => {
          const users = runtime.runSync(Users)
          return promiseLoop(reads, (id) => runtime.runPromise(users.get(id)))
        })
    },
    {
      name: "async-cache-dedupe",
      setup: (reads) =>
        Effect.gen(function*() {
          let calls = 0
          const cache = createCache({
            ttl: dayMillis / 1000,
            storage: { type: "memory", options: { size: 2 * workingSet } }
          })
            .define("users", async (id: number) => {
              calls++
              return user(id)
            })
          yield* loadAll("async-cache-dedupe", (id) => cache.users(id), async (id) => {
            const before = calls
            await cache.users(id)
            return calls === before
          })
          return promiseLoop(reads, (id) => cache.users(id))
        })
    },
    {
      name: "cachified (Map)",
      setup: (reads) =>
        Effect.gen(function*() {
          const cache = new Map<string, CacheEntry<User>>()
          let calls = 0
          const read = (id: number) =>
            cachified({
              key: `users:${id}`,
              cache,
              ttl: dayMillis,
              getFreshValue: async () => {
                calls++
                return user(id)
              }
            })
          yield* loadAll("cachified", read, async (id) => {
            const before = calls
            await read(id)
            return calls === before
          })
          return promiseLoop(reads, read)
        })
    },
    {
      name: "effect Cache.get via runtime.runPromise",
      setup: (reads) =>
        Effect.gen(function*() {
          const runtime = yield* managed(Layer.empty)
          const cache = yield* Cache.make({ capacity: 2 * workingSet, timeToLive: "1 day", lookup: fetchUser })
          yield* loadAll("effect Cache", (id) =>
            runtime.runPromise(cache.get(id)), (id) =>
            runtime.runPromise(cache.contains(id)))
          return promiseLoop(reads, (id) =>
            runtime.runPromise(cache.get(id)))
        })
    },
    {
      name: "effect Cache.get in a fiber",
      reference: true,
      setup: (reads) =>
        Effect.gen(function*() {
          const cache = yield* Cache.make({ capacity: 2 * workingSet, timeToLive: "1 day", lookup: fetchUser })
          yield* Effect.forEach(Array.from({ length: workingSet }, (_, id) => id), (id) => cache.get(id), {
            discard: true
          })
          if (!(yield* cache.contains(workingSet - 1))) return yield* Effect.dieMessage("Cache: keys not loaded")
          return fiberLoop(reads, (id) => cache.get(id))
        })
    },
    {
      name: "stalewise Job.get in a fiber",
      setup: (reads) =>
        Effect.map(jobFacade(), ({ runtime }) => {
          const users = runtime.runSync(Users)
          return fiberLoop(reads, (id) => users.get(id))
        })
    },
    {
      name: "stalewise CacheFirst.get in a fiber",
      setup: (reads) =>
        Effect.map(cacheFirstFacade(), ({ runtime }) => {
          const countries = runtime.runSync(Countries)
          return fiberLoop(reads, (id) => countries.get(id))
        })
    }
  ]
})
