/**
 * `CacheStore`: where entries live. A service tag with one small contract — get, set (the entry
 * carries its own expiry), delete, delete by prefix, and an atomic lease for refresh ownership —
 * and layers for each backend: memory (`layerMemory`), any `@effect/platform` `KeyValueStore`
 * (`layerKeyValueStore`) and Redis (in `@stalewise/redis`).
 *
 * **Codec**: stores that cross a process boundary keep Schema-encoded values; give `get` and `set`
 * the value schema. The memory store keeps live values and ignores the schema. A stored value
 * that fails to decode is a miss: it is deleted, counted in `CacheMetrics.storeDecodeFailures`
 * and logged, never handed to the caller.
 *
 * @since 0.1.0
 */
import type * as FileSystem from "@effect/platform/FileSystem"
import type { KeyValueStore } from "@effect/platform/KeyValueStore"
import type * as Path from "@effect/platform/Path"
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Predicate from "effect/Predicate"
import * as Schema from "effect/Schema"
import type { CacheEntry } from "./CacheEntry.js"
import * as Diagnostics from "./Diagnostics.js"
import * as internalFileSystem from "./internal/fileSystemStore.js"
import * as internalKeyValue from "./internal/keyValueStore.js"
import * as internalMemory from "./internal/memoryStore.js"
import type { PolicyError } from "./PolicyError.js"

/**
 * @since 0.1.0
 * @category type ids
 */
export const TypeId: TypeId = "~@stalewise/core/CacheStore"

/**
 * @since 0.1.0
 * @category type ids
 */
export type TypeId = "~@stalewise/core/CacheStore"

/**
 * The `CacheStore` service tag.
 *
 * @example
 * ```ts
 * import { CacheStore, TimePolicy } from "@stalewise/core"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const store = yield* CacheStore.CacheStore
 *   const policy = yield* TimePolicy.make({ lifetime: "1 minute", timeToLive: "1 hour" })
 *   yield* store.set("users:get:1", yield* TimePolicy.entry(policy, { name: "Ada" }))
 *   return yield* store.get("users:get:1")
 * }).pipe(Effect.provide(CacheStore.layerMemory))
 * ```
 *
 * @since 0.1.0
 * @category tags
 */
export class CacheStore extends Context.Tag("@stalewise/core/CacheStore")<CacheStore, CacheStore.Service>() {}

/**
 * @since 0.1.0
 * @category models
 */
export declare namespace CacheStore {
  /**
   * The store contract. Keys are complete strings (`CacheKey.value`); a store never derives keys.
   *
   * @since 0.1.0
   * @category models
   */
  export interface Service {
    readonly [TypeId]: TypeId
    /** The backend's name, also the `backend` tag of its metrics. */
    readonly backend: string
    /**
     * For a store that publishes invalidations of its own writes on the `InvalidationBus` (one
     * with an in-process tier, such as the tiered store): the origin of those messages. A
     * strategy over this store ignores them — they echo its own writes.
     */
    readonly origin?: string | undefined
    /**
     * The live entry at `key`: `None` when absent, expired (`now ≥ expiresAt`) or undecodable.
     */
    readonly get: <A = unknown, I = A>(
      key: string,
      schema?: Schema.Schema<A, I> | undefined
    ) => Effect.Effect<Option.Option<CacheEntry<A>>, CacheStoreError>
    /**
     * The live entries at `keys`, in order, in one round trip (Redis `MGET`, a batch in memory):
     * each as `get` would return it. Optional: {@link getMany} falls back to one `get` per key
     * (all at once) for a store without it.
     */
    readonly getMany?: <A = unknown, I = A>(
      keys: ReadonlyArray<string>,
      schema?: Schema.Schema<A, I> | undefined
    ) => Effect.Effect<ReadonlyArray<Option.Option<CacheEntry<A>>>, CacheStoreError>
    /**
     * Stores `entry` at `key`, replacing any entry there; it expires at `entry.expiresAt`
     * (already expired: the key is deleted instead).
     */
    readonly set: <A, I = A>(
      key: string,
      entry: CacheEntry<A>,
      schema?: Schema.Schema<A, I> | undefined
    ) => Effect.Effect<void, CacheStoreError>
    /**
     * Stores `entry` at `key` without making the caller wait for the backend — the write after an
     * upstream call (`setOrWarn`). Reads of this store instance see the entry at once (until the
     * write has landed or failed); other processes see it once the backend has it. The write
     * runs in the background, a bounded number at a time (beyond it, dropped and counted in
     * `CacheMetrics.storeWritesDropped`); its failures are counted and logged, never returned.
     * Fails only for what is known at once (`Encode`).
     *
     * Optional: a backend whose writes cannot wait on a network (memory) leaves it out, and
     * `setOrWarn` uses `set`.
     */
    readonly setInBackground?: <A, I = A>(
      key: string,
      entry: CacheEntry<A>,
      schema?: Schema.Schema<A, I> | undefined
    ) => Effect.Effect<void, CacheStoreError>
    /** Removes the entry at `key`, if any. */
    readonly delete: (key: string) => Effect.Effect<void, CacheStoreError>
    /** Removes every entry whose key starts with `prefix`; returns how many it removed. */
    readonly deletePrefix: (prefix: string) => Effect.Effect<number, CacheStoreError>
    /**
     * Takes the lease on `key` if nobody holds it (or the holder's lease has run out), for
     * `duration`. Atomic: of concurrent callers, exactly one gets `Some`. Leases live apart from
     * entries: `delete` and `deletePrefix` do not touch them.
     */
    readonly acquireLease: (
      key: string,
      duration: Duration.DurationInput
    ) => Effect.Effect<Option.Option<Lease>, CacheStoreError | PolicyError>
    /**
     * Frees the lease if, and only if, it is still the one held (same token, not expired);
     * returns whether it did. Releasing a lease that ran out and was taken by someone else
     * leaves theirs alone.
     */
    readonly releaseLease: (lease: Lease) => Effect.Effect<boolean, CacheStoreError>
  }
}

/**
 * Proof of holding the lease on `key` until `expiresAt` (epoch milliseconds); `token` is unique
 * to this acquisition.
 *
 * @since 0.1.0
 * @category models
 */
export interface Lease {
  readonly key: string
  readonly token: string
  readonly expiresAt: number
}

/**
 * A store operation failed. `Unavailable`: the backend failed or is unreachable. `Encode`: the
 * value could not be encoded for storage (schema or JSON). `Timeout`: the backend did not answer
 * in time. Decode failures are not errors: they are misses.
 *
 * @since 0.1.0
 * @category errors
 */
export class CacheStoreError extends Schema.TaggedError<CacheStoreError>("@stalewise/core/CacheStoreError")(
  "CacheStoreError",
  {
    reason: Schema.Literal("Unavailable", "Encode", "Timeout"),
    backend: Schema.String,
    /** The store operation, e.g. `get` or `deletePrefix`. */
    method: Schema.String,
    cause: Schema.optional(Schema.Defect)
  }
) {
  /**
   * @since 0.1.0
   */
  override get message(): string {
    const cause = this.cause instanceof Error ? `: ${this.cause.message}` : ""
    return `CacheStore ${this.backend}.${this.method} failed (${this.reason})${cause}`
  }
}

/**
 * @since 0.1.0
 * @category guards
 */
export const isCacheStore = (u: unknown): u is CacheStore.Service => Predicate.hasProperty(u, TypeId)

/**
 * Options of the memory store.
 *
 * @since 0.1.0
 * @category models
 */
export interface MemoryOptions {
  /** The most entries kept; the least recently used go first. Default 10,000. */
  readonly capacity?: number | undefined
  /**
   * An optional bound on the heap the store holds, in bytes: each entry weighs its value's
   * estimated size, its key and a fixed per-entry overhead, and the slots lru-cache allocates up
   * front for `capacity` count too (capacity is lowered so they take at most a quarter of the
   * budget). An entry larger than the budget is not kept.
   */
  readonly maxBytes?: number | undefined
  /** Estimates a value's size in bytes for `maxBytes`; a rough structural estimate by default. */
  readonly sizeOf?: ((value: unknown) => number) | undefined
}

/**
 * Builds an in-memory store over `lru-cache`: bounded by entry count and optionally by estimated
 * bytes (least recently used evicted first, counted in `CacheMetrics.storeEvictions`), expiry
 * checked on read against the `Clock` present when the store is built. Values are kept live, not
 * encoded. Fails with `PolicyError` for a capacity or byte budget that is not a positive integer.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeMemory: (options?: MemoryOptions) => Effect.Effect<CacheStore.Service, PolicyError> =
  internalMemory.make

/**
 * A memory store with the given options.
 *
 * @example
 * ```ts
 * import { CacheStore } from "@stalewise/core"
 *
 * const StoreLive = CacheStore.layerMemoryWith({ capacity: 50_000, maxBytes: 64 * 1024 * 1024 })
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerMemoryWith = (options?: MemoryOptions): Layer.Layer<CacheStore, PolicyError> =>
  Layer.effect(CacheStore, makeMemory(options))

/**
 * A memory store holding up to 10,000 entries: the embedded default.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerMemory: Layer.Layer<CacheStore> = /* @__PURE__ */ Layer.orDie(/* @__PURE__ */ layerMemoryWith())

/**
 * Options of the `KeyValueStore` backed store.
 *
 * @since 0.1.0
 * @category models
 */
export interface KeyValueStoreOptions {
  /** Prepended to every key written to the `KeyValueStore`. Default `"stalewise/"`. */
  readonly prefix?: string | undefined
}

/**
 * Builds a store over the `KeyValueStore` in context (memory, file system, browser storage, …).
 *
 * **Details**
 *
 * Entries are stored as JSON with their timestamps; values are Schema-encoded with the schema
 * given to `get`/`set` (JSON as is without one). `KeyValueStore` has no expiry and no key
 * listing, so expiry is checked on read and a key index (one JSON entry under the prefix) lists
 * the keys for `deletePrefix`. Index updates and leases are serialised inside this process:
 * store instances over one `KeyValueStore` object (and one prefix) share the index and its lock,
 * so `deletePrefix` on one reaches what the others wrote. Instances over separate
 * `KeyValueStore`s on the same data (two file-system `KeyValueStore`s on one directory, two
 * browser tabs) may lose each other's index updates, so `deletePrefix` also records a tombstone
 * (prefix and write-clock time) that every read checks: nothing written under the prefix before
 * the delete stays readable on any instance; writes after it are kept. `deletePrefix("")` clears.
 * Leases do not coordinate across separate `KeyValueStore`s, and `@effect/platform`'s
 * file-system `KeyValueStore` writes files in place (a concurrent reader can see half of one):
 * for a directory, use {@link layerFileSystem}. Every key is prefixed explicitly: `KeyValueStore.prefix` is not used, because in `@effect/platform` 0.97
 * it does not prefix `getUint8Array` and its `size`/`clear` act on the whole underlying store.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeKeyValueStore: (
  options?: KeyValueStoreOptions
) => Effect.Effect<CacheStore.Service, never, KeyValueStore> = internalKeyValue.make

/**
 * A store over the `KeyValueStore` in context, with the given options.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerKeyValueStoreWith = (
  options?: KeyValueStoreOptions
): Layer.Layer<CacheStore, never, KeyValueStore> => Layer.effect(CacheStore, makeKeyValueStore(options))

/**
 * A store over the `KeyValueStore` in context, keys prefixed with `"stalewise/"`.
 *
 * @example
 * ```ts
 * import { CacheStore } from "@stalewise/core"
 * import { KeyValueStore } from "@effect/platform"
 * import { Layer } from "effect"
 *
 * // any KeyValueStore: memory here, browser storage in a browser (for a directory: layerFileSystem)
 * const StoreLive = CacheStore.layerKeyValueStore.pipe(Layer.provide(KeyValueStore.layerMemory))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerKeyValueStore: Layer.Layer<CacheStore, never, KeyValueStore> =
  /* @__PURE__ */ layerKeyValueStoreWith()

/**
 * Options of the file-system store.
 *
 * @since 0.1.0
 * @category models
 */
export interface FileSystemOptions {
  /** The directory the store keeps its files in (created if missing); give each store its own. */
  readonly directory: string
}

/**
 * Builds a store over a directory, with the `FileSystem` and `Path` in context
 * (`NodeContext.layer`). Several instances — in one process or several — may share the directory.
 *
 * **Details**
 *
 * - One file per entry (`v/`), holding its key and its envelope. Writes are atomic: the file is
 *   written aside (`t/`) and renamed into place, so a reader sees the old entry or the new one,
 *   never half of one.
 * - An entry that fails to decode (or has expired) is deleted only if the file still holds what
 *   was read: it is taken out of place atomically, compared, and put back if it changed — a good
 *   entry written in between is never deleted.
 * - `deletePrefix` lists the directory: whichever instance wrote an entry, nothing under the
 *   prefix stays readable (writes that land after it are kept, as with any store).
 * - Leases are files (`l/`) created with `link`, which fails if one exists: atomic across
 *   processes on one machine. A lease that ran out is taken over with the same compare-and-delete.
 *
 * Fails with `CacheStoreError` when the directory cannot be created.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeFileSystem: (
  options: FileSystemOptions
) => Effect.Effect<CacheStore.Service, CacheStoreError, FileSystem.FileSystem | Path.Path> = internalFileSystem.make

/**
 * A store over a directory (see {@link makeFileSystem}).
 *
 * @example
 * ```ts
 * import { CacheStore } from "@stalewise/core"
 * import { NodeContext } from "@effect/platform-node"
 * import { Layer } from "effect"
 *
 * const StoreLive = CacheStore.layerFileSystem({ directory: "/var/cache/my-app" }).pipe(
 *   Layer.provide(NodeContext.layer)
 * )
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerFileSystem = (
  options: FileSystemOptions
): Layer.Layer<CacheStore, CacheStoreError, FileSystem.FileSystem | Path.Path> =>
  Layer.effect(CacheStore, makeFileSystem(options))

/**
 * Runs `effect` while holding the lease on `key`, releasing it afterwards (also on failure or
 * interruption). `None` when someone else holds the lease: `effect` does not run.
 *
 * @since 0.1.0
 * @category combinators
 */
export const withLease = <A, E, R>(
  key: string,
  duration: Duration.DurationInput,
  effect: Effect.Effect<A, E, R>
): Effect.Effect<Option.Option<A>, E | CacheStoreError | PolicyError, R | CacheStore> =>
  Effect.flatMap(CacheStore, (store) =>
    Effect.uninterruptibleMask((restore) =>
      Effect.flatMap(
        store.acquireLease(key, duration),
        Option.match({
          onNone: () => Effect.succeedNone,
          onSome: (lease) =>
            restore(effect).pipe(
              Effect.map(Option.some),
              Effect.ensuring(Effect.ignore(store.releaseLease(lease)))
            )
        })
      )
    ))

/**
 * Reads `key`, treating a store failure as a miss: the failure is logged at warning level with
 * the annotations, at most once per interval per store (`Diagnostics.warningsOf`; the store has
 * already counted every one). This is how strategies read: a store that
 * is down never fails a caller. `answered`, when given, learns each time whether the store
 * answered (`true`) or failed (`false`), before the read completes.
 *
 * @since 0.1.0
 * @category combinators
 */
export const getOrMiss = <A, I>(
  store: CacheStore.Service,
  key: string,
  schema: Schema.Schema<A, I> | undefined,
  annotations: Readonly<Record<string, string>>,
  answered?: ((answered: boolean) => void) | undefined
): Effect.Effect<Option.Option<CacheEntry<A>>> =>
  // one step on the read path (a hit's cost is mostly steps)
  Effect.matchEffect(store.get(key, schema), {
    onFailure: (error) => {
      answered?.(false)
      return Effect.as(
        Diagnostics.warningsOf(store).warn("store-read-failed", "stalewise: store read failed, treated as a miss", {
          ...annotations,
          key,
          error: error.message
        }),
        Option.none()
      )
    },
    onSuccess: (found) => {
      answered?.(true)
      return Effect.succeed(found)
    }
  })

/**
 * Reads `keys` in one round trip when the store can (`getMany`), else one `get` per key, all at
 * once; the entries come back in the order of `keys`.
 *
 * @since 0.1.0
 * @category combinators
 */
export const getMany = <A, I>(
  store: CacheStore.Service,
  keys: ReadonlyArray<string>,
  schema?: Schema.Schema<A, I> | undefined
): Effect.Effect<ReadonlyArray<Option.Option<CacheEntry<A>>>, CacheStoreError> =>
  keys.length === 0
    ? Effect.succeed([])
    : store.getMany !== undefined
    ? store.getMany(keys, schema)
    : Effect.forEach(keys, (key) => store.get(key, schema), { concurrency: "unbounded" })

/**
 * {@link getMany}, treating a store failure as misses for every key (logged as {@link getOrMiss}
 * does): how strategies read in batches.
 *
 * @since 0.1.0
 * @category combinators
 */
export const getManyOrMiss = <A, I>(
  store: CacheStore.Service,
  keys: ReadonlyArray<string>,
  schema: Schema.Schema<A, I> | undefined,
  annotations: Readonly<Record<string, string>>
): Effect.Effect<ReadonlyArray<Option.Option<CacheEntry<A>>>> =>
  getMany(store, keys, schema).pipe(
    Effect.catchAll((error) =>
      Effect.as(
        Diagnostics.warningsOf(store).warn("store-read-failed", "stalewise: store read failed, treated as a miss", {
          ...annotations,
          keys: String(keys.length),
          error: error.message
        }),
        keys.map(() => Option.none())
      )
    )
  )

/**
 * Writes `entry` at `key` after an upstream call, turning a store failure into a logged warning
 * (at most once per interval per store and reason, `Diagnostics.warningsOf`): the caller already
 * has its value, it is just not cached. With a store that writes in the background
 * (`setInBackground`, e.g. Redis) the caller does not wait for the backend: a paused Redis costs
 * the caller nothing here, and the same store instance reads the entry at once. Otherwise it
 * waits for `set`. This is how strategies write.
 *
 * @since 0.1.0
 * @category combinators
 */
export const setOrWarn = <A, I>(
  store: CacheStore.Service,
  key: string,
  entry: CacheEntry<A>,
  schema: Schema.Schema<A, I> | undefined,
  annotations: Readonly<Record<string, string>>
): Effect.Effect<void> =>
  (store.setInBackground === undefined ? store.set(key, entry, schema) : store.setInBackground(key, entry, schema))
    .pipe(
      Effect.catchAll((error) =>
        Diagnostics.warningsOf(store).warn(
          `store-write-failed/${error.reason}`,
          "stalewise: store write failed, value not cached",
          { ...annotations, key, error: error.message }
        )
      )
    )
