/** @internal */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { LRUCache } from "lru-cache"
import type { CacheEntry } from "../CacheEntry.js"
import * as CacheMetrics from "../CacheMetrics.js"
import type * as CacheStore from "../CacheStore.js"
import { type PolicyError, positiveInteger } from "../PolicyError.js"
import { leaseMillis, makeToken } from "./lease.js"

const backend = "memory"
const TypeId: CacheStore.TypeId = "~@stalewise/core/CacheStore"

/** @internal */
export const make = (
  options: CacheStore.MemoryOptions = {}
): Effect.Effect<CacheStore.CacheStore.Service, PolicyError> =>
  Effect.gen(function*() {
    const capacity = yield* positiveInteger("capacity", options.capacity ?? 10_000)
    const maxBytes = options.maxBytes === undefined ? undefined : yield* positiveInteger("maxBytes", options.maxBytes)
    const sizeOf = options.sizeOf ?? estimateSize
    // The store's time source is the Clock present when it is built (TestClock in tests).
    const clock = yield* Effect.clock
    const counters = CacheMetrics.makeStoreCounters(backend)

    const entries = new LRUCache<string, CacheEntry<unknown>>({
      max: capacity,
      ...(maxBytes === undefined ? {} : {
        maxSize: maxBytes,
        sizeCalculation: (entry) => Math.max(1, Math.ceil(sizeOf(entry.value)))
      }),
      dispose: (_entry, _key, reason) => {
        if (reason === "evict") counters.eviction()
      }
    })
    const leases = new Map<string, { readonly token: string; readonly expiresAt: number }>()
    let leaseSweepAt = 1024

    const sweepLeases = (now: number) => {
      for (const [key, lease] of leases) {
        if (lease.expiresAt <= now) leases.delete(key)
      }
      leaseSweepAt = Math.max(1024, leases.size * 2)
    }

    const store: CacheStore.CacheStore.Service = {
      [TypeId]: TypeId,
      backend,
      get: <A>(key: string) =>
        Effect.sync((): Option.Option<CacheEntry<A>> => {
          const entry = entries.get(key)
          if (entry === undefined) {
            counters.miss()
            return Option.none()
          }
          if (entry.expiresAt <= clock.unsafeCurrentTimeMillis()) {
            entries.delete(key)
            counters.miss()
            return Option.none()
          }
          counters.hit()
          return Option.some(entry as CacheEntry<A>)
        }),
      set: (key, entry) =>
        Effect.sync(() => {
          if (entry.expiresAt <= clock.unsafeCurrentTimeMillis()) {
            entries.delete(key)
            return
          }
          entries.set(key, entry)
          // lru-cache refuses an entry larger than the byte budget and drops the old one
          if (maxBytes !== undefined && !entries.has(key)) {
            counters.eviction()
          }
        }),
      delete: (key) =>
        Effect.sync(() => {
          entries.delete(key)
        }),
      deletePrefix: (prefix) =>
        Effect.sync(() => {
          let removed = 0
          for (const key of [...entries.keys()]) {
            if (key.startsWith(prefix) && entries.delete(key)) removed++
          }
          return removed
        }),
      acquireLease: (key, duration) =>
        Effect.flatMap(leaseMillis(duration), (millis) =>
          Effect.sync(() => {
            const now = clock.unsafeCurrentTimeMillis()
            if (leases.size >= leaseSweepAt) sweepLeases(now)
            const held = leases.get(key)
            if (held !== undefined && held.expiresAt > now) return Option.none()
            const lease = { key, token: makeToken(), expiresAt: now + millis }
            leases.set(key, lease)
            return Option.some(lease)
          })),
      releaseLease: (lease) =>
        Effect.sync(() => {
          const held = leases.get(lease.key)
          if (held === undefined || held.token !== lease.token) return false
          leases.delete(lease.key)
          return held.expiresAt > clock.unsafeCurrentTimeMillis()
        })
    }
    return store
  })

/**
 * A rough estimate of a live value's size in bytes, for the memory store's byte budget: what
 * matters is that big values weigh more than small ones, not exactness.
 *
 * @internal
 */
export const estimateSize = (value: unknown): number => {
  const seen = new Set<object>()
  const visit = (u: unknown): number => {
    switch (typeof u) {
      case "string":
        return 16 + u.length * 2
      case "number":
      case "bigint":
        return 8
      case "boolean":
      case "undefined":
        return 4
      case "object": {
        if (u === null) return 4
        if (seen.has(u)) return 8
        seen.add(u)
        if (ArrayBuffer.isView(u)) return 32 + u.byteLength
        if (u instanceof Date) return 32
        let size = 32
        const entries = u instanceof Map
          ? [...u.entries()].flat()
          : u instanceof Set
          ? [...u]
          : Array.isArray(u)
          ? u
          : Object.entries(u).flat()
        for (const item of entries) size += 8 + visit(item)
        return size
      }
      default:
        return 8
    }
  }
  return visit(value)
}
