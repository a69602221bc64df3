import { assert, describe, it } from "@effect/vitest"
import { CacheEntry, CacheStore } from "@stalewise/core"
import { RedisStore } from "@stalewise/redis"
import * as Clock from "effect/Clock"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Option from "effect/Option"
import * as RedisTest from "./utils/RedisTest.js"

// Each runtime stands for one process: its own layer, its own connection, its own clock.
const runtimes = (count: number, keyPrefix: string, connection: RedisStore.LayerOptions) =>
  Effect.forEach(Array.from({ length: count }, () => undefined), () =>
    Effect.acquireRelease(
      Effect.promise(async () => {
        const runtime = ManagedRuntime.make(
          RedisStore.layer({ ...connection, keyPrefix })
        )
        await runtime.runtime()
        return runtime
      }),
      (runtime) => Effect.promise(() => runtime.dispose())
    ))

type Runtime = ManagedRuntime.ManagedRuntime<CacheStore.CacheStore, unknown>

const inRuntime = <A, E>(runtime: Runtime, effect: Effect.Effect<A, E, CacheStore.CacheStore>) =>
  Effect.promise(() => runtime.runPromise(effect))

const acquire = (key: string, duration: Duration.DurationInput) =>
  Effect.flatMap(CacheStore.CacheStore, (store) => store.acquireLease(key, duration))

for (const topology of RedisTest.topologies) {
  describe.skipIf(!topology.available)(`RedisStore leases across runtimes (${topology.name})`, () => {
    it.scopedLive("8 runtimes race for one lease, 5 attempts each: exactly one wins each round", () =>
      Effect.gen(function*() {
        const all = yield* runtimes(8, RedisTest.makePrefix(), topology.connection)
        const winners: Array<number> = []
        for (let round = 0; round < 5; round++) {
          const results = yield* Effect.all(
            all.map((runtime, index) =>
              inRuntime(
                runtime,
                Effect.all(Array.from({ length: 5 }, () => acquire("ns:refresh:1", "1 minute")), {
                  concurrency: "unbounded"
                })
              ).pipe(Effect.map((leases) =>
                leases.flatMap((lease) => Option.isSome(lease) ? [{ index, lease: lease.value }] : [])
              ))
            ),
            { concurrency: "unbounded" }
          )
          const won = results.flat()
          assert.strictEqual(won.length, 1, `round ${round}`)
          const [{ index, lease }] = won as [typeof won[number]]
          winners.push(index)
          // only the winner's release frees it
          const other = all[(index + 1) % all.length]!
          assert.isFalse(
            yield* inRuntime(
              other,
              Effect.flatMap(CacheStore.CacheStore, (store) => store.releaseLease({ ...lease, token: "forged" }))
            )
          )
          assert.isTrue(
            yield* inRuntime(all[index]!, Effect.flatMap(CacheStore.CacheStore, (store) => store.releaseLease(lease)))
          )
        }
        assert.strictEqual(winners.length, 5)
      }))

    it.scopedLive("6 runtimes × 10 readers of one stale key: one refresh per lease, every reader answered", () =>
      Effect.gen(function*() {
        const all = yield* runtimes(6, RedisTest.makePrefix(), topology.connection)
        const key = "ns:rates:EUR"
        const now = yield* Clock.currentTimeMillis
        // fetched 2 minutes ago, stale after 1 minute, gone after 1 hour
        const stale = CacheEntry.make({
          value: 1,
          createdAt: now - 120_000,
          staleAt: now - 60_000,
          expiresAt: now + 3_600_000
        })
        yield* inRuntime(all[0]!, Effect.flatMap(CacheStore.CacheStore, (store) => store.set(key, stale)))
        let refreshes = 0
        // stale-while-revalidate in miniature: answer the cached value, refresh only with the lease
        const read = Effect.gen(function*() {
          const store = yield* CacheStore.CacheStore
          const entry = Option.getOrThrow(yield* store.get<number>(key))
          const at = yield* Clock.currentTimeMillis
          if (
            CacheEntry.freshness(entry, at) === "Stale" && Option.isSome(yield* store.acquireLease(key, "1 minute"))
          ) {
            refreshes++
            yield* store.set(
              key,
              CacheEntry.make({ value: 2, createdAt: at, staleAt: at + 60_000, expiresAt: at + 3_600_000 })
            )
          }
          return entry.value
        })
        const wave = () =>
          Effect.all(
            all.map((runtime) =>
              inRuntime(runtime, Effect.all(Array.from({ length: 10 }, () => read), { concurrency: "unbounded" }))
            ),
            { concurrency: "unbounded" }
          ).pipe(Effect.map((answers) => answers.flat()))
        const first = yield* wave()
        assert.strictEqual(first.length, 60)
        assert.isTrue(first.every((value) => value === 1 || value === 2))
        assert.strictEqual(refreshes, 1)
        const second = yield* wave()
        assert.deepStrictEqual(new Set(second), new Set([2]))
        assert.strictEqual(refreshes, 1)
      }))

    it.scopedLive("a crashed holder's lease runs out in real time; then another runtime wins, and the old token frees nothing", () =>
      Effect.gen(function*() {
        const keyPrefix = RedisTest.makePrefix()
        const [holder] = yield* runtimes(1, keyPrefix, topology.connection)
        const [b, c] = yield* runtimes(2, keyPrefix, topology.connection)
        const lease = Option.getOrThrow(yield* inRuntime(holder!, acquire("ns:refresh:1", "300 millis")))
        const taken = performance.now()
        // the holder "crashes": its runtime and connection go away without releasing
        yield* Effect.promise(() => holder!.dispose())
        assert.isTrue(Option.isNone(yield* inRuntime(b!, acquire("ns:refresh:1", "300 millis"))))
        let second: Option.Option<CacheStore.Lease> = Option.none()
        const waited = yield* RedisTest.eventually(
          Effect.map(inRuntime(b!, acquire("ns:refresh:1", "1 minute")), (result) => {
            second = result
            return Option.isSome(result)
          }),
          { within: "3 seconds", every: "10 millis" }
        )
        const elapsed = performance.now() - taken
        assert.isAtLeast(elapsed, 290)
        assert.isBelow(waited, 1_500)
        assert.isTrue(Option.isSome(second))
        assert.isFalse(
          yield* inRuntime(c!, Effect.flatMap(CacheStore.CacheStore, (store) => store.releaseLease(lease)))
        )
        assert.isTrue(Option.isNone(yield* inRuntime(c!, acquire("ns:refresh:1", "1 minute"))), "b still holds it")
      }))
  })
}
