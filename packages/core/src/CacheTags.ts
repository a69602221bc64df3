/**
 * `CacheTags`: invalidation by tag. Entries carry tags (`CacheEntry.tags`); `invalidate(tag)`
 * makes every entry with that tag written before it stale (`soft`) or gone (`hard`), in one store
 * write whatever the number of entries: it stores the tag's invalidation time under a reserved
 * key (`__tag:<tag>`), and readers compare each entry's `createdAt` with its tags' times lazily,
 * on read — nothing is scanned or deleted.
 *
 * **No round trip per hit.** Tag times are kept in process and re-read from the store at most
 * once per tag per `refreshInterval` (default 10 seconds), or as soon as an invalidation of the
 * tag is heard on the `InvalidationBus` (the invalidating instance publishes one). So another
 * instance stops serving an entry invalidated by tag within the bus delay (milliseconds on
 * Redis pub/sub), and within `refreshInterval` when the message was lost (or without a bus).
 *
 * Strategies share the `CacheTags` in context (`layer`); without one, each builds its own over
 * its store, and only hears the others' invalidations through the bus.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FiberId from "effect/FiberId"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Predicate from "effect/Predicate"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as CacheEntry from "./CacheEntry.js"
import { CacheStore, type CacheStoreError } from "./CacheStore.js"
import * as Diagnostics from "./Diagnostics.js"
import { makeToken } from "./internal/lease.js"
import * as InvalidationBus from "./InvalidationBus.js"
import type { PolicyError } from "./PolicyError.js"
import * as TimePolicy from "./TimePolicy.js"

/**
 * @since 0.1.0
 * @category type ids
 */
export const TypeId: TypeId = "~@stalewise/core/CacheTags"

/**
 * @since 0.1.0
 * @category type ids
 */
export type TypeId = "~@stalewise/core/CacheTags"

/**
 * `soft`: the tagged entries are stale (served while a refresh runs, and under stale-if-error);
 * `hard`: they are gone (the next read is a miss).
 *
 * @since 0.1.0
 * @category models
 */
export type Mode = "soft" | "hard"

/**
 * How an entry stands against its tags: `valid`, or invalidated `soft` or `hard` (hard wins).
 *
 * @since 0.1.0
 * @category models
 */
export type Verdict = "valid" | Mode

/**
 * The tags of a strategy's entries: fixed, or computed from the call's arguments and its value.
 *
 * @since 0.1.0
 * @category models
 */
export type Tags<Args extends ReadonlyArray<any>, A> =
  | ReadonlyArray<string>
  | ((args: Args, value: A) => ReadonlyArray<string>)

/**
 * The `CacheTags` service tag.
 *
 * @since 0.1.0
 * @category tags
 */
export class CacheTags extends Context.Tag("@stalewise/core/CacheTags")<CacheTags, CacheTags.Service>() {}

/**
 * @since 0.1.0
 * @category models
 */
export declare namespace CacheTags {
  /**
   * The tag service.
   *
   * @since 0.1.0
   * @category models
   */
  export interface Service {
    readonly [TypeId]: TypeId
    /**
     * Invalidates every entry tagged `tag` written before now (`mode` default `soft`): one read
     * and one write of the tag's key, then one bus message. Fails with `CacheStoreError` when
     * the store refuses.
     */
    readonly invalidate: (
      tag: string,
      options?: { readonly mode?: Mode | undefined }
    ) => Effect.Effect<void, CacheStoreError>
    /**
     * How `entry` stands against its tags. Without a store round trip when its tags' times are
     * known in process (and younger than `refreshInterval`); an untagged entry is `valid` at once.
     * A store that fails to answer counts as "no invalidation" until `refreshInterval`.
     */
    readonly check: (entry: CacheEntry.CacheEntry<unknown>) => Effect.Effect<Verdict>
  }
}

/**
 * Options of {@link make}.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /**
   * How long a tag's times are trusted in process before they are read again from the store:
   * the staleness bound when a bus message is lost (or without a bus). Default 10 seconds.
   */
  readonly refreshInterval?: Duration.DurationInput | undefined
  /**
   * Whether to listen to the bus (default true). A service that only invalidates (its owner
   * keeps no tagged entries) need not: it still tells the others.
   */
  readonly subscribe?: boolean | undefined
}

/**
 * The reserved store key that keeps `tag`'s invalidation times.
 *
 * @since 0.1.0
 * @category utils
 */
export const tagKey = (tag: string): string => `${tagKeyPrefix}${tag}`

/**
 * The prefix of every tag key.
 *
 * @since 0.1.0
 * @category utils
 */
export const tagKeyPrefix = "__tag:"

/**
 * @since 0.1.0
 * @category guards
 */
export const isCacheTags = (u: unknown): u is CacheTags.Service => Predicate.hasProperty(u, TypeId)

/**
 * The tags `tags` gives a call's value (none when `tags` is undefined).
 *
 * @since 0.1.0
 * @category utils
 */
export const tagsOf = <Args extends ReadonlyArray<any>, A>(
  tags: Tags<Args, A> | undefined,
  args: Args,
  value: A
): ReadonlyArray<string> | undefined =>
  tags === undefined ? undefined : typeof tags === "function" ? tags(args, value) : tags

/** A tag's invalidation times (epoch milliseconds; 0: never). */
const Times = Schema.Struct({ soft: Schema.Number, hard: Schema.Number })
type Times = typeof Times.Type
const never: Times = { soft: 0, hard: 0 }

/**
 * Builds a tag service over `store` (or, without one, kept in process only), subscribed to the
 * `InvalidationBus` in context, if any, until the scope closes. Fails with `PolicyError` for a
 * `refreshInterval` that is not positive and finite.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeWith = (
  store: CacheStore.Service | undefined,
  options: Options = {}
): Effect.Effect<CacheTags.Service, PolicyError, Scope.Scope> =>
  Effect.gen(function*() {
    const intervalMillis = Duration.toMillis(
      yield* TimePolicy.finiteDuration("refreshInterval", options.refreshInterval ?? Duration.seconds(10))
    )
    const clock = yield* Effect.clock
    const now = () => clock.unsafeCurrentTimeMillis()
    const bus = yield* Effect.serviceOption(InvalidationBus.InvalidationBus)
    const origin = makeToken()
    // the times of each tag read or written here, and when they were read
    const known = new Map<string, { readonly times: Times; readonly readAt: number }>()
    const reading = new Map<string, Deferred.Deferred<Times>>()
    const warnings = store === undefined ? undefined : Diagnostics.warningsOf(store)

    if (Option.isSome(bus) && options.subscribe !== false) {
      yield* bus.value.subscribe((event) => {
        if (event._tag === "Flush") return known.clear()
        // its own messages, and its store's echo of its own writes of tag keys
        if (event.origin === origin || (store?.origin !== undefined && event.origin === store.origin)) return
        if (event._tag === "Key") {
          if (event.key.startsWith(tagKeyPrefix)) known.delete(event.key.slice(tagKeyPrefix.length))
          return
        }
        if (tagKeyPrefix.startsWith(event.prefix)) return known.clear()
        if (event.prefix.startsWith(tagKeyPrefix)) {
          const start = event.prefix.slice(tagKeyPrefix.length)
          for (const tag of [...known.keys()]) if (tag.startsWith(start)) known.delete(tag)
        }
      })
    }

    const fetchTimes = (tag: string): Effect.Effect<Times, CacheStoreError> =>
      store === undefined
        ? Effect.succeed(known.get(tag)?.times ?? never)
        : Effect.map(store.get(tagKey(tag), Times), Option.match({ onNone: () => never, onSome: (e) => e.value }))

    // one read per tag at a time; a failed read counts as "never" until the next interval
    const read = (tag: string): Effect.Effect<Times> =>
      Effect.suspend(() => {
        const running = reading.get(tag)
        if (running !== undefined) return Deferred.await(running)
        const deferred = Deferred.unsafeMake<Times>(FiberId.none)
        reading.set(tag, deferred)
        const startedAt = now()
        return fetchTimes(tag).pipe(
          Effect.catchAll((error) =>
            Effect.as(
              warnings === undefined
                ? Effect.void
                : warnings.warn("tags-unavailable", "stalewise: tag times unavailable, treated as not invalidated", {
                  error: error.message
                }),
              never
            )
          ),
          Effect.tap((times) =>
            Effect.sync(() => {
              // an invalidation heard while reading dropped the tag: keep what was read, untrusted
              known.set(tag, { times, readAt: reading.get(tag) === deferred ? startedAt : -Infinity })
            })
          ),
          Effect.onExit((exit) =>
            Effect.suspend(() => {
              if (reading.get(tag) === deferred) reading.delete(tag)
              return Deferred.done(deferred, exit)
            })
          )
        )
      })

    const verdictOf = (entry: CacheEntry.CacheEntry<unknown>, times: Times): Verdict =>
      entry.createdAt < times.hard ? "hard" : entry.createdAt < times.soft ? "soft" : "valid"

    const worst = (a: Verdict, b: Verdict): Verdict => a === "hard" || b === "hard" ? "hard" : a === "soft" ? a : b

    const check = (entry: CacheEntry.CacheEntry<unknown>): Effect.Effect<Verdict> => {
      const tags = entry.tags
      if (tags === undefined || tags.length === 0) return Effect.succeed("valid")
      const at = now()
      let verdict: Verdict = "valid"
      let unknown: Array<string> | undefined
      for (const tag of tags) {
        const cached = known.get(tag)
        if (cached !== undefined && (store === undefined || at - cached.readAt < intervalMillis)) {
          verdict = worst(verdict, verdictOf(entry, cached.times))
        } else {
          ;(unknown ??= []).push(tag)
        }
      }
      if (unknown === undefined) return Effect.succeed(verdict)
      const sofar = verdict
      return Effect.map(
        Effect.forEach(unknown, read, { concurrency: "unbounded" }),
        (all) => all.reduce((v, times) => worst(v, verdictOf(entry, times)), sofar)
      )
    }

    const invalidate = (tag: string, invalidateOptions?: { readonly mode?: Mode | undefined }) =>
      Effect.gen(function*() {
        const mode = invalidateOptions?.mode ?? "soft"
        const current = yield* fetchTimes(tag)
        const at = now()
        const times: Times = {
          soft: Math.max(current.soft, at),
          hard: mode === "hard" ? Math.max(current.hard, at) : current.hard
        }
        if (store !== undefined) {
          yield* store.set(
            tagKey(tag),
            CacheEntry.make({ value: times, createdAt: at, staleAt: at, expiresAt: Infinity }),
            Times
          )
        }
        known.set(tag, { times, readAt: at })
        if (Option.isSome(bus)) {
          yield* bus.value.publish({ _tag: "Key", key: tagKey(tag), origin, at })
        }
      })

    return { [TypeId]: TypeId, invalidate, check }
  })

/**
 * Builds a tag service over the `CacheStore` in context (see {@link makeWith}).
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options?: Options): Effect.Effect<CacheTags.Service, PolicyError, CacheStore | Scope.Scope> =>
  Effect.flatMap(CacheStore, (store) => makeWith(store, options))

/**
 * One tag service for every strategy of the process over the `CacheStore` in context (and the
 * `InvalidationBus`, if any): an invalidation through any of them is seen by all at once.
 *
 * @example
 * ```ts
 * import { CacheStore, CacheTags } from "@stalewise/core"
 * import { Layer } from "effect"
 *
 * const TagsLive = CacheTags.layer().pipe(Layer.provideMerge(CacheStore.layerMemory))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options?: Options): Layer.Layer<CacheTags, PolicyError, CacheStore> =>
  Layer.scoped(CacheTags, make(options))

/**
 * The `CacheTags` in context, or a new one over `store` for this strategy alone (with the
 * default `refreshInterval` unless `options` says otherwise).
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromContextOr = (
  store: CacheStore.Service | undefined,
  options?: Options
): Effect.Effect<CacheTags.Service, never, Scope.Scope> =>
  Effect.flatMap(
    Effect.serviceOption(CacheTags),
    Option.match({ onSome: Effect.succeed, onNone: () => Effect.orDie(makeWith(store, options)) })
  )
