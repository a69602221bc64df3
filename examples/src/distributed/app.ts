/**
 * The app: reads a price through a stale-while-revalidate job backed by Redis, and leaves the
 * refreshes of stale values to the worker processes, through BullMQ. Run a worker first
 * (`pnpm --filter @stalewise/examples worker`), then `pnpm --filter @stalewise/examples app`.
 * Each line shows what one read returned, how long it took and which process fetched the value.
 */
import { NodeRuntime } from "@effect/platform-node"
import { Console, Duration, Effect } from "effect"
import { Jobs, layerJobs, SharedLive } from "./jobs.js"

const program = Effect.gen(function*() {
  const { price } = yield* Jobs
  yield* price.delete("A-1") // start from nothing, so every run shows the same story
  const start = Date.now()
  for (let read = 1; read <= 9; read++) {
    const [elapsed, outcome] = yield* Effect.timed(price.getWithOutcome("A-1"))
    const { cents, fetchedAt, fetchedBy } = outcome.value
    yield* Console.log(
      `t=${((Date.now() - start) / 1000).toFixed(1).padStart(4)} s  read ${read}: ${outcome.status.padEnd(6)} ` +
        `${Duration.toMillis(elapsed).toFixed(0).padStart(4)} ms  ${cents} cents, fetched by ${fetchedBy} ` +
        `at +${((fetchedAt.getTime() - start) / 1000).toFixed(1)} s`
    )
    yield* Effect.sleep("800 millis")
  }
})

NodeRuntime.runMain(program.pipe(Effect.provide(layerJobs("app")), Effect.provide(SharedLive), Effect.scoped))
