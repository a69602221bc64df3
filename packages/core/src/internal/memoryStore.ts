/** @internal */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { LRUCache } from "lru-cache"
import type { CacheEntry } from "../CacheEntry.js"
import * as CacheMetrics from "../CacheMetrics.js"
import type * as CacheStore from "../CacheStore.js"
import { type InProcess, registerInProcess } from "../Facade.js"
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
    // a user `sizeOf` that throws or answers nonsense falls back to the estimate
    const valueBytes = (value: unknown): number => {
      let size: number
      try {
        size = sizeOf(value)
      } catch {
        size = NaN
      }
      return Number.isFinite(size) && size >= 0 ? Math.max(1, Math.ceil(size)) : estimateSize(value)
    }

    // lru-cache allocates its slots for `capacity` entries up front: with a byte budget they are
    // part of it, and capacity is lowered so that they take at most a quarter of it.
    const slots = maxBytes === undefined
      ? capacity
      : Math.max(1, Math.min(capacity, Math.floor(maxBytes / 4 / slotBytes)))
    // An entry is a slot: lru-cache maps each key to its slot number (a small integer, nothing
    // allocated), the value and the three timestamps live in arrays allocated up front. A
    // `CacheEntry` object per entry cost 104 bytes of heap (its timestamps are boxed numbers);
    // a slot costs 32. One spare slot: a new entry takes its slot before lru-cache evicts.
    const values = new Array<unknown>(slots + 1).fill(undefined)
    const times = new Float64Array((slots + 1) * 3)
    // the tags of the (few) tagged entries, by slot: untagged entries pay nothing for them
    const tagsBySlot = new Map<number, ReadonlyArray<string>>()
    const free: Array<number> = []
    for (let slot = slots; slot >= 0; slot--) free.push(slot)
    const entries = new LRUCache<string, number>({
      max: slots,
      ...(maxBytes === undefined ? {} : {
        maxSize: Math.max(1, maxBytes - slots * slotBytes),
        // the budget holds what the heap holds: the value, the key and the entry's own cost
        sizeCalculation: (slot, key) => valueBytes(values[slot]) + stringBytes(key) + entryOverheadBytes
      }),
      dispose: (slot, _key, reason) => {
        values[slot] = undefined
        if (tagsBySlot.size > 0) tagsBySlot.delete(slot)
        free.push(slot)
        if (reason === "evict") counters.eviction()
      }
    })
    const entryAt = <A>(slot: number): CacheEntry<A> => {
      const entry: CacheEntry<A> = {
        value: values[slot] as A,
        createdAt: times[slot * 3]!,
        staleAt: times[slot * 3 + 1]!,
        expiresAt: times[slot * 3 + 2]!
      }
      const tags = tagsBySlot.size === 0 ? undefined : tagsBySlot.get(slot)
      return tags === undefined ? entry : { ...entry, tags }
    }
    const leases = new Map<string, { readonly token: string; readonly expiresAt: number }>()
    let leaseSweepAt = 1024

    const sweepLeases = (now: number) => {
      for (const [key, lease] of leases) {
        if (lease.expiresAt <= now) leases.delete(key)
      }
      leaseSweepAt = Math.max(1024, leases.size * 2)
    }

    // The synchronous read of the Promise facade's hit path (Facade.inProcess): the entry `get`
    // would look at, without an Effect around it; the caller checks its expiry (it reads the
    // clock anyway) and lets `get` drop an expired one.
    const inProcess: InProcess = {
      peek: (key) => {
        const slot = entries.get(key)
        return slot === undefined ? undefined : entryAt(slot)
      },
      hit: counters.hit
    }

    // an expired entry is dropped as it is found
    const read = <A>(key: string, now: number): Option.Option<CacheEntry<A>> => {
      const slot = entries.get(key)
      if (slot === undefined || times[slot * 3 + 2]! <= now) {
        if (slot !== undefined) entries.delete(key)
        counters.miss()
        return Option.none()
      }
      counters.hit()
      return Option.some(entryAt<A>(slot))
    }

    const store: CacheStore.CacheStore.Service = {
      [TypeId]: TypeId,
      backend,
      get: <A>(key: string) => Effect.sync(() => read<A>(key, clock.unsafeCurrentTimeMillis())),
      // one batch: the same rules as `get`, key by key
      getMany: <A>(keys: ReadonlyArray<string>) =>
        Effect.sync(() => {
          const now = clock.unsafeCurrentTimeMillis()
          return keys.map((key) => read<A>(key, now))
        }),
      set: (key, entry) =>
        Effect.sync(() => {
          if (entry.expiresAt <= clock.unsafeCurrentTimeMillis()) {
            entries.delete(key)
            return
          }
          // an entry replaced keeps its slot (lru-cache sees the same value: no dispose)
          const held = entries.peek(key)
          const slot = held ?? free.pop()!
          values[slot] = entry.value
          times[slot * 3] = entry.createdAt
          times[slot * 3 + 1] = entry.staleAt
          times[slot * 3 + 2] = entry.expiresAt
          if (entry.tags !== undefined) tagsBySlot.set(slot, entry.tags)
          else if (tagsBySlot.size > 0) tagsBySlot.delete(slot)
          entries.set(key, slot)
          // lru-cache refuses an entry larger than the byte budget and drops the old one
          if (maxBytes !== undefined && !entries.has(key)) {
            // a refused newcomer gives its slot back (a replaced entry's was freed by its disposal)
            if (held === undefined) {
              values[slot] = undefined
              tagsBySlot.delete(slot)
              free.push(slot)
            }
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
    return registerInProcess(store, inProcess)
  })

/**
 * What one entry costs besides its value and key, for the byte budget: lru-cache's index entry
 * and slots for it (key and value lists, links, size), the store's slot (value and timestamps)
 * and the `CacheEntry` a read hands out. Measured on Node 20 when entries were kept as
 * `CacheEntry` objects; they now cost less, so the budget errs on the safe side.
 *
 * @internal
 */
export const entryOverheadBytes = 200

/**
 * What lru-cache allocates up front per entry of capacity (key and value lists, links, sizes,
 * free list), measured on Node 20.
 *
 * @internal
 */
export const slotBytes = 40

// V8 keeps a string with only Latin-1 characters in one byte per character, others in two.
// eslint-disable-next-line no-control-regex
const wide = /[^\u0000-\u00ff]/

const stringBytes = (s: string): number => 16 + (wide.test(s) ? s.length * 2 : s.length)

/**
 * A rough estimate of a live value's size in bytes, for the memory store's byte budget: what
 * matters is that big values weigh more than small ones, not exactness. Iterative (any depth),
 * each object counted once, and total: a getter or Proxy that throws counts as a reference.
 *
 * @internal
 */
export const estimateSize = (value: unknown): number => {
  const seen = new Set<object>()
  const pending: Array<unknown> = [value]
  let size = 0
  while (pending.length > 0) {
    const u = pending.pop()
    switch (typeof u) {
      case "string":
        size += stringBytes(u)
        break
      case "number":
      case "bigint":
        size += 8
        break
      case "boolean":
      case "undefined":
        size += 4
        break
      case "object": {
        if (u === null) {
          size += 4
          break
        }
        if (seen.has(u)) {
          size += 8
          break
        }
        seen.add(u)
        try {
          if (ArrayBuffer.isView(u)) {
            size += 32 + u.byteLength
            break
          }
          if (u instanceof Date) {
            size += 32
            break
          }
          size += 32
          if (u instanceof Map) {
            for (const [k, v] of u) pending.push(k, v)
            size += 16 * u.size
          } else if (u instanceof Set) {
            for (const member of u) pending.push(member)
            size += 8 * u.size
          } else if (Array.isArray(u)) {
            for (let i = 0; i < u.length; i++) pending.push(u[i])
            size += 8 * u.length
          } else {
            for (const key of Object.keys(u)) pending.push(key, (u as Record<string, unknown>)[key])
          }
        } catch {
          size += 8
        }
        break
      }
      default:
        size += 8
    }
  }
  return size
}
