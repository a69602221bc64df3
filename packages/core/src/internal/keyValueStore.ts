/** @internal */
import * as KeyValueStore from "@effect/platform/KeyValueStore"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type { CacheEntry } from "../CacheEntry.js"
import * as CacheMetrics from "../CacheMetrics.js"
import * as CacheStore from "../CacheStore.js"
import * as Diagnostics from "../Diagnostics.js"
import * as EntryCodec from "../EntryCodec.js"
import { leaseMillis, makeToken } from "./lease.js"

const backend = "key-value-store"

const IndexSchema = Schema.parseJson(Schema.Array(Schema.String))
const LeaseSchema = Schema.parseJson(Schema.Struct({ token: Schema.String, expiresAt: Schema.Number }))

// Prefix deletes that every instance honours on read, whatever the index says (see `deletePrefix`).
interface Tombstone {
  /** The deleted prefix. */
  readonly p: string
  /** Entries under `p` written at or before this (in the stores' write clock) are deleted. */
  readonly at: number
}
const TombstonesSchema = Schema.parseJson(Schema.Array(Schema.Struct({ p: Schema.String, at: Schema.Number })))

/** Tombstones kept at most; beyond it the two oldest merge into their common prefix. */
const maxTombstones = 64
const tombstoneWriteAttempts = 5

const commonPrefix = (a: string, b: string): string => {
  let i = 0
  while (i < a.length && i < b.length && a[i] === b[i]) i++
  return a.slice(0, i)
}

/** `tombstones` with `added`: what it supersedes dropped, capped by merging the oldest. */
const withTombstone = (tombstones: ReadonlyArray<Tombstone>, added: Tombstone): Array<Tombstone> => {
  const next = tombstones.filter((t) => !(t.p.startsWith(added.p) && t.at <= added.at))
  if (!next.some((t) => added.p.startsWith(t.p) && t.at >= added.at)) next.push(added)
  next.sort((a, b) => a.at - b.at)
  // Merging deletes more than asked (a common prefix): for a cache that is a miss, never a stale read.
  while (next.length > maxTombstones) {
    const [a, b] = next.splice(0, 2) as [Tombstone, Tombstone]
    next.unshift({ p: commonPrefix(a.p, b.p), at: Math.max(a.at, b.at) })
    next.sort((x, y) => x.at - y.at)
  }
  return next
}

const covers = (tombstones: ReadonlyArray<Tombstone>, key: string, writtenAt: number): boolean =>
  tombstones.some((t) => writtenAt <= t.at && key.startsWith(t.p))

const latest = (tombstones: ReadonlyArray<Tombstone>): number =>
  tombstones.reduce((max, t) => Math.max(max, t.at), Number.NEGATIVE_INFINITY)

// A stored value is `w<writtenAt>|<envelope>`: the write time is what tombstones are compared
// with. A record without it (written by an older version) counts as written at 0.
const writtenPrefix = "w"
const withWrittenAt = (writtenAt: number, json: string): string => `${writtenPrefix}${writtenAt}|${json}`
const splitWrittenAt = (record: string): { readonly writtenAt: number; readonly json: string } => {
  if (record.startsWith(writtenPrefix)) {
    const bar = record.indexOf("|")
    const writtenAt = bar === -1 ? Number.NaN : Number(record.slice(1, bar))
    if (Number.isFinite(writtenAt)) return { writtenAt, json: record.slice(bar + 1) }
  }
  return { writtenAt: 0, json: record }
}

interface SharedState {
  readonly lock: Effect.Semaphore
  /** Keys known to be in the index, so a set of a known key skips the index. */
  readonly indexed: Set<string>
}

const shared = new WeakMap<KeyValueStore.KeyValueStore, Map<string, SharedState>>()

const sharedState = (kv: KeyValueStore.KeyValueStore, prefix: string): SharedState => {
  let byPrefix = shared.get(kv)
  if (byPrefix === undefined) {
    byPrefix = new Map()
    shared.set(kv, byPrefix)
  }
  let state = byPrefix.get(prefix)
  if (state === undefined) {
    state = { lock: Effect.unsafeMakeSemaphore(1), indexed: new Set() }
    byPrefix.set(prefix, state)
  }
  return state
}

/** @internal */
export const make = (
  options: CacheStore.KeyValueStoreOptions = {}
): Effect.Effect<CacheStore.CacheStore.Service, never, KeyValueStore.KeyValueStore> =>
  Effect.gen(function*() {
    const kv = yield* KeyValueStore.KeyValueStore
    const prefix = options.prefix ?? "stalewise/"
    const counters = CacheMetrics.makeStoreCounters(backend)
    const warnings = Diagnostics.makeWarnings()
    const valueKey = (key: string) => `${prefix}v/${key}`
    const leaseKey = (key: string) => `${prefix}l/${key}`
    const indexKey = `${prefix}i`
    const tombstonesKey = `${prefix}g`
    // Index updates and leases read-modify-write the store: one at a time in this process, for
    // every store instance over this KeyValueStore and prefix (they share the lock and the set of
    // keys known to be in the index, so that one instance's deletePrefix is seen by the others).
    const { indexed, lock } = sharedState(kv, prefix)

    const unavailable = (method: string) => (cause: unknown) =>
      new CacheStore.CacheStoreError({ reason: "Unavailable", backend, method, cause })
    const counted = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
      Effect.tapError(effect, () => Effect.sync(counters.error))

    const readIndex = (method: string) =>
      kv.get(indexKey).pipe(
        Effect.mapError(unavailable(method)),
        Effect.map(Option.match({
          onNone: () => [] as ReadonlyArray<string>,
          // a corrupt index is rebuilt from what is written from now on
          onSome: (json): ReadonlyArray<string> => Either.getOrElse(Schema.decodeEither(IndexSchema)(json), () => [])
        })),
        Effect.tap((keys) =>
          Effect.sync(() => {
            indexed.clear()
            for (const key of keys) indexed.add(key)
          })
        )
      )
    const writeIndex = (method: string) =>
      kv.set(indexKey, JSON.stringify([...indexed])).pipe(Effect.mapError(unavailable(method)))

    // A corrupt tombstone record may have lost a delete: it reads as "everything deleted now",
    // which the next deletePrefix rewrites (misses, never a value that should be gone).
    const readTombstones = (method: string) =>
      Effect.gen(function*() {
        const json = yield* Effect.mapError(kv.get(tombstonesKey), unavailable(method))
        if (Option.isNone(json)) return [] as ReadonlyArray<Tombstone>
        const decoded = Schema.decodeEither(TombstonesSchema)(json.value)
        if (Either.isRight(decoded)) return decoded.right
        const now = yield* Effect.clockWith((clock) => clock.currentTimeMillis)
        return [{ p: "", at: now }]
      })
    // Write times and tombstones share one clock: a write after a delete it has seen is later
    // than that delete, even within one millisecond.
    const writeClock = (tombstones: ReadonlyArray<Tombstone>) =>
      Effect.map(Effect.clockWith((clock) => clock.currentTimeMillis), (now) => Math.max(now, latest(tombstones) + 1))

    // Instances over separate KeyValueStores share no lock: the tombstone record is written,
    // read back and rewritten until it holds this delete (or one that covers it).
    const addTombstone = (keyPrefix: string) =>
      Effect.gen(function*() {
        let tombstones = yield* readTombstones("deletePrefix")
        const added: Tombstone = { p: keyPrefix, at: yield* writeClock(tombstones) }
        for (let attempt = 0; attempt < tombstoneWriteAttempts; attempt++) {
          yield* Effect.mapError(
            kv.set(tombstonesKey, JSON.stringify(withTombstone(tombstones, added))),
            unavailable("deletePrefix")
          )
          tombstones = yield* readTombstones("deletePrefix")
          if (tombstones.some((t) => added.p.startsWith(t.p) && t.at >= added.at)) return
        }
        yield* warnings.warn("tombstone", "stalewise: a prefix delete raced other instances' and may not have landed", {
          backend
        })
      })

    const addToIndex = (key: string) =>
      indexed.has(key) ? Effect.void : lock.withPermits(1)(
        Effect.flatMap(readIndex("set"), (keys) =>
          keys.includes(key) ? Effect.void : Effect.suspend(() => {
            indexed.add(key)
            return writeIndex("set")
          }))
      )
    const removeFromIndex = (keys: ReadonlyArray<string>, method: string) =>
      lock.withPermits(1)(
        Effect.flatMap(readIndex(method), () => {
          let changed = false
          for (const key of keys) changed = indexed.delete(key) || changed
          return changed ? writeIndex(method) : Effect.void
        })
      )

    const remove = (key: string, method: string) =>
      removeValue(key, method).pipe(
        Effect.zipRight(removeFromIndex([key], method))
      )

    // The file-system KeyValueStore fails `remove` of an absent key with NotFound: nothing to do.
    const removeValue = (key: string, method: string) =>
      kv.remove(valueKey(key)).pipe(
        Effect.catchIf((error) => error._tag === "SystemError" && error.reason === "NotFound", () => Effect.void),
        Effect.mapError(unavailable(method))
      )

    const store: CacheStore.CacheStore.Service = {
      [CacheStore.TypeId]: CacheStore.TypeId,
      backend,
      get: <A, I>(key: string, schema?: Schema.Schema<A, I>) =>
        Effect.gen(function*() {
          const record = yield* Effect.mapError(kv.get(valueKey(key)), unavailable("get"))
          if (Option.isNone(record)) {
            counters.miss()
            return Option.none<CacheEntry<A>>()
          }
          const { json, writtenAt } = splitWrittenAt(record.value)
          // deleted by a prefix delete that the index did not reach (another instance's write)
          if (covers(yield* readTombstones("get"), key, writtenAt)) {
            counters.miss()
            return Option.none<CacheEntry<A>>()
          }
          const entry = EntryCodec.decode(json, schema)
          if (Option.isNone(entry)) {
            counters.decodeFailure()
            counters.miss()
            yield* warnings.warn("undecodable", "stalewise: dropped a stored entry that failed to decode", {
              backend,
              key
            })
            yield* remove(key, "get")
            return entry
          }
          const now = yield* Effect.clockWith((clock) => clock.currentTimeMillis)
          if (entry.value.expiresAt <= now) {
            counters.miss()
            yield* remove(key, "get")
            return Option.none<CacheEntry<A>>()
          }
          counters.hit()
          return entry
        }).pipe(counted),
      set: (key, entry, schema) =>
        Effect.gen(function*() {
          const now = yield* Effect.clockWith((clock) => clock.currentTimeMillis)
          if (entry.expiresAt <= now) return yield* remove(key, "set")
          const json = yield* EntryCodec.encode(entry, schema, { backend, method: "set" })
          const writtenAt = yield* writeClock(yield* readTombstones("set"))
          yield* Effect.mapError(kv.set(valueKey(key), withWrittenAt(writtenAt, json)), unavailable("set"))
          yield* addToIndex(key)
        }).pipe(counted),
      delete: (key) => counted(remove(key, "delete")),
      deletePrefix: (keyPrefix) =>
        lock.withPermits(1)(
          Effect.gen(function*() {
            yield* addTombstone(keyPrefix)
            const keys = (yield* readIndex("deletePrefix")).filter((key) => key.startsWith(keyPrefix))
            yield* Effect.forEach(keys, (key) => removeValue(key, "deletePrefix"), { discard: true })
            for (const key of keys) indexed.delete(key)
            if (keys.length > 0) yield* writeIndex("deletePrefix")
            return keys.length
          })
        ).pipe(counted),
      acquireLease: (key, duration) =>
        Effect.gen(function*() {
          const millis = yield* leaseMillis(duration)
          return yield* lock.withPermits(1)(Effect.gen(function*() {
            const now = yield* Effect.clockWith((clock) => clock.currentTimeMillis)
            const held = yield* Effect.mapError(kv.get(leaseKey(key)), unavailable("acquireLease"))
            const current = Option.flatMap(held, (json) => Option.getRight(Schema.decodeEither(LeaseSchema)(json)))
            if (Option.isSome(current) && current.value.expiresAt > now) return Option.none()
            const lease = { key, token: makeToken(), expiresAt: now + millis }
            yield* Effect.mapError(
              kv.set(leaseKey(key), JSON.stringify({ token: lease.token, expiresAt: lease.expiresAt })),
              unavailable("acquireLease")
            )
            return Option.some(lease)
          }))
        }).pipe(counted),
      releaseLease: (lease) =>
        lock.withPermits(1)(Effect.gen(function*() {
          const held = yield* Effect.mapError(kv.get(leaseKey(lease.key)), unavailable("releaseLease"))
          const current = Option.flatMap(held, (json) => Option.getRight(Schema.decodeEither(LeaseSchema)(json)))
          if (Option.isNone(current) || current.value.token !== lease.token) return false
          yield* kv.remove(leaseKey(lease.key)).pipe(
            Effect.catchIf((error) => error._tag === "SystemError" && error.reason === "NotFound", () => Effect.void),
            Effect.mapError(unavailable("releaseLease"))
          )
          const now = yield* Effect.clockWith((clock) => clock.currentTimeMillis)
          return current.value.expiresAt > now
        })).pipe(counted)
    }
    return store
  })
