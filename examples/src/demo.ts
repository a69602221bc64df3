/**
 * The Stalewise demo, run with `pnpm demo`: each part shows one capability on real components
 * (the memory store, a real @effect/rpc server on 127.0.0.1), on the real clock.
 */
import { CacheStore } from "@stalewise/core"
import { Console, Effect } from "effect"
import { coreModelPart } from "./parts/coreModel.js"
import { failoverAndCacheFirstPart } from "./parts/failoverAndCacheFirst.js"
import { httpCachePart } from "./parts/httpCache.js"
import { staleWhileRevalidatePart } from "./parts/staleWhileRevalidate.js"

const program = Effect.gen(function*() {
  yield* Console.log("Stalewise demo")
  yield* coreModelPart.pipe(Effect.provide(CacheStore.layerMemory))
  yield* failoverAndCacheFirstPart
  yield* staleWhileRevalidatePart
  yield* httpCachePart
})

Effect.runPromise(program).catch((error) => {
  console.error(error)
  process.exit(1)
})
