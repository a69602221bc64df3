// A cached service: the same tag with one method served by failover.
import { CacheStore } from "@stalewise/core"
import { CachedService, Strategy } from "@stalewise/rpc"
import { Context, Effect, Layer } from "effect"
import * as assert from "node:assert/strict"

class Inventory extends Context.Tag("shop/Inventory")<Inventory, {
  readonly stock: (sku: string) => Effect.Effect<number, "Unavailable">
}>() {}

let up = true
const InventoryLive = Layer.succeed(Inventory, {
  stock: () => (up ? Effect.succeed(3) : Effect.fail("Unavailable" as const))
})

const InventoryCached = CachedService.layer(Inventory, { stock: Strategy.failover({ timeout: "150 millis" }) }).pipe(
  Layer.provide(InventoryLive),
  Layer.provide(CacheStore.layerMemory)
)

const program = Effect.gen(function*() {
  const inventory = yield* Inventory
  assert.equal(yield* inventory.stock("sku-1"), 3)
  up = false
  assert.equal(yield* inventory.stock("sku-1"), 3)
}).pipe(Effect.provide(InventoryCached))

await Effect.runPromise(program)
console.log("rpc: ok")
