/**
 * The BullMQ refresh queue against a real `redis-server`: an app "process" enqueues refreshes and
 * worker "processes" run them — each with its own connections, store, registry and jobs (and, for
 * the kill test, a real child process). BullMQ works in real time, so these tests wait for real,
 * with short locks and back-offs, polling with deadlines. Every test has its own queue name and
 * key prefix.
 */
import { assert, describe, it } from "@effect/vitest"
import { CacheStore } from "@stalewise/core"
import { BullRefreshQueue, RedisClient, RedisStore } from "@stalewise/redis"
import type { JobRegistry } from "@stalewise/refresh"
import { Job, RefreshQueue } from "@stalewise/refresh"
import { refreshes } from "@stalewise/refresh/test/utils"
import { Queue } from "bullmq"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import type { Cluster, Redis } from "ioredis"
import * as Fixture from "./utils/Fixture.js"
import * as RedisTest from "./utils/RedisTest.js"

const log = (message: string) => console.info(`[stalewise] ${message}`)

const unique = (name: string) => `${name}-${crypto.randomUUID().slice(0, 8)}`

/** What one "process" has: its own connection, store, BullMQ queue and job registry. */
type Process = CacheStore.CacheStore | RefreshQueue.RefreshQueue | JobRegistry.JobRegistry | RedisClient.RedisClient

interface ProcessOptions extends BullRefreshQueue.Options {
  readonly keyPrefix: string
  readonly port?: number | undefined
  /** A cluster's nodes instead of a server's port. */
  readonly nodes?: ReadonlyArray<string> | undefined
  readonly commandTimeout?: Duration.DurationInput | undefined
  /** More options of the process's `RedisClient`. */
  readonly client?: RedisClient.RedisOptions | undefined
}

const processLayer = (options: ProcessOptions) => {
  const { client, commandTimeout, keyPrefix, nodes, port, ...queue } = options
  return Layer.mergeAll(RedisStore.layerFromClient({ keyPrefix }), BullRefreshQueue.layer(queue)).pipe(
    Layer.provideMerge(
      RedisClient.layer({
        ...(nodes === undefined ? { host: RedisTest.host, port: port ?? RedisTest.port } : { nodes }),
        commandTimeout: commandTimeout ?? "2 seconds",
        ...RedisStore.clientDefaults,
        ...client
      })
    )
  )
}

/** Starts a "process" in the scope; run effects in it with `Effect.provide(context)`. */
const startProcess = (options: ProcessOptions) => Layer.build(processLayer(options))

/** Starts a worker in a "process", in the scope: build it after the process's jobs. */
const startWorker = (process: Context.Context<Process>, options: BullRefreshQueue.WorkerOptions) =>
  Layer.build(BullRefreshQueue.layerWorker(options).pipe(Layer.provide(Layer.succeedContext(process))))

/** A BullMQ handle on the queue for the test to look at, on a connection of its own. */
const inspect = (queueName: string, onCluster = false) =>
  Effect.flatMap(
    (onCluster ? RedisTest.connectCluster : RedisTest.connect) as Effect.Effect<Redis | Cluster, never, Scope.Scope>,
    (client) =>
      Effect.acquireRelease(
        Effect.promise(async () => {
          // on a cluster the queue's prefix gets a hash tag, in the app and workers too
          const queue = new Queue(queueName, { connection: client, ...(onCluster ? { prefix: "{bull}" } : {}) })
          await queue.waitUntilReady()
          return queue
        }),
        (queue) => Effect.promise(() => queue.close())
      )
  )

const counts = (queue: Queue) =>
  Effect.promise(() => queue.getJobCounts("waiting", "active", "delayed", "completed", "failed"))

const idle = (queue: Queue) =>
  Effect.map(counts(queue), (c) => c.waiting + c.active + c.delayed + c.completed + c.failed === 0)

const within = (effect: Effect.Effect<boolean, unknown>, seconds = 10) =>
  RedisTest.eventually(effect, { within: Duration.seconds(seconds), every: "10 millis" })

/** The key `countingJob(job)` derives for `id` (its `key` is the id, its namespace the default). */
const keyOf = (job: string, id: string) => `refresh:${job}:${id}`

/** A request for `id` under the key the job derives for it (a worker rejects any other key). */
const request = (job: string, id: string, args: unknown): RefreshQueue.RefreshRequest => ({
  job,
  key: keyOf(job, id),
  args,
  requestedAt: Date.now()
})

const offer = (request: RefreshQueue.RefreshRequest) =>
  Effect.flatMap(RefreshQueue.RefreshQueue, (queue) => queue.offer(request))

const tally = (answers: ReadonlyArray<RefreshQueue.Offered>) =>
  answers.reduce<Record<string, number>>((acc, answer) => ({ ...acc, [answer]: (acc[answer] ?? 0) + 1 }), {})

const timed = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.suspend(() => {
    const start = performance.now()
    return Effect.map(effect, (a) => [a, performance.now() - start] as const)
  })

/** A worker job whose fetch counts its calls; `gate`, when given, holds each fetch until opened. */
const countingJob = (name: string, options?: { readonly gate?: Effect.Effect<void> | undefined }) => {
  const calls: Array<{ readonly id: string; readonly at: number }> = []
  const make = Job.make({
    name,
    argsSchema: Schema.Tuple(Schema.String),
    schema: Schema.String,
    key: (id: string) => id,
    fetch: (id: string) =>
      Effect.sync(() => calls.push({ id, at: performance.now() })).pipe(
        Effect.tap(() => options?.gate ?? Effect.void),
        Effect.map((call) => `${id} v${call}`)
      ),
    lifetime: "1 minute"
  })
  return { calls, make }
}

for (const topology of RedisTest.topologies) {
  const nodes = "nodes" in topology.connection ? { nodes: topology.connection.nodes } : {}
  describe.skipIf(!topology.available)(`BullRefreshQueue (${topology.name})`, () => {
    RedisTest.assertNoUnhandledRejections()

    it.scopedLive(`a stale read in the app is refreshed by a worker: arguments decoded, written under the app's key (${topology.name})`, () =>
      Effect.gen(function*() {
        const queueName = unique("swr")
        const keyPrefix = RedisTest.makePrefix()
        const name = unique("day")
        const day = new Date("2024-05-01T00:00:00.000Z")
        const app = yield* startProcess({ queueName, keyPrefix, ...nodes })
        const worker = yield* startProcess({ queueName, keyPrefix, ...nodes })
        const appJob = yield* Job.make({
          name,
          argsSchema: Schema.Tuple(Schema.Date),
          schema: Schema.String,
          key: (d: Date) => `v1-${d.toISOString().slice(0, 10)}`,
          fetch: (_: Date) => Effect.succeed("fetched by the app"),
          lifetime: "50 millis"
        }).pipe(Effect.provide(app))
        // The worker's job is the same job: it accepts the request because the key is the one it
        // derives from the decoded arguments, and writes there, where the app reads.
        const fetched: Array<unknown> = []
        yield* Job.make({
          name,
          argsSchema: Schema.Tuple(Schema.Date),
          schema: Schema.String,
          key: (d: Date) => `v1-${d.toISOString().slice(0, 10)}`,
          fetch: (d: Date) =>
            Effect.sync(() => {
              fetched.push(d)
              return `${d.toISOString()} fetched by the worker`
            }),
          lifetime: "50 millis"
        }).pipe(Effect.provide(worker))
        yield* startWorker(worker, { queueName })

        yield* appJob.set([day], "old")
        yield* Effect.sleep("80 millis")
        const stale = yield* appJob.getWithOutcome(day)
        assert.deepStrictEqual([stale.status, stale.value], ["stale", "old"])
        const landed = yield* within(
          Effect.map(appJob.peek(day), (entry) => Option.isSome(entry) && entry.value.value !== "old")
        )
        const entry = Option.getOrThrow(yield* appJob.peek(day))
        assert.strictEqual(entry.value, "2024-05-01T00:00:00.000Z fetched by the worker")
        assert.strictEqual(fetched.length, 1)
        assert.instanceOf(fetched[0], Date, "the worker's fetch got a Date, decoded with the job's argsSchema")
        assert.strictEqual(yield* refreshes(name, "succeeded"), 1)
        // The worker released the lease the app took for the refresh.
        const store = Context.get(app, CacheStore.CacheStore)
        assert.isTrue(Option.isSome(yield* store.acquireLease(yield* appJob.key(day), "1 second")))
        log(
          `BullMQ refresh (${topology.name}): stale read → value from the worker in the app's store after ${
            landed.toFixed(0)
          } ms`
        )
      }))

    it.scopedLive(`duplicates collapse while a refresh waits or runs; once it completed, the next one is enqueued (${topology.name})`, () =>
      Effect.gen(function*() {
        const queueName = unique("dedup")
        const keyPrefix = RedisTest.makePrefix()
        const name = unique("item")
        const bull = yield* inspect(queueName, topology.name === "cluster")
        const app = yield* startProcess({ queueName, keyPrefix, ...nodes })
        const worker = yield* startProcess({ queueName, keyPrefix, ...nodes })
        const gate = yield* Deferred.make<void>()
        const job = countingJob(name, { gate: Deferred.await(gate) })
        yield* Effect.provide(job.make, worker)
        const id = "1"
        const key = keyOf(name, id) // ":" in keys is escaped in BullMQ ids

        // 100 concurrent offers for one key, nobody working yet: one BullMQ job.
        const first = yield* Effect.all(Array.from({ length: 100 }, () => offer(request(name, id, [id]))), {
          concurrency: "unbounded"
        }).pipe(Effect.provide(app))
        assert.deepStrictEqual(tally(first), { enqueued: 1, duplicate: 99 })
        assert.strictEqual((yield* counts(bull)).waiting, 1)

        // While it runs, more offers are duplicates too.
        yield* startWorker(worker, { queueName })
        yield* within(Effect.sync(() => job.calls.length === 1))
        const running = yield* Effect.all(Array.from({ length: 10 }, () => offer(request(name, id, [id]))), {
          concurrency: "unbounded"
        }).pipe(Effect.provide(app))
        assert.deepStrictEqual(tally(running), { duplicate: 10 })
        assert.strictEqual((yield* counts(bull)).active, 1)

        yield* Deferred.succeed(gate, undefined)
        const store = Context.get(app, CacheStore.CacheStore)
        yield* within(Effect.map(store.get(key, Schema.String), Option.isSome))
        yield* within(idle(bull)) // completed jobs are removed
        assert.strictEqual(job.calls.length, 1, "one fetch for 110 offers")

        // Completed: the next offer is a new job, and a new fetch.
        assert.strictEqual(yield* Effect.provide(offer(request(name, id, [id])), app), "enqueued")
        yield* within(Effect.sync(() => job.calls.length === 2))
        yield* within(
          Effect.map(store.get<string, string>(key, Schema.String), (e) => Option.isSome(e) && e.value.value === "1 v2")
        )
      }))

    it.scopedLive(`a failing refresh is retried with exponential back-off until it lands (${topology.name})`, () =>
      Effect.gen(function*() {
        const queueName = unique("retry")
        const keyPrefix = RedisTest.makePrefix()
        const name = unique("flaky")
        const bull = yield* inspect(queueName, topology.name === "cluster")
        const app = yield* startProcess({
          queueName,
          keyPrefix,
          attempts: 4,
          backoff: { initial: "150 millis" },
          ...nodes
        })
        const worker = yield* startProcess({ queueName, keyPrefix, ...nodes })
        const attempts: Array<number> = []
        yield* Job.make({
          name,
          argsSchema: Schema.Tuple(Schema.String),
          schema: Schema.String,
          key: (id: string) => id,
          fetch: (id: string) =>
            Effect.suspend(() => {
              attempts.push(performance.now())
              return attempts.length < 3
                ? Effect.fail("upstream down")
                : Effect.succeed(`${id} on attempt ${attempts.length}`)
            }),
          lifetime: "1 minute"
        }).pipe(Effect.provide(worker))
        yield* startWorker(worker, { queueName })

        assert.strictEqual(yield* Effect.provide(offer(request(name, "flaky-1", ["flaky-1"])), app), "enqueued")
        const store = Context.get(app, CacheStore.CacheStore)
        yield* within(Effect.map(store.get(keyOf(name, "flaky-1"), Schema.String), Option.isSome))
        assert.strictEqual(
          Option.getOrThrow(yield* store.get<string, string>(keyOf(name, "flaky-1"), Schema.String)).value,
          "flaky-1 on attempt 3"
        )
        assert.strictEqual(attempts.length, 3)
        const gaps = [attempts[1]! - attempts[0]!, attempts[2]! - attempts[1]!]
        // BullMQ waits 150 ms, then 300 ms (its delayed jobs are promoted on the worker's clock).
        assert.isAtLeast(gaps[0]!, 140)
        assert.isAtLeast(gaps[1]!, 290)
        assert.strictEqual(yield* refreshes(name, "failed"), 2)
        assert.strictEqual(yield* refreshes(name, "succeeded"), 1)
        yield* within(idle(bull))
        log(
          `BullMQ retries (${topology.name}): attempts ${gaps.map((gap) => `${gap.toFixed(0)} ms`).join(" and ")} apart`
        )
      }))
  })
}

describe.skipIf(!RedisTest.available)("BullRefreshQueue (real redis-server)", () => {
  RedisTest.assertNoUnhandledRejections()

  it.scopedLive("a request that can never run — unknown job, arguments that do not decode — fails at once, no retries", () =>
    Effect.gen(function*() {
      const queueName = unique("permanent")
      const keyPrefix = RedisTest.makePrefix()
      const name = unique("typed")
      const nobody = unique("nobody")
      const bull = yield* inspect(queueName)
      const app = yield* startProcess({ queueName, keyPrefix, attempts: 5, backoff: { initial: "100 millis" } })
      const worker = yield* startProcess({ queueName, keyPrefix })
      const job = countingJob(name)
      yield* Effect.provide(job.make, worker)
      yield* startWorker(worker, { queueName })

      const unknownBefore = yield* refreshes("<unknown>", "rejected")
      // The app knows neither job: requests for jobs it does not know are sent as they are.
      assert.strictEqual(yield* Effect.provide(offer(request(nobody, "k1", ["x"])), app), "enqueued")
      assert.strictEqual(yield* Effect.provide(offer(request(name, "k2", [42])), app), "enqueued")
      yield* within(Effect.map(counts(bull), (c) => c.failed === 2))
      const failed = yield* Effect.promise(() => bull.getFailed())
      const byName = Object.fromEntries(failed.map((job) => [job.name, job]))
      assert.strictEqual(byName[nobody]?.attemptsMade, 1)
      assert.match(byName[nobody]?.failedReason ?? "", /no job of that name/)
      assert.strictEqual(byName[name]?.attemptsMade, 1)
      assert.match(byName[name]?.failedReason ?? "", /do not decode/)
      assert.strictEqual(job.calls.length, 0)
      // rejected, counted under the job's name, or `<unknown>` for a name nobody registered
      assert.strictEqual((yield* refreshes("<unknown>", "rejected")) - unknownBefore, 1)
      assert.strictEqual(yield* refreshes(name, "rejected"), 1)
      // Nothing left to retry.
      yield* Effect.sleep("300 millis")
      const after = yield* counts(bull)
      assert.deepStrictEqual([after.waiting, after.delayed, after.active, after.failed], [0, 0, 0, 2])
    }))

  it.scopedLive("closing a worker waits for running refreshes, then interrupts the rest: their jobs run again", () =>
    Effect.gen(function*() {
      const queueName = unique("close")
      const keyPrefix = RedisTest.makePrefix()
      const name = unique("close")
      const bull = yield* inspect(queueName)
      const app = yield* startProcess({ queueName, keyPrefix, backoff: { initial: "100 millis" } })
      const started: Array<string> = []
      const first = yield* startProcess({ queueName, keyPrefix })
      yield* Job.make({
        name,
        argsSchema: Schema.Tuple(Schema.String),
        schema: Schema.String,
        key: (id: string) => id,
        fetch: (id: string): Effect.Effect<string> =>
          Effect.sync(() => started.push(id)).pipe(
            Effect.zipRight(id === "slow" ? Effect.sleep("300 millis") : Effect.never),
            Effect.as(`${id} by the first worker`)
          ),
        lifetime: "1 minute"
      }).pipe(Effect.provide(first))
      const workerScope = yield* Scope.make()
      yield* Layer.buildWithScope(
        BullRefreshQueue.layerWorker({ queueName, shutdownTimeout: "600 millis" }).pipe(
          Layer.provide(Layer.succeedContext(first))
        ),
        workerScope
      )
      yield* Effect.provide(
        Effect.all([offer(request(name, "slow", ["slow"])), offer(request(name, "stuck", ["stuck"]))]),
        app
      )
      yield* within(Effect.sync(() => started.length === 2))

      const [, closing] = yield* timed(Scope.close(workerScope, Exit.void))
      const store = Context.get(app, CacheStore.CacheStore)
      // The refresh that finished within the shutdown timeout landed; the other was interrupted.
      assert.strictEqual(
        Option.getOrThrow(yield* store.get<string, string>(keyOf(name, "slow"), Schema.String)).value,
        "slow by the first worker"
      )
      assert.isTrue(Option.isNone(yield* store.get(keyOf(name, "stuck"), Schema.String)))
      assert.isAtLeast(closing, 550)
      assert.isBelow(closing, 3_000)
      const left = yield* counts(bull)
      assert.strictEqual(left.waiting + left.delayed, 1, "the interrupted refresh waits for its retry")

      // Another worker picks the interrupted refresh up.
      const second = yield* startProcess({ queueName, keyPrefix })
      const job = countingJob(name)
      yield* Effect.provide(job.make, second)
      yield* startWorker(second, { queueName })
      yield* within(Effect.map(store.get(keyOf(name, "stuck"), Schema.String), Option.isSome))
      assert.deepStrictEqual(job.calls.map((call) => call.id), ["stuck"])
      log(`BullMQ worker shutdown: closed in ${closing.toFixed(0)} ms (shutdownTimeout 600 ms, one refresh stuck)`)
    }))

  it.scopedLive(
    "a worker process killed mid-job: another worker runs the job again and the refresh lands",
    () =>
      Effect.gen(function*() {
        const queueName = unique("kill")
        const keyPrefix = RedisTest.makePrefix()
        const name = unique("sku")
        const bull = yield* inspect(queueName)
        const app = yield* startProcess({ queueName, keyPrefix })
        const appJob = yield* Job.make({
          name,
          argsSchema: Schema.Tuple(Schema.String),
          schema: Schema.String,
          key: (id: string) => id,
          fetch: (id: string) => Effect.succeed(`${id} fetched by the app`),
          lifetime: "1 minute"
        }).pipe(Effect.provide(app))

        const child = yield* Fixture.spawn("bullWorker", {
          REDIS_HOST: RedisTest.host,
          REDIS_PORT: String(RedisTest.port),
          QUEUE: queueName,
          KEY_PREFIX: keyPrefix,
          JOB: name
        })
        const started = yield* timed(child.line("ready", "20 seconds"))
        yield* appJob.refreshInBackground("A-1")
        yield* child.line("fetching A-1", "10 seconds")
        assert.strictEqual((yield* counts(bull)).active, 1)

        // A second worker, in this process, while the first still holds the job.
        const second = yield* startProcess({ queueName, keyPrefix })
        const job = countingJob(name)
        yield* Effect.provide(job.make, second)
        yield* startWorker(second, { queueName, lockDuration: "1 second", stalledInterval: "500 millis" })
        yield* Effect.sleep("700 millis")
        assert.strictEqual(job.calls.length, 0, "the job is held by the child's worker")

        const killed = performance.now()
        yield* child.kill
        const store = Context.get(app, CacheStore.CacheStore)
        const landed = yield* within(Effect.map(appJob.peek("A-1"), Option.isSome), 15)
        assert.strictEqual(Option.getOrThrow(yield* appJob.peek("A-1")).value, "A-1 v1")
        assert.strictEqual(job.calls.length, 1)
        yield* within(idle(bull))
        assert.isTrue(Option.isSome(yield* store.acquireLease("A-1", "1 second")), "the lease was released")
        assert.deepStrictEqual(child.errors(), [], "the child wrote nothing to stderr")
        log(
          `BullMQ kill: child worker ready in ${started[1].toFixed(0)} ms; killed mid-fetch (SIGKILL), ` +
            `the refresh landed through the second worker ${(performance.now() - killed).toFixed(0)} ms later ` +
            `(polled ${landed.toFixed(0)} ms)`
        )
      }),
    { timeout: 60_000 }
  )

  it.scopedLive("a worker rides out a Redis restart: the next refresh after it runs", () =>
    Effect.gen(function*() {
      const server = yield* RedisTest.privateServer
      const queueName = unique("restart")
      const keyPrefix = RedisTest.makePrefix()
      const name = unique("restart")
      const options = { port: server.port, queueName, keyPrefix, commandTimeout: "300 millis" } as const
      const app = yield* startProcess(options)
      const worker = yield* startProcess(options)
      const job = countingJob(name)
      yield* Effect.provide(job.make, worker)
      yield* startWorker(worker, { queueName })
      const store = Context.get(app, CacheStore.CacheStore)
      assert.strictEqual(yield* Effect.provide(offer(request(name, "before", ["before"])), app), "enqueued")
      yield* within(Effect.map(store.get(keyOf(name, "before"), Schema.String), Option.isSome))

      yield* server.stop
      yield* Effect.sleep("500 millis")
      yield* server.start
      const restarted = performance.now()
      yield* within(Effect.map(Effect.either(store.get("ready?")), (result) => result._tag === "Right"))
      assert.strictEqual(yield* Effect.provide(offer(request(name, "after", ["after"])), app), "enqueued")
      yield* within(Effect.map(store.get(keyOf(name, "after"), Schema.String), Option.isSome), 20)
      assert.deepStrictEqual(job.calls.map((call) => call.id), ["before", "after"])
      log(
        `BullMQ worker after a Redis restart: refresh landed ${
          (performance.now() - restarted).toFixed(0)
        } ms after the restart`
      )
    }), { timeout: 60_000 })

  it.scopedLive(
    "a job waits for its process's own Redis connection: BullMQ's back first, the refresh still lands",
    () =>
      Effect.gen(function*() {
        const queueName = unique("store-down")
        const keyPrefix = RedisTest.makePrefix()
        const name = unique("store-down")
        const app = yield* startProcess({ queueName, keyPrefix })
        // The worker process's store connection comes back 1 s after it is lost; BullMQ's stay up.
        const worker = yield* startProcess({ queueName, keyPrefix, client: { retryStrategy: () => 1_000 } })
        const job = countingJob(name)
        yield* Effect.provide(job.make, worker)
        yield* startWorker(worker, { queueName })
        const redis = Context.get(worker, RedisClient.RedisClient)
        const id = yield* redis.use("client", (client) => client.client("ID"))
        const admin = yield* RedisTest.connect
        yield* Effect.promise(() => admin.client("KILL", "ID", String(id)))
        yield* within(Effect.sync(() => redis.client.status !== "ready"))
        const lost = performance.now()
        assert.strictEqual(yield* Effect.provide(offer(request(name, "k", ["k"])), app), "enqueued")
        const store = Context.get(app, CacheStore.CacheStore)
        yield* within(Effect.map(store.get(keyOf(name, "k"), Schema.String), Option.isSome))
        const landed = performance.now() - lost
        assert.deepStrictEqual(job.calls.map((call) => call.id), ["k"])
        assert.isAtLeast(job.calls[0]!.at - lost, 900, "the refresh ran once the store's connection was back")
        log(`BullMQ worker whose store connection was down: refresh landed ${landed.toFixed(0)} ms after the loss`)
      }),
    { timeout: 30_000 }
  )

  it.scopedLive("a job whose process's Redis connection stays down past connectTimeout is not run but retried", () => {
    const lines: Array<string> = []
    const capture = Logger.make(({ annotations, message }) => {
      lines.push([String(message), ...[...annotations].map(([k, v]) => `${k}=${String(v)}`)].join(" "))
    })
    return Effect.gen(function*() {
      const queueName = unique("store-late")
      const keyPrefix = RedisTest.makePrefix()
      const name = unique("store-late")
      const app = yield* startProcess({ queueName, keyPrefix, backoff: { initial: "1 second" } })
      // Back 600 ms after it is lost: after the job's 200 ms wait, before its retry 1 s later.
      const worker = yield* startProcess({ queueName, keyPrefix, client: { retryStrategy: () => 600 } })
      const job = countingJob(name)
      yield* Effect.provide(job.make, worker)
      yield* startWorker(worker, { queueName, connectTimeout: "200 millis" }).pipe(
        Effect.provide(Logger.replace(Logger.defaultLogger, capture))
      )
      const redis = Context.get(worker, RedisClient.RedisClient)
      const id = yield* redis.use("client", (client) => client.client("ID"))
      const admin = yield* RedisTest.connect
      yield* Effect.promise(() => admin.client("KILL", "ID", String(id)))
      yield* within(Effect.sync(() => redis.client.status !== "ready"))
      const lost = performance.now()
      assert.strictEqual(yield* Effect.provide(offer(request(name, "k", ["k"])), app), "enqueued")
      const store = Context.get(app, CacheStore.CacheStore)
      yield* within(Effect.map(store.get(keyOf(name, "k"), Schema.String), Option.isSome))
      assert.deepStrictEqual(job.calls.map((call) => call.id), ["k"], "run once, on the retry")
      assert.isAtLeast(job.calls[0]!.at - lost, 1_000, "after the retry's back-off")
      const warned = lines.filter((line) => line.includes("Redis connection was not ready within 200ms"))
      assert.strictEqual(warned.length, 1)
      assert.include(warned[0], `job=${name}`)
    })
  }, { timeout: 30_000 })

  it.scopedLive("a worker built while Redis is down starts once it is up: the refresh lands, no restart", () => {
    const lines: Array<string> = []
    const capture = Logger.make(({ annotations, message }) => {
      lines.push([String(message), ...[...annotations].map(([k, v]) => `${k}=${String(v)}`)].join(" "))
    })
    return Effect.gen(function*() {
      const server = yield* RedisTest.privateServerDown
      const queueName = unique("late-redis")
      const keyPrefix = RedisTest.makePrefix()
      const name = unique("late-redis")
      const options = { port: server.port, queueName, keyPrefix } as const
      const app = yield* startProcess(options)
      const worker = yield* startProcess(options)
      const job = countingJob(name)
      yield* Effect.provide(job.make, worker)
      // Shorter than the wait for Redis below: a worker that waited for it here would fail.
      const workerOptions = { queueName, connectTimeout: "300 millis" } as const
      const [, built] = yield* timed(
        startWorker(worker, workerOptions).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, capture)))
      )
      assert.isBelow(built, 250, "the worker layer builds at once")
      // A second worker, released while Redis is still down.
      const releasedScope = yield* Scope.make()
      yield* Layer.buildWithScope(
        BullRefreshQueue.layerWorker(workerOptions).pipe(Layer.provide(Layer.succeedContext(worker))),
        releasedScope
      )
      yield* Effect.sleep("2 seconds")
      const [, release] = yield* timed(Scope.close(releasedScope, Exit.void))
      assert.isBelow(release, 250, "releasing a worker that never started does not hang")

      yield* server.start
      const started = performance.now()
      yield* within(
        Effect.map(Effect.provide(offer(request(name, "k", ["k"])), app), (offered) => offered !== "dropped")
      )
      const store = Context.get(app, CacheStore.CacheStore)
      yield* within(Effect.map(store.get(keyOf(name, "k"), Schema.String), Option.isSome))
      const landed = performance.now() - started
      assert.deepStrictEqual(job.calls.map((call) => call.id), ["k"])
      const waiting = lines.filter((line) => line.includes("Redis is not reachable, the BullMQ refresh worker starts"))
      assert.strictEqual(waiting.length, 1, "one warning while waiting")
      assert.include(waiting[0], `queue=${queueName}`)
      log(`BullMQ worker built while Redis was down: refresh landed ${landed.toFixed(0)} ms after Redis started`)
    })
  }, { timeout: 30_000 })

  it.scopedLive("Redis down or hung when offering: the fallback, within the command timeout, counted; no hang", () =>
    Effect.gen(function*() {
      const server = yield* RedisTest.privateServer
      const queueName = unique("down")
      const keyPrefix = RedisTest.makePrefix()
      const name = unique("down")
      const options = { port: server.port, queueName, keyPrefix, commandTimeout: "300 millis" } as const
      const skip = yield* startProcess(options)
      const sync = yield* startProcess({ ...options, overflow: "refresh-synchronously" })
      // A third app, to be released while Redis is down.
      const releasedScope = yield* Scope.make()
      yield* Layer.buildWithScope(processLayer(options), releasedScope)
      assert.strictEqual(yield* Effect.provide(offer(request(name, "k", [])), skip), "enqueued")
      const droppedBefore = yield* refreshes(name, "dropped")

      yield* server.stop
      const [dropped, downSkip] = yield* timed(Effect.provide(offer(request(name, "k2", [])), skip))
      const [synchronously, downSync] = yield* timed(Effect.provide(offer(request(name, "k3", [])), sync))
      assert.strictEqual(dropped, "dropped")
      assert.strictEqual(synchronously, "run-synchronously")
      assert.isBelow(downSkip, 250)
      assert.isBelow(downSync, 250)
      assert.strictEqual((yield* refreshes(name, "dropped")) - droppedBefore, 1, "dropped, counted once")
      const [, release] = yield* timed(Scope.close(releasedScope, Exit.void))
      assert.isBelow(release, 1_000, "releasing the layer while Redis is down does not hang")

      yield* server.start
      const store = Context.get(skip, CacheStore.CacheStore)
      yield* within(Effect.map(Effect.either(store.get("ready?")), (result) => result._tag === "Right"))
      assert.strictEqual(yield* Effect.provide(offer(request(name, "k4", [])), skip), "enqueued")
      yield* server.pause
      const [hung, hungMillis] = yield* timed(Effect.provide(offer(request(name, "k5", [])), skip))
      yield* server.resume
      assert.strictEqual(hung, "dropped")
      assert.isAtLeast(hungMillis, 290)
      assert.isBelow(hungMillis, 1_000)
      assert.strictEqual((yield* refreshes(name, "dropped")) - droppedBefore, 2)
      log(
        `BullMQ offer with Redis down: fallback after ${downSkip.toFixed(1)} ms (skip), ${downSync.toFixed(1)} ms ` +
          `(refresh-synchronously); layer released in ${release.toFixed(0)} ms; Redis hung: fallback after ` +
          `${hungMillis.toFixed(0)} ms (commandTimeout 300 ms)`
      )
    }))
})

describe.skipIf(!RedisTest.available)("BullRefreshQueue: a refresh request writes only what its job owns", () => {
  RedisTest.assertNoUnhandledRejections()

  it.scopedLive("forged jobs added to the queue's Redis are rejected: unrecoverable, counted, logged without payload", () => {
    const lines: Array<string> = []
    const capture = Logger.make(({ annotations, message }) => {
      lines.push([String(message), ...[...annotations].map(([k, v]) => `${k}=${String(v)}`)].join(" "))
    })
    return Effect.gen(function*() {
      const queueName = unique("forged")
      const keyPrefix = RedisTest.makePrefix()
      const price = unique("price")
      const profile = unique("profile")
      const bull = yield* inspect(queueName)
      const worker = yield* startProcess({ queueName, keyPrefix, maxPayloadBytes: 2_048 })
      const prices = countingJob(price)
      yield* Effect.provide(prices.make, worker)
      const profiles = yield* Effect.provide(
        Job.make({
          name: profile,
          argsSchema: Schema.Tuple(Schema.Number),
          schema: Schema.String,
          fetch: (id: number) => Effect.succeed(`profile ${id}`),
          lifetime: "1 minute"
        }),
        worker
      )
      yield* Effect.provide(profiles.set([1], "the real profile"), worker)
      const profileKey = yield* profiles.key(1)
      yield* startWorker(worker, { queueName, maxPayloadBytes: 2_048 }).pipe(
        Effect.provide(Logger.replace(Logger.defaultLogger, capture))
      )
      const rejectedBefore = yield* refreshes(price, "rejected")
      const unknownBefore = yield* refreshes("<unknown>", "rejected")
      const forged = (name: string, data: Record<string, unknown>) =>
        Effect.promise(() => bull.add(name, { requestedAt: Date.now(), ...data }))

      // another job's key, a key no job owns, a key of the job for other arguments
      yield* forged(price, { job: price, key: profileKey, args: ["ATTACKER"] })
      yield* forged(price, { job: price, key: "admin:flags:enabled", args: ["ATTACKER"] })
      yield* forged(price, { job: price, key: keyOf(price, "A-1"), args: ["ATTACKER"] })
      // the BullMQ job name and data.job disagree; a payload past maxPayloadBytes; a made-up job
      yield* forged(price, { job: profile, key: profileKey, args: [1] })
      yield* forged(price, { job: price, key: keyOf(price, "big"), args: ["ATTACKER".repeat(1_000)] })
      yield* forged("ATTACKER-job", { job: "ATTACKER-job", key: "admin:flags:enabled", args: [] })
      // and one honest request, which runs
      yield* forged(price, { job: price, key: keyOf(price, "A-1"), args: ["A-1"] })

      yield* within(Effect.map(counts(bull), (c) => c.failed === 6 && c.waiting + c.active === 0))
      const failed = yield* Effect.promise(() => bull.getFailed())
      assert.isTrue(failed.every((job) => job.attemptsMade === 1), "never retried")
      assert.isFalse(failed.some((job) => (job.failedReason ?? "").includes("ATTACKER")))
      assert.deepStrictEqual(prices.calls.map((call) => call.id), ["A-1"])

      const store = Context.get(worker, CacheStore.CacheStore)
      assert.strictEqual(Option.getOrThrow(yield* profiles.peek(1)).value, "the real profile")
      assert.isTrue(Option.isNone(yield* store.get("admin:flags:enabled")))
      assert.isTrue(Option.isNone(yield* store.get(keyOf(price, "big"))))
      assert.strictEqual(
        Option.getOrThrow(yield* store.get<string, string>(keyOf(price, "A-1"), Schema.String)).value,
        "A-1 v1"
      )

      assert.strictEqual((yield* refreshes(price, "rejected")) - rejectedBefore, 5)
      assert.strictEqual((yield* refreshes("<unknown>", "rejected")) - unknownBefore, 1)
      assert.isTrue(lines.some((line) => line.includes("refresh request rejected")))
      assert.isFalse(lines.some((line) => line.includes("ATTACKER")), "no payload in any log line")
      assert.isFalse(lines.some((line) => line.includes(profileKey) || line.includes("admin:flags")))
    })
  })
})
