/**
 * The conformance suite every `CacheStore` backend runs: `suite(name, layer, features)`.
 * Each test builds its own store from `layer` inside the test (so the store sees the test's
 * `TestClock`) and uses its own namespace, so tests can run concurrently against a shared backend.
 *
 * @since 0.1.0
 */
import { assert, describe, it } from "@effect/vitest"
import { CacheEntry, CacheMetrics, CacheStore } from "@stalewise/core"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import type * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as TestClock from "effect/TestClock"

/**
 * What a backend supports beyond the common contract.
 *
 * @since 0.1.0
 * @category models
 */
export interface Features<R> {
  /** Values cross a process boundary: they are Schema-encoded and can fail to decode. */
  readonly serializes: boolean
  /** The backend's entry-count capacity, to test LRU eviction. */
  readonly capacity?: number | undefined
  /** Writes raw, corrupt data where the entry for `key` would be stored. */
  readonly corrupt?: ((key: string) => Effect.Effect<void, unknown, R>) | undefined
}

let counter = 0
const namespace = () =>
  `t${Date.now().toString(36)}${(counter++).toString(36)}${Math.random().toString(36).slice(2, 6)}`

const entryAt = <A>(value: A, createdAt: number, lifetime: number, timeToLive: number) =>
  CacheEntry.make({ value, createdAt, staleAt: createdAt + lifetime, expiresAt: createdAt + timeToLive })

const counterValue = (metric: typeof CacheMetrics.storeDecodeFailures, backend: string) =>
  Effect.map(Metric.value(Metric.tagged(metric, "backend", backend)), (state) => state.count)

/**
 * Runs the conformance suite against a backend layer, as a vitest `describe` block: call it at the
 * top level of a test file. Needs `@effect/vitest`. An example is in `docs/testing.md` (it cannot
 * run outside vitest, as docgen runs the examples here).
 *
 * @since 0.1.0
 * @category constructors
 */
export const suite = <E, R>(
  name: string,
  layer: Layer.Layer<CacheStore.CacheStore | R, E>,
  features: Features<R>
) =>
  describe(`CacheStore conformance: ${name}`, () => {
    const test = (
      title: string,
      body: (store: CacheStore.CacheStore.Service, ns: string) => Effect.Effect<void, unknown, R>
    ) =>
      it.effect(title, () =>
        Effect.gen(function*() {
          const store = yield* CacheStore.CacheStore
          yield* body(store, namespace())
        }).pipe(Effect.provide(layer)) as Effect.Effect<void, unknown>)

    test("get of an absent key is None", (store, ns) =>
      Effect.gen(function*() {
        assert.isTrue(Option.isNone(yield* store.get(`${ns}:fn:absent`)))
      }))

    test("set then get round-trips the entry and its timestamps", (store, ns) =>
      Effect.gen(function*() {
        const entry = entryAt({ name: "Ada", tags: ["a", "b"], n: 1 }, 0, 1_000, 60_000)
        yield* store.set(`${ns}:fn:1`, entry)
        const got = yield* store.get(`${ns}:fn:1`)
        assert.deepStrictEqual(Option.getOrThrow(got), entry)
      }))

    // setOrWarn is how strategies write; with a backend that writes in the background
    // (`setInBackground`), the caller does not wait, and this must still hold.
    test(
      "setOrWarn: read back at once; a later set or delete from this instance wins, also once it lands",
      (store, ns) =>
        Effect.gen(function*() {
          const settle = Effect.promise(() => new Promise<void>((resolve) => setTimeout(resolve, 50)))
          const entry = entryAt("written", 0, 1_000, 60_000)
          yield* CacheStore.setOrWarn(store, `${ns}:fn:1`, entry, undefined, {})
          assert.deepStrictEqual(Option.getOrThrow(yield* store.get(`${ns}:fn:1`)), entry)
          yield* CacheStore.setOrWarn(store, `${ns}:fn:2`, entryAt("behind", 0, 1_000, 60_000), undefined, {})
          yield* store.delete(`${ns}:fn:2`)
          yield* CacheStore.setOrWarn(store, `${ns}:fn:3`, entryAt("behind", 0, 1_000, 60_000), undefined, {})
          yield* store.set(`${ns}:fn:3`, entryAt("ahead", 1, 1_000, 60_000))
          assert.isTrue(Option.isNone(yield* store.get(`${ns}:fn:2`)))
          assert.strictEqual(Option.getOrThrow(yield* store.get(`${ns}:fn:3`)).value, "ahead")
          yield* settle
          assert.deepStrictEqual(Option.getOrThrow(yield* store.get(`${ns}:fn:1`)), entry)
          assert.isTrue(Option.isNone(yield* store.get(`${ns}:fn:2`)))
          assert.strictEqual(Option.getOrThrow(yield* store.get(`${ns}:fn:3`)).value, "ahead")
        })
    )

    test("an entry's tags round-trip; getMany answers in order as get does (absent, expired, tagged)", (store, ns) =>
      Effect.gen(function*() {
        const tagged = CacheEntry.make({
          value: { n: 1 },
          createdAt: 0,
          staleAt: 1_000,
          expiresAt: 60_000,
          tags: ["users", "user:1"]
        })
        yield* store.set(`${ns}:fn:tagged`, tagged)
        assert.deepStrictEqual(Option.getOrThrow(yield* store.get(`${ns}:fn:tagged`)), tagged)
        yield* store.set(`${ns}:fn:short`, entryAt("short", 0, 500, 1_000))
        yield* store.set(`${ns}:fn:plain`, entryAt("plain", 0, 1_000, 60_000))
        yield* TestClock.adjust(1_000)
        const keys = [`${ns}:fn:plain`, `${ns}:fn:absent`, `${ns}:fn:short`, `${ns}:fn:tagged`, `${ns}:fn:plain`]
        const many = yield* CacheStore.getMany(store, keys)
        const one = yield* Effect.forEach(keys, (key) =>
          store.get(key))
        assert.deepStrictEqual(many, one)
        assert.deepStrictEqual(many.map(Option.isSome), [true, false, false, true, true])
        assert.deepStrictEqual(yield* CacheStore.getMany(store, []), [])
      }))

    test("a second set replaces the entry", (store, ns) =>
      Effect.gen(function*() {
        yield* store.set(`${ns}:fn:1`, entryAt("old", 0, 1_000, 60_000))
        yield* store.set(`${ns}:fn:1`, entryAt("new", 5, 1_000, 60_000))
        const got = Option.getOrThrow(yield* store.get(`${ns}:fn:1`))
        assert.strictEqual(got.value, "new")
        assert.strictEqual(got.createdAt, 5)
      }))

    test("values round-trip exactly through their schema (Date, bigint, Option)", (store, ns) =>
      Effect.gen(function*() {
        const schema = Schema.Struct({ at: Schema.Date, big: Schema.BigInt, nick: Schema.Option(Schema.String) })
        const value = { at: new Date(1_700_000_000_000), big: 2n ** 70n, nick: Option.some("ada") }
        yield* store.set(`${ns}:fn:1`, entryAt(value, 0, 1_000, 60_000), schema)
        const got = Option.getOrThrow(yield* store.get(`${ns}:fn:1`, schema))
        assert.instanceOf(got.value.at, Date)
        assert.strictEqual(got.value.at.getTime(), value.at.getTime())
        assert.strictEqual(got.value.big, value.big)
        assert.deepStrictEqual(got.value.nick, value.nick)
      }))

    test("values JSON cannot say round-trip exactly: undefined, null, NaN, ±Infinity, -0, sparse arrays", (store, ns) =>
      Effect.gen(function*() {
        const sparse: Array<number | undefined> = [1, undefined]
        sparse[4] = 5 // holes at 2 and 3, an undefined element at 1
        const values: ReadonlyArray<unknown> = [
          undefined,
          null,
          NaN,
          -0,
          Infinity,
          -Infinity,
          sparse,
          { a: undefined, b: null, c: NaN, d: [-0, undefined], e: { f: undefined } },
          [undefined],
          [new Array<number>(2)] // nested, all holes
        ]
        for (const [i, value] of values.entries()) {
          yield* store.set(`${ns}:fn:${i}`, entryAt(value, 0, 1_000, 60_000))
          const got = yield* store.get(`${ns}:fn:${i}`)
          assert.isTrue(Option.isSome(got), `value ${i} is stored, not a miss`)
          assert.deepStrictEqual(Option.getOrThrow(got).value, value, `value ${i}`)
          if (Array.isArray(value)) {
            assert.deepStrictEqual(
              Object.keys(Option.getOrThrow(got).value as object),
              Object.keys(value),
              `holes ${i}`
            )
          }
          if (typeof value === "number") {
            assert.isTrue(Object.is(Option.getOrThrow(got).value, value), `${value}`)
          }
        }
      }))

    test("values JSON cannot say round-trip through their schema", (store, ns) =>
      Effect.gen(function*() {
        const cases: ReadonlyArray<readonly [Schema.Schema<any, any>, unknown]> = [
          [Schema.Undefined, undefined],
          [Schema.Void, undefined],
          [Schema.Null, null],
          [Schema.Number, NaN],
          [Schema.Number, -0],
          [Schema.Number, -Infinity],
          [Schema.UndefinedOr(Schema.String), undefined],
          [Schema.Struct({ a: Schema.optional(Schema.Number), b: Schema.UndefinedOr(Schema.Number) }), {
            b: undefined
          }],
          [Schema.Array(Schema.UndefinedOr(Schema.Number)), [1, undefined, NaN]]
        ]
        for (const [i, [schema, value]] of cases.entries()) {
          yield* store.set(`${ns}:fn:${i}`, entryAt(value, 0, 1_000, 60_000), schema)
          const got = yield* store.get(`${ns}:fn:${i}`, schema)
          assert.isTrue(Option.isSome(got), `value ${i} is stored, not a miss`)
          assert.deepStrictEqual(Option.getOrThrow(got).value, value, `value ${i}`)
        }
      }))

    test("an entry expires at expiresAt under TestClock, not a millisecond before", (store, ns) =>
      Effect.gen(function*() {
        yield* store.set(`${ns}:fn:1`, entryAt("v", 0, 500, 1_000))
        yield* TestClock.adjust("999 millis")
        assert.isTrue(Option.isSome(yield* store.get(`${ns}:fn:1`)), "alive at 999 ms")
        yield* TestClock.adjust("1 millis")
        assert.isTrue(Option.isNone(yield* store.get(`${ns}:fn:1`)), "gone at 1000 ms")
      }))

    test("a stale entry is still returned until it expires", (store, ns) =>
      Effect.gen(function*() {
        yield* store.set(`${ns}:fn:1`, entryAt("v", 0, 100, 10_000))
        yield* TestClock.adjust("5 seconds")
        const got = Option.getOrThrow(yield* store.get(`${ns}:fn:1`))
        assert.strictEqual(CacheEntry.freshness(got, 5_000), "Stale")
      }))

    test("an entry that never expires survives", (store, ns) =>
      Effect.gen(function*() {
        yield* store.set(`${ns}:fn:1`, entryAt("v", 0, 100, Infinity))
        yield* TestClock.adjust("3650 days")
        const got = Option.getOrThrow(yield* store.get(`${ns}:fn:1`))
        assert.strictEqual(got.expiresAt, Infinity)
      }))

    test("setting an already expired entry removes the key", (store, ns) =>
      Effect.gen(function*() {
        yield* TestClock.adjust("10 seconds")
        yield* store.set(`${ns}:fn:1`, entryAt("live", 10_000, 1_000, 5_000))
        yield* store.set(`${ns}:fn:1`, entryAt("dead", 0, 1_000, 5_000))
        assert.isTrue(Option.isNone(yield* store.get(`${ns}:fn:1`)))
      }))

    test("delete removes one key and tolerates an absent one", (store, ns) =>
      Effect.gen(function*() {
        yield* store.set(`${ns}:fn:1`, entryAt(1, 0, 1_000, 60_000))
        yield* store.set(`${ns}:fn:2`, entryAt(2, 0, 1_000, 60_000))
        yield* store.delete(`${ns}:fn:1`)
        yield* store.delete(`${ns}:fn:absent`)
        assert.isTrue(Option.isNone(yield* store.get(`${ns}:fn:1`)))
        assert.isTrue(Option.isSome(yield* store.get(`${ns}:fn:2`)))
      }))

    test("deletePrefix removes a namespace or a name and leaves the others alone", (store, ns) =>
      Effect.gen(function*() {
        const other = `${ns}x`
        for (const key of [`${ns}:a:1`, `${ns}:a:2`, `${ns}:b:1`, `${other}:a:1`]) {
          yield* store.set(key, entryAt(key, 0, 1_000, 60_000))
        }
        assert.strictEqual(yield* store.deletePrefix(`${ns}:a:`), 2)
        assert.isTrue(Option.isNone(yield* store.get(`${ns}:a:1`)))
        assert.isTrue(Option.isSome(yield* store.get(`${ns}:b:1`)))
        assert.strictEqual(yield* store.deletePrefix(`${ns}:`), 1)
        assert.isTrue(Option.isNone(yield* store.get(`${ns}:b:1`)))
        // `${ns}x` starts with `${ns}` but not with `${ns}:`: another namespace, untouched
        assert.strictEqual(Option.getOrThrow(yield* store.get(`${other}:a:1`)).value, `${other}:a:1`)
        assert.strictEqual(yield* store.deletePrefix(`${ns}:`), 0)
      }))

    test("a lease is exclusive: of 50 concurrent acquirers exactly one wins", (store, ns) =>
      Effect.gen(function*() {
        const results = yield* Effect.all(
          Array.from({ length: 50 }, () =>
            store.acquireLease(`${ns}:fn:1`, "10 seconds")),
          { concurrency: "unbounded" }
        )
        assert.strictEqual(results.filter(Option.isSome).length, 1)
        // other keys are independent
        assert.isTrue(Option.isSome(yield* store.acquireLease(`${ns}:fn:2`, "10 seconds")))
      }))

    test("release frees only the lease it owns", (store, ns) =>
      Effect.gen(function*() {
        const lease = Option.getOrThrow(yield* store.acquireLease(`${ns}:fn:1`, "10 seconds"))
        assert.isFalse(yield* store.releaseLease({ ...lease, token: "not-the-owner" }))
        assert.isTrue(Option.isNone(yield* store.acquireLease(`${ns}:fn:1`, "10 seconds")), "still held")
        assert.isTrue(yield* store.releaseLease(lease))
        assert.isFalse(yield* store.releaseLease(lease), "a second release frees nothing")
        assert.isTrue(Option.isSome(yield* store.acquireLease(`${ns}:fn:1`, "10 seconds")))
      }))

    test("a lease runs out after its duration; the old holder cannot release the new lease", (store, ns) =>
      Effect.gen(function*() {
        const first = Option.getOrThrow(yield* store.acquireLease(`${ns}:fn:1`, "10 seconds"))
        yield* TestClock.adjust("9999 millis")
        assert.isTrue(Option.isNone(yield* store.acquireLease(`${ns}:fn:1`, "10 seconds")), "held at 9.999 s")
        yield* TestClock.adjust("1 millis")
        const second = Option.getOrThrow(yield* store.acquireLease(`${ns}:fn:1`, "10 seconds"))
        assert.notStrictEqual(second.token, first.token)
        assert.isFalse(yield* store.releaseLease(first))
        assert.isTrue(Option.isNone(yield* store.acquireLease(`${ns}:fn:1`, "10 seconds")), "second still held")
      }))

    test("leases are not entries: deletePrefix leaves them", (store, ns) =>
      Effect.gen(function*() {
        yield* store.acquireLease(`${ns}:fn:1`, "10 seconds")
        yield* store.deletePrefix(`${ns}:`)
        assert.isTrue(Option.isNone(yield* store.acquireLease(`${ns}:fn:1`, "10 seconds")))
      }))

    test("a non-positive or infinite lease duration is a PolicyError", (store, ns) =>
      Effect.gen(function*() {
        for (const duration of [0, -1, "0 seconds" as const, Infinity]) {
          const error = yield* Effect.flip(store.acquireLease(`${ns}:fn:1`, duration))
          assert.strictEqual(error._tag, "PolicyError")
        }
      }))

    test("withLease runs the effect only for the holder and releases afterwards", (store, ns) =>
      Effect.gen(function*() {
        const key = `${ns}:fn:1`
        const gate = yield* Effect.makeLatch(false)
        // The holder holds the lease before the other caller tries: a store on real I/O (the file
        // system) may take longer than a few yields to acquire it.
        const holding = yield* Deferred.make<void>()
        const holder = yield* CacheStore.withLease(
          key,
          "1 minute",
          Deferred.succeed(holding, undefined).pipe(Effect.zipRight(gate.await), Effect.as("ran"))
        ).pipe(
          Effect.provideService(CacheStore.CacheStore, store),
          Effect.fork
        )
        yield* Deferred.await(holding)
        const loser = yield* CacheStore.withLease(key, "1 minute", Effect.succeed("ran")).pipe(
          Effect.provideService(CacheStore.CacheStore, store)
        )
        assert.isTrue(Option.isNone(loser))
        yield* gate.open
        assert.deepStrictEqual(yield* Fiber.join(holder), Option.some("ran"))
        assert.isTrue(Option.isSome(yield* store.acquireLease(key, "1 minute")), "released")
      }))

    if (features.serializes) {
      test("a stored value that fails to decode is a miss, is deleted and is counted", (store, ns) =>
        Effect.gen(function*() {
          const before = yield* counterValue(CacheMetrics.storeDecodeFailures, store.backend)
          yield* store.set(`${ns}:fn:1`, entryAt({ n: 1 }, 0, 1_000, 60_000), Schema.Struct({ n: Schema.Number }))
          const got = yield* store.get(`${ns}:fn:1`, Schema.Struct({ n: Schema.String }))
          assert.isTrue(Option.isNone(got))
          assert.isTrue(Option.isNone(yield* store.get(`${ns}:fn:1`)), "deleted")
          const after = yield* counterValue(CacheMetrics.storeDecodeFailures, store.backend)
          assert.isAtLeast(after - before, 1)
        }))

      test("a value that cannot be encoded fails with CacheStoreError Encode and stores nothing", (store, ns) =>
        Effect.gen(function*() {
          const error = yield* Effect.flip(store.set(`${ns}:fn:1`, entryAt({ big: 1n }, 0, 1_000, 60_000)))
          assert.strictEqual(error._tag, "CacheStoreError")
          assert.strictEqual(error.reason, "Encode")
          const schemaError = yield* Effect.flip(
            store.set(`${ns}:fn:2`, entryAt(-1, 0, 1_000, 60_000), Schema.Number.pipe(Schema.positive()))
          )
          assert.strictEqual(schemaError.reason, "Encode")
          // what JSON would drop or flatten silently is refused, never stored as something else
          for (
            const [i, value] of [new Map([[1, 2]]), new Set([1]), {
              f: () =>
                1
            }, [Symbol("s")]].entries()
          ) {
            const refused = yield* Effect.flip(store.set(`${ns}:fn:x${i}`, entryAt(value, 0, 1_000, 60_000)))
            assert.strictEqual(refused.reason, "Encode", `value ${i}`)
            assert.isTrue(Option.isNone(yield* store.get(`${ns}:fn:x${i}`)))
          }
          assert.isTrue(Option.isNone(yield* store.get(`${ns}:fn:1`)))
          assert.isTrue(Option.isNone(yield* store.get(`${ns}:fn:2`)))
        }))
    } else {
      test("live values are kept as they are (same reference)", (store, ns) =>
        Effect.gen(function*() {
          // JSON-safe, so a tiered store (memory in front of a serialising one) keeps it too
          const value = { n: 1, nested: [1, 2] }
          yield* store.set(`${ns}:fn:1`, entryAt(value, 0, 1_000, 60_000))
          assert.strictEqual(Option.getOrThrow(yield* store.get(`${ns}:fn:1`)).value, value)
        }))
    }

    const corrupt = features.corrupt
    if (corrupt !== undefined) {
      test("corrupt stored data is a miss and is deleted, never a crash", (store, ns) =>
        Effect.gen(function*() {
          const before = yield* counterValue(CacheMetrics.storeDecodeFailures, store.backend)
          yield* store.set(`${ns}:fn:1`, entryAt("v", 0, 1_000, 60_000))
          yield* corrupt(`${ns}:fn:1`)
          assert.isTrue(Option.isNone(yield* store.get(`${ns}:fn:1`)))
          const after = yield* counterValue(CacheMetrics.storeDecodeFailures, store.backend)
          assert.isAtLeast(after - before, 1)
          yield* store.set(`${ns}:fn:1`, entryAt("again", 0, 1_000, 60_000))
          assert.strictEqual(Option.getOrThrow(yield* store.get(`${ns}:fn:1`)).value, "again")
        }))
    }

    const capacity = features.capacity
    if (capacity !== undefined) {
      test(`capacity ${capacity}: the least recently used entry is evicted and counted`, (store, ns) =>
        Effect.gen(function*() {
          const before = yield* counterValue(CacheMetrics.storeEvictions, store.backend)
          for (let i = 0; i < capacity; i++) {
            yield* store.set(`${ns}:fn:${i}`, entryAt(i, 0, 1_000, 60_000))
          }
          // touch key 0 so key 1 becomes the least recently used
          assert.isTrue(Option.isSome(yield* store.get(`${ns}:fn:0`)))
          yield* store.set(`${ns}:fn:new`, entryAt("new", 0, 1_000, 60_000))
          assert.isTrue(Option.isNone(yield* store.get(`${ns}:fn:1`)), "LRU entry evicted")
          assert.isTrue(Option.isSome(yield* store.get(`${ns}:fn:0`)), "recently used entry kept")
          assert.isTrue(Option.isSome(yield* store.get(`${ns}:fn:new`)))
          const after = yield* counterValue(CacheMetrics.storeEvictions, store.backend)
          assert.isAtLeast(after - before, 1)
        }))
    }
  })
