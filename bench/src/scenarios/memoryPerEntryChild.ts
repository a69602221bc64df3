/**
 * One measurement of `memory-per-entry`, in a process of its own (run by `memoryPerEntry.ts`
 * with `node --expose-gc`, bundled, or with `--import tsx` from the sources): the heap before the contender is built, then after it
 * holds `entries` entries inserted through its user-facing API, both after full collections.
 * Prints `{ "bytes": … }` on stdout.
 *
 * @since 0.1.0
 */
import { type CacheEntry as CachifiedEntry, cachified } from "@epic-web/cachified"
import { CacheFirst, CacheStore } from "@stalewise/core"
import { Job, RefreshQueue } from "@stalewise/refresh"
import * as Cache from "effect/Cache"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import { LRUCache } from "lru-cache"

const [contender = "", count = "100000"] = process.argv.slice(2)
const entries = Number(count)
const gc = (globalThis as { gc?: () => void }).gc
if (gc === undefined) throw new Error("run with --expose-gc")

const heapUsed = (): number => {
  gc()
  gc()
  return process.memoryUsage().heapUsed
}

/** A small object: what a cache of user records holds. */
const userOf = (id: number) => ({ id, name: `user ${id}`, email: `user${id}@example.com` })

// Each program builds its cache and inserts `entries` entries, and returns the cache so that
// it stays alive until the second measurement.
const programs: Record<string, Effect.Effect<unknown, unknown, Scope.Scope>> = {
  "lru-cache": Effect.sync(() => {
    const cache = new LRUCache<string, object>({ max: entries })
    for (let id = 0; id < entries; id++) cache.set(`users:get:${id}`, userOf(id))
    return cache
  }),
  "effect Cache": Effect.gen(function*() {
    const cache = yield* Cache.make({
      capacity: entries,
      timeToLive: "1 day",
      lookup: (id: number) => Effect.succeed(userOf(id))
    })
    for (let id = 0; id < entries; id++) yield* cache.get(id)
    return cache
  }),
  "cachified (lru-cache)": Effect.gen(function*() {
    const lru = new LRUCache<string, CachifiedEntry>({ max: entries })
    const cache = {
      name: "lru-cache",
      get: (key: string) => lru.get(key),
      set: (key: string, value: CachifiedEntry) => lru.set(key, value),
      delete: (key: string) => lru.delete(key)
    }
    for (let id = 0; id < entries; id++) {
      yield* Effect.promise(() =>
        cachified({ key: `users:get:${id}`, cache, ttl: 86_400_000, getFreshValue: () => userOf(id) })
      )
    }
    return lru
  }),
  "stalewise Job.get": Effect.gen(function*() {
    const services = yield* Layer.build(
      Layer.merge(CacheStore.layerMemoryWith({ capacity: entries }), RefreshQueue.layerFibers())
    )
    const users = yield* Job.make({
      name: "get",
      fetch: (id: number) => Effect.succeed(userOf(id)),
      lifetime: Duration.days(1)
    }).pipe(Effect.provide(services))
    for (let id = 0; id < entries; id++) yield* users.get(id)
    return users
  }),
  "stalewise CacheFirst.get": Effect.gen(function*() {
    const users = yield* CacheFirst.make({
      name: "get",
      lookup: (id: number) => Effect.succeed(userOf(id)),
      timeToLive: Duration.days(1),
      capacity: entries
    })
    for (let id = 0; id < entries; id++) yield* users.get(id)
    return users
  })
}

const program = programs[contender]
if (program === undefined) throw new Error(`unknown contender ${contender}`)
const before = heapUsed()
// the strategies' scope stays open until the second measurement
const measured = Effect.runPromise(
  Effect.scoped(Effect.gen(function*() {
    const held = yield* program
    const after = heapUsed()
    return { held, bytes: (after - before) / entries }
  }))
)
measured.then(({ bytes, held }) => {
  process.stdout.write(`${JSON.stringify({ bytes, held: held !== undefined })}\n`)
}, (error) => {
  process.stderr.write(`${String(error)}\n`)
  process.exitCode = 1
})
