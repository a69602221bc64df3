import { assert, describe, it } from "@effect/vitest"
import { CacheControl, CacheMetrics, CacheStore } from "@stalewise/core"
import { CachedService, Strategy } from "@stalewise/rpc"
import { Context, Effect, Layer, Option, Ref } from "effect"

class Catalog extends Context.Tag("test/Catalog")<Catalog, {
  readonly price: (sku: string) => Effect.Effect<number>
  readonly stock: (sku: string) => Effect.Effect<number, "Unavailable">
  readonly buy: (sku: string) => Effect.Effect<void>
}>() {}

const makeCatalog = Effect.gen(function*() {
  const calls = yield* Ref.make(0)
  const prices = yield* Ref.make(10)
  const service: Context.Tag.Service<Catalog> = {
    price: () => Effect.zipRight(Ref.update(calls, (n) => n + 1), Ref.get(prices)),
    stock: () => Effect.as(Ref.update(calls, (n) => n + 1), 5),
    buy: () => Effect.void
  }
  return { calls, prices, service }
})

const run = <A, E>(
  body: (
    backend: Effect.Effect.Success<typeof makeCatalog>
  ) => Effect.Effect<A, E, Catalog | CachedService.Handles<Catalog>>
) =>
  Effect.gen(function*() {
    const backend = yield* makeCatalog
    const layer = CachedService.layer(Catalog, {
      price: Strategy.cacheFirst({ timeToLive: "1 hour" }), // in process only: no store to clear
      stock: Strategy.failover({ timeout: "1 second" })
    }).pipe(Layer.provide(Layer.succeed(Catalog, backend.service)), Layer.provide(CacheStore.layerMemory))
    return yield* body(backend).pipe(Effect.provide(layer))
  })

describe("CachedService handles", () => {
  it.effect("a non-persisted cache-first method can be peeked, set and reset", () =>
    run((backend) =>
      Effect.gen(function*() {
        const catalog = yield* Catalog
        const cache = yield* CachedService.Handles(Catalog)
        assert.strictEqual(yield* catalog.price("a"), 10)
        assert.strictEqual(Option.getOrThrow(yield* cache.price.peek("a")).value, 10)
        yield* Ref.set(backend.prices, 12)
        assert.strictEqual(yield* catalog.price("a"), 10, "still cached")
        yield* cache.price.invalidate("a")
        assert.strictEqual(yield* catalog.price("a"), 12, "invalidated: asked again")
        yield* cache.price.set(["b"], 99)
        assert.strictEqual(yield* catalog.price("b"), 99)
        yield* Ref.set(backend.prices, 13)
        yield* cache.price.invalidateAll
        assert.strictEqual(yield* catalog.price("a"), 13)
        assert.strictEqual(yield* catalog.price("b"), 13)
        assert.strictEqual(yield* Ref.get(backend.calls), 4)
      })
    ))

  it.effect("failover methods: peek the fallback, set it, drop it; invalidateAll resets every method", () =>
    run((backend) =>
      Effect.gen(function*() {
        const catalog = yield* Catalog
        const cache = yield* CachedService.Handles(Catalog)
        yield* catalog.stock("a")
        assert.strictEqual(Option.getOrThrow(yield* cache.stock.peek("a")).value, 5)
        yield* cache.stock.set(["a"], 7)
        assert.strictEqual(Option.getOrThrow(yield* cache.stock.peek("a")).value, 7)
        yield* catalog.price("a")
        yield* CachedService.invalidateAll(Catalog)
        assert.isTrue(Option.isNone(yield* cache.stock.peek("a")))
        assert.isTrue(Option.isNone(yield* cache.price.peek("a")))
        // a method that is not cached has a handle that does nothing
        assert.isFalse(cache.buy.cached)
        assert.isTrue(Option.isNone(yield* cache.buy.peek("a")))
        assert.isTrue(cache.price.cached)
        void backend
      })
    ))

  it.effect("bypass and forceRefresh reach through the wrapped service; outcomes carry the method's name", () =>
    run((backend) =>
      Effect.gen(function*() {
        const catalog = yield* Catalog
        const filter = { namespace: "test/Catalog", name: "price" }
        const before = yield* CacheMetrics.outcomeCounts(filter)
        yield* catalog.price("a")
        yield* Ref.set(backend.prices, 20)
        assert.strictEqual(yield* CacheControl.bypass(catalog.price("a")), 20)
        assert.strictEqual(yield* catalog.price("a"), 10)
        assert.strictEqual(yield* CacheControl.forceRefresh(catalog.price("a")), 20)
        assert.strictEqual(yield* catalog.price("a"), 20)
        const after = yield* CacheMetrics.outcomeCounts(filter)
        const delta = (status: "miss" | "hit" | "bypass") => (after[status] ?? 0) - (before[status] ?? 0)
        assert.deepStrictEqual([delta("miss"), delta("hit"), delta("bypass")], [2, 2, 1])
      })
    ))
})
