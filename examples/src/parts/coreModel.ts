/**
 * Demo part: the core model written out by hand — keys, the memory store, freshness, typed key
 * errors, metrics.
 */
import { CacheEntry, CacheKey, CacheMetrics, CacheStore, TimePolicy } from "@stalewise/core"
import { Console, Effect, Metric, Option } from "effect"

// The upstream: a slow "weather service".
const fetchForecast = (city: string) =>
  Effect.sleep("150 millis").pipe(Effect.as({ city, celsius: 10 + city.length, fetchedAt: new Date().toISOString() }))

type Forecast = Effect.Effect.Success<ReturnType<typeof fetchForecast>>

// A read-through over the store, written out by hand to show the core model at work: derive the
// key, read the store, classify freshness, fetch on a miss and store the value with its policy.
const cachedForecast = (policy: TimePolicy.TimePolicy, city: string) =>
  Effect.gen(function*() {
    const store = yield* CacheStore.CacheStore
    const key = yield* CacheKey.make("weather", "forecast", [city])
    const cached = yield* store.get<Forecast>(key.value)
    if (Option.isSome(cached)) {
      const freshness = yield* TimePolicy.classify(cached.value)
      if (freshness !== "Expired") return { value: cached.value.value, status: freshness }
    }
    const value = yield* fetchForecast(city)
    yield* store.set(key.value, yield* TimePolicy.entry(policy, value))
    return { value, status: "Miss" as const }
  })

const timed = <A, E, R>(label: string, effect: Effect.Effect<{ value: A; status: string }, E, R>) =>
  Effect.gen(function*() {
    const start = performance.now()
    const { status, value } = yield* effect
    const ms = (performance.now() - start).toFixed(1).padStart(7)
    yield* Console.log(`  ${label.padEnd(34)} ${status.padEnd(6)} ${ms} ms   ${JSON.stringify(value)}`)
  })

/** The core model at work: keys, the store, freshness, typed key errors, metrics. */
export const coreModelPart = Effect.gen(function*() {
  const policy = yield* TimePolicy.make({ lifetime: "300 millis", timeToLive: "2 seconds" })

  yield* Console.log("\n## The core model: a 150 ms upstream behind the memory CacheStore")
  yield* Console.log("  (lifetime 300 ms: fresh, then stale; timeToLive 2 s: then gone)\n")
  yield* timed("first call for Paris", cachedForecast(policy, "Paris"))
  yield* timed("second call for Paris", cachedForecast(policy, "Paris"))
  yield* timed("first call for Oslo", cachedForecast(policy, "Oslo"))
  yield* Effect.sleep("350 millis")
  yield* timed("Paris after 350 ms (stale, served)", cachedForecast(policy, "Paris"))

  yield* Console.log("\nKeys are canonical: argument order inside objects does not matter")
  const a = yield* CacheKey.make("weather", "forecast", [{ city: "Paris", units: "metric" }])
  const b = yield* CacheKey.make("weather", "forecast", [{ units: "metric", city: "Paris" }])
  yield* Console.log(`  ${a.value}\n  ${b.value}  equal: ${a.value === b.value}`)

  yield* Console.log("\nAn argument that cannot be keyed is a typed error, before any I/O")
  const error = yield* Effect.flip(CacheKey.make("weather", "forecast", [{ onDone: () => {} }]))
  yield* Console.log(`  ${error._tag} (${error.reason}): ${error.message}`)

  const store = yield* CacheStore.CacheStore
  const parisKey = yield* CacheKey.make("weather", "forecast", ["Paris"])
  const entry = Option.getOrThrow(yield* store.get(parisKey.value))
  const now = Date.now()
  yield* Console.log(
    `\nThe Paris entry: age ${now - entry.createdAt} ms, freshness ${CacheEntry.freshness(entry, now)}`
  )

  const hits = yield* Metric.value(Metric.tagged(CacheMetrics.storeHits, "backend", "memory"))
  const misses = yield* Metric.value(Metric.tagged(CacheMetrics.storeMisses, "backend", "memory"))
  yield* Console.log(`Store metrics: ${hits.count} hits, ${misses.count} misses`)
})
