// A third-party backend's test file: the published conformance suite, run by vitest.
import { CacheStore } from "@stalewise/core"
import { suite } from "@stalewise/testing/CacheStoreSuite"

suite("memory, as a third-party backend would run it", CacheStore.layerMemoryWith({ capacity: 8 }), {
  serializes: false,
  capacity: 8
})
