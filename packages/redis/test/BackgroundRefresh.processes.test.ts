/**
 * Background refreshes across real processes: this process is the app (it reads through a job
 * whose refreshes go to BullMQ), a child process is the worker (`fixtures/refreshWorker.ts`, its
 * own connections, store and registry), both on the shared test `redis-server`. Real time: the
 * rule under test is how often refreshes land, as a deployment sees it.
 */
import { assert, describe, it } from "@effect/vitest"
import { BullRefreshQueue, RedisClient, RedisStore } from "@stalewise/redis"
import { Job } from "@stalewise/refresh"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import * as Fixture from "./utils/Fixture.js"
import * as RedisTest from "./utils/RedisTest.js"

const log = (message: string) => console.info(`[stalewise] ${message}`)

const unique = (name: string) => `${name}-${crypto.randomUUID().slice(0, 8)}`

describe.skipIf(!RedisTest.available)("background refreshes across processes (real redis-server, BullMQ)", () => {
  RedisTest.assertNoUnhandledRejections()

  it.scopedLive(
    "a worker process refreshes as often as the value goes stale: nothing older than lifetime + 1 s is served",
    () =>
      Effect.gen(function*() {
        const lifetime = 2_000
        const queueName = unique("every-lifetime")
        const keyPrefix = RedisTest.makePrefix()
        const name = unique("price")
        const worker = yield* Fixture.spawn("refreshWorker", {
          REDIS_HOST: RedisTest.host,
          REDIS_PORT: String(RedisTest.port),
          QUEUE: queueName,
          KEY_PREFIX: keyPrefix,
          JOB: name,
          LIFETIME_MILLIS: String(lifetime)
        })
        yield* worker.line("ready", "20 seconds")

        const app = yield* Layer.build(
          Layer.mergeAll(RedisStore.layerFromClient({ keyPrefix }), BullRefreshQueue.layer({ queueName })).pipe(
            Layer.provideMerge(
              RedisClient.layer({
                host: RedisTest.host,
                port: RedisTest.port,
                commandTimeout: "1 second",
                ...RedisStore.clientDefaults
              })
            )
          )
        )
        // The app's job: same name and schemas as the worker's (the default refreshLease, 60 s).
        const price = yield* Job.make({
          name,
          argsSchema: Schema.Tuple(Schema.String),
          schema: Schema.String,
          key: (id: string) => id,
          fetch: (id: string) => Effect.succeed(`${id} by the app`),
          lifetime: Duration.millis(lifetime)
        }).pipe(Effect.provide(app))

        const reads: Array<
          { readonly at: number; readonly status: string; readonly value: string; readonly age: number }
        > = []
        const start = performance.now()
        while (performance.now() - start < 12_000) {
          const outcome = yield* price.getWithOutcome("A-1")
          reads.push({
            at: performance.now() - start,
            status: outcome.status,
            value: outcome.value,
            age: Duration.toMillis(outcome.age)
          })
          yield* Effect.sleep("250 millis")
        }

        const fetches = worker.lines.filter((line) => line.startsWith("fetched A-1 ")).map((line) =>
          Number(line.split(" ")[3])
        )
        const gaps = fetches.slice(1).map((at, i) => at - fetches[i]!)
        const first = reads.findIndex((read) => read.value.endsWith("by the worker"))
        assert.deepStrictEqual([reads[0]!.status, reads[0]!.value], ["miss", "A-1 by the app"])
        assert.isAbove(first, 0, "a refresh by the worker landed")
        const after = reads.slice(first)
        const oldest = Math.max(...after.map((read) => read.age))
        const summary = `worker fetches ${fetches.length}, ${gaps.map((gap) => gap.toFixed(0)).join("/")} ms apart; ` +
          `oldest value served after the first refresh ${oldest.toFixed(0)} ms (lifetime ${lifetime} ms); ` +
          `statuses ${after.map((read) => read.status[0]).join("")}`
        log(`background refresh across processes: ${summary}`)
        assert.isAtMost(oldest, lifetime + 1_000, summary)
        assert.isTrue(after.every((read) => read.status === "hit" || read.status === "stale"), summary)
        // about once per lifetime: never sooner than the value went stale, never much later
        assert.isAtLeast(fetches.length, 4, summary)
        assert.isAtMost(fetches.length, 6, summary)
        for (const gap of gaps) {
          assert.isAtLeast(gap, lifetime - 50, summary)
          assert.isAtMost(gap, lifetime + 1_000, summary)
        }
        assert.deepStrictEqual(worker.errors(), [], "the worker wrote nothing to stderr")
      }),
    { timeout: 60_000 }
  )
})
