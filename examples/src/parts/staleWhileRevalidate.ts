/**
 * Demo part: stale-while-revalidate on the real clock, over the memory store and the fibers
 * refresh queue. A 300 ms upstream sits behind a job with a 500 ms lifetime: stale values come
 * back at once while one background refresh runs, then the fresh value; a failing refresh keeps
 * the last good value; past `syncRefreshAfter` the read waits for a fresh one.
 */
import { CacheStore, type Outcome } from "@stalewise/core"
import { Job, RefreshQueue } from "@stalewise/refresh"
import { Console, Data, Duration, Effect, HashMap, Layer, Logger, Option } from "effect"

class RatesDown extends Data.TaggedError("RatesDown")<{}> {}

const row = (label: string, outcome: Outcome.Outcome<string>, elapsed: Duration.Duration) => {
  const status = outcome.reason === undefined ? outcome.status : `${outcome.status}/${outcome.reason}`
  const age = Duration.isZero(outcome.age) ? "" : `  (age ${Duration.toMillis(outcome.age).toFixed(0)} ms)`
  return Console.log(
    `  ${label.padEnd(52)} ${status.padEnd(14)} ${
      Duration.toMillis(elapsed).toFixed(0).padStart(5)
    } ms   ${outcome.value}${age}`
  )
}

/** Stale-while-revalidate: status and latency of each call. */
export const staleWhileRevalidatePart: Effect.Effect<void> = Effect.gen(function*() {
  // The upstream: an exchange-rate service that takes 300 ms and can be switched off.
  const upstream = { calls: 0, version: 0, down: false }
  const fetchRate = (currency: string) =>
    Effect.suspend(() => {
      upstream.calls++
      return Effect.sleep("300 millis").pipe(
        Effect.zipRight(Effect.suspend(() =>
          upstream.down ? Effect.fail(new RatesDown()) : Effect.succeed(`${currency} rate v${++upstream.version}`)
        ))
      )
    })
  let reads = 0

  const rate = yield* Job.make({
    name: "demoRate",
    fetch: fetchRate,
    lifetime: "500 millis", // fresh for 500 ms, then stale: served at once, refreshed in the background
    syncRefreshAfter: "3 seconds", // older than this, a read waits for a fresh value
    timeToLive: "1 minute",
    refreshBackoff: { initial: "1500 millis" } // after a failed refresh, wait before the next try
  })
  const read = Effect.sync(() => reads++).pipe(Effect.zipRight(rate.getWithOutcome("EUR")))
  const call = (label: string) =>
    Effect.flatMap(Effect.timed(read), ([elapsed, outcome]) => row(label, outcome, elapsed))
  const waitFor = (label: string, duration: Duration.DurationInput) =>
    Console.log(`  … ${label}`).pipe(Effect.zipRight(Effect.sleep(duration)))

  yield* Console.log("\n## Stale-while-revalidate (a 300 ms upstream, lifetime 500 ms)")
  yield* Console.log(`  ${"call".padEnd(52)} ${"outcome".padEnd(14)} latency   value`)
  yield* call("rate(EUR), nothing cached")
  yield* call("rate(EUR) again")
  yield* waitFor("600 ms later the value is stale", "600 millis")
  yield* call("rate(EUR): stale, served at once; a refresh starts")
  yield* call("rate(EUR) while the refresh runs")
  const concurrent = yield* Effect.timed(
    Effect.all(Array.from({ length: 50 }, () => read), { concurrency: "unbounded" })
  )
  yield* Console.log(
    `  ${"50 concurrent reads while it runs".padEnd(52)} ${
      [...new Set(concurrent[1].map((o) => o.status))].join(",").padEnd(14)
    } ${Duration.toMillis(concurrent[0]).toFixed(0).padStart(5)} ms   upstream calls so far: ${upstream.calls}`
  )
  yield* waitFor("400 ms later the refresh has landed", "400 millis")
  yield* call("rate(EUR): fresh")

  upstream.down = true
  yield* waitFor("the upstream goes down; 600 ms later the value is stale", "600 millis")
  yield* call("rate(EUR): stale, served; the refresh will fail")
  yield* waitFor("400 ms later the refresh has failed", "400 millis")
  yield* call("rate(EUR): the last good value is kept")

  upstream.down = false
  yield* waitFor("the upstream is back; 2.5 s later the value is over 3 s old", "2500 millis")
  yield* call("rate(EUR): past syncRefreshAfter, waits for fresh")
  yield* Console.log(`  upstream calls: ${upstream.calls} for ${reads} reads`)
}).pipe(
  Effect.scoped,
  Effect.provide(Layer.merge(CacheStore.layerMemory, RefreshQueue.layerFibers())),
  // What the job logs (a failed refresh is never silent), printed as part of the table.
  Effect.provide(Logger.replace(
    Logger.defaultLogger,
    Logger.make(({ annotations, logLevel, message }) => {
      const text = Array.isArray(message) ? message.join(" ") : String(message)
      const error = Option.match(HashMap.get(annotations, "error"), { onNone: () => "", onSome: (e) => ` (${e})` })
      console.log(`    [log ${logLevel.label}] ${text}${error}`)
    })
  )),
  Effect.orDie
)
