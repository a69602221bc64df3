/**
 * A refresh worker: its own process, run with `pnpm --filter @stalewise/examples worker` (as many
 * as you like). It defines the same jobs as the app, then takes refresh jobs from the BullMQ
 * queue and runs them: fetch, store under the key the app computed, release the app's lease.
 * Runs until SIGINT or SIGTERM, then stops taking jobs and lets running refreshes finish (up to
 * 10 seconds) before it exits.
 */
import { NodeRuntime } from "@effect/platform-node"
import { BullRefreshQueue } from "@stalewise/redis"
import { Effect, Layer } from "effect"
import { layerJobs, queueName, SharedLive } from "./jobs.js"

const WorkerLive = Layer.unwrapEffect(
  Effect.map(queueName, (queueName) =>
    BullRefreshQueue.layerWorker({ queueName, concurrency: 4 }).pipe(
      // The jobs first: a worker must not take a request before its job is registered.
      Layer.provide(layerJobs("worker")),
      Layer.provide(SharedLive),
      Layer.tap(() => Effect.log(`worker ${process.pid} is taking refreshes from ${queueName}`))
    ))
)

NodeRuntime.runMain(Layer.launch(WorkerLive))
