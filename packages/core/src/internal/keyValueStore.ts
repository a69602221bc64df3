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
          const json = yield* Effect.mapError(kv.get(valueKey(key)), unavailable("get"))
          if (Option.isNone(json)) {
            counters.miss()
            return Option.none<CacheEntry<A>>()
          }
          const entry = EntryCodec.decode(json.value, schema)
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
          yield* Effect.mapError(kv.set(valueKey(key), json), unavailable("set"))
          yield* addToIndex(key)
        }).pipe(counted),
      delete: (key) => counted(remove(key, "delete")),
      deletePrefix: (keyPrefix) =>
        lock.withPermits(1)(
          Effect.gen(function*() {
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
