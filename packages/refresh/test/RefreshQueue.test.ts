import { assert, describe, it } from "@effect/vitest"
import { CacheStore } from "@stalewise/core"
import { Job, JobRegistry, RefreshQueue } from "@stalewise/refresh"
import type { Duration, Scope } from "effect"
import { Effect, Fiber, Layer, Option, Schema, Supervisor, TestClock } from "effect"
import {
  captureLogs,
  eventually,
  makeLostQueue,
  makeUpstream,
  queueDepth,
  refreshes,
  settle,
  stored,
  unique,
  withEnv
} from "./utils.js"

const request = (job: string, key: string): RefreshQueue.RefreshRequest => ({ job, key, args: [], requestedAt: 0 })

/**
 * Registers a job whose refreshes wait on a gate, recording how many run at once.
 */
const gatedJob = (options?: { readonly sleep?: Duration.DurationInput }) =>
  Effect.gen(function*() {
    const registry = yield* JobRegistry.JobRegistry
    const gate = yield* Effect.makeLatch(options?.sleep !== undefined)
    const name = unique()
    const state = { running: 0, max: 0, done: 0, interrupted: 0, ran: [] as Array<string> }
    yield* registry.register({
      name,
      serializable: false,
      run: (request) =>
        Effect.gen(function*() {
          state.ran.push(request.key)
          state.running++
          state.max = Math.max(state.max, state.running)
          if (options?.sleep !== undefined) yield* Effect.sleep(options.sleep)
          yield* gate.await
          state.running--
          state.done++
          return "succeeded" as const
        }).pipe(Effect.onInterrupt(() => Effect.sync(() => state.interrupted++)))
    })
    return { name, gate, state }
  })

const usingQueue = <A, E>(
  layer: Layer.Layer<RefreshQueue.RefreshQueue | JobRegistry.JobRegistry, unknown>,
  body: Effect.Effect<A, E, RefreshQueue.RefreshQueue | JobRegistry.JobRegistry | Scope.Scope>
) => body.pipe(Effect.scoped, Effect.provide(layer))

describe("RefreshQueue.layerFibers", () => {
  it.effect("runs each request in a fiber, deduplicated by key", () =>
    usingQueue(
      RefreshQueue.layerFibers(),
      Effect.gen(function*() {
        const queue = yield* RefreshQueue.RefreshQueue
        const job = yield* gatedJob()
        assert.strictEqual(yield* queue.offer(request(job.name, "k1")), "enqueued")
        assert.strictEqual(yield* queue.offer(request(job.name, "k1")), "duplicate")
        assert.strictEqual(yield* queue.offer(request(job.name, "k2")), "enqueued")
        yield* job.gate.open
        yield* eventually(() => job.state.done === 2)
        assert.deepStrictEqual(job.state.ran, ["k1", "k2"])
        yield* eventually(Effect.map(queue.offer(request(job.name, "k1")), (offered) => offered === "enqueued"))
      })
    ))

  it.effect("runs at most `concurrency` refreshes at once", () =>
    usingQueue(
      RefreshQueue.layerFibers({ concurrency: 2 }),
      Effect.gen(function*() {
        const queue = yield* RefreshQueue.RefreshQueue
        const job = yield* gatedJob()
        for (let i = 0; i < 10; i++) assert.strictEqual(yield* queue.offer(request(job.name, `k${i}`)), "enqueued")
        yield* eventually(() => job.state.running === 2)
        yield* settle
        assert.strictEqual(job.state.ran.length, 2)
        yield* job.gate.open
        yield* eventually(() => job.state.done === 10)
        assert.strictEqual(job.state.max, 2)
      })
    ))

  it.effect("beyond capacity: skip drops the request, counted and logged; refresh-synchronously hands it back", () => {
    const logs = captureLogs()
    return Effect.gen(function*() {
      yield* usingQueue(
        RefreshQueue.layerFibers({ capacity: 1, overflow: "skip" }),
        Effect.gen(function*() {
          const queue = yield* RefreshQueue.RefreshQueue
          const job = yield* gatedJob()
          assert.strictEqual(yield* queue.offer(request(job.name, "k1")), "enqueued")
          assert.strictEqual(yield* queue.offer(request(job.name, "k2")), "dropped")
          assert.strictEqual(yield* refreshes(job.name, "dropped"), 1)
          assert.isTrue(logs.messages.some((m) => m.includes("refresh dropped") && m.includes(`job=${job.name}`)))
        })
      )
      yield* usingQueue(
        RefreshQueue.layerFibers({ capacity: 1, overflow: "refresh-synchronously" }),
        Effect.gen(function*() {
          const queue = yield* RefreshQueue.RefreshQueue
          const job = yield* gatedJob()
          assert.strictEqual(yield* queue.offer(request(job.name, "k1")), "enqueued")
          assert.strictEqual(yield* queue.offer(request(job.name, "k2")), "run-synchronously")
          assert.strictEqual(yield* refreshes(job.name, "dropped"), 0)
        })
      )
    }).pipe(Effect.provide(logs.layer))
  })

  it.effect("closing the scope interrupts running refreshes and leaves no fiber behind", () =>
    Effect.gen(function*() {
      const supervisor = yield* Supervisor.track
      const job = yield* usingQueue(
        RefreshQueue.layerFibers(),
        Effect.gen(function*() {
          const queue = yield* RefreshQueue.RefreshQueue
          const job = yield* gatedJob()
          yield* queue.offer(request(job.name, "k1"))
          yield* queue.offer(request(job.name, "k2"))
          yield* eventually(() => job.state.running === 2)
          assert.isAtLeast((yield* supervisor.value).length, 2)
          return job
        })
      ).pipe(Effect.supervised(supervisor))
      assert.deepStrictEqual([job.state.interrupted, job.state.done], [2, 0])
      yield* eventually(Effect.map(supervisor.value, (fibers) => fibers.length === 0))
    }))

  it.effect("with shutdown: drain, closing the scope waits for running refreshes", () =>
    Effect.gen(function*() {
      // The job is registered in a scope that outlives the queue's.
      const job = yield* gatedJob({ sleep: "1 second" })
      const region = yield* Effect.fork(Effect.scoped(Effect.gen(function*() {
        const queue = yield* RefreshQueue.makeFibers({ shutdown: "drain" })
        yield* queue.offer(request(job.name, "k1"))
        yield* eventually(() => job.state.running === 1)
      })))
      yield* settle
      assert.isNull(region.unsafePoll())
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(region)
      assert.deepStrictEqual([job.state.done, job.state.interrupted], [1, 0])
    }).pipe(Effect.scoped, Effect.provide(JobRegistry.layer)))

  it.effect("rejects invalid options with PolicyError", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Effect.scoped(Layer.build(RefreshQueue.layerFibers({ concurrency: 0 }))))
      assert.deepStrictEqual([error._tag, error.option], ["PolicyError", "concurrency"])
    }))
})

describe("RefreshQueue.layerQueue", () => {
  it.effect("a bounded queue with workers: dedup by key, depth published, overflow dropped and counted", () => {
    const name = unique("queue")
    return usingQueue(
      RefreshQueue.layerQueue({ capacity: 2, workers: 1, name }),
      Effect.gen(function*() {
        const queue = yield* RefreshQueue.RefreshQueue
        const job = yield* gatedJob()
        assert.strictEqual(yield* queue.offer(request(job.name, "k1")), "enqueued")
        yield* eventually(() => job.state.running === 1)
        assert.strictEqual(yield* queue.offer(request(job.name, "k2")), "enqueued")
        assert.strictEqual(yield* queue.offer(request(job.name, "k3")), "enqueued")
        assert.strictEqual(yield* queueDepth(name), 2)
        assert.strictEqual(yield* queue.offer(request(job.name, "k1")), "duplicate")
        assert.strictEqual(yield* queue.offer(request(job.name, "k2")), "duplicate")
        assert.strictEqual(yield* queue.offer(request(job.name, "k4")), "dropped")
        assert.strictEqual(yield* refreshes(job.name, "dropped"), 1)
        yield* job.gate.open
        yield* eventually(() => job.state.done === 3)
        assert.deepStrictEqual(job.state.ran, ["k1", "k2", "k3"])
        assert.strictEqual(job.state.max, 1)
        assert.strictEqual(yield* queueDepth(name), 0)
      })
    )
  })

  it.effect("overflow refresh-synchronously hands the request back to the caller", () =>
    usingQueue(
      RefreshQueue.layerQueue({ capacity: 1, workers: 1, overflow: "refresh-synchronously" }),
      Effect.gen(function*() {
        const queue = yield* RefreshQueue.RefreshQueue
        const job = yield* gatedJob()
        yield* queue.offer(request(job.name, "k1"))
        yield* eventually(() => job.state.running === 1)
        assert.strictEqual(yield* queue.offer(request(job.name, "k2")), "enqueued")
        assert.strictEqual(yield* queue.offer(request(job.name, "k3")), "run-synchronously")
        assert.strictEqual(yield* refreshes(job.name, "dropped"), 0)
      })
    ))

  it.effect("closing the scope stops the workers; requests still queued are counted as dropped and logged", () => {
    const logs = captureLogs()
    return Effect.gen(function*() {
      const supervisor = yield* Supervisor.track
      const job = yield* usingQueue(
        RefreshQueue.layerQueue({ workers: 1 }),
        Effect.gen(function*() {
          const queue = yield* RefreshQueue.RefreshQueue
          const job = yield* gatedJob()
          yield* queue.offer(request(job.name, "k1"))
          yield* eventually(() => job.state.running === 1)
          yield* queue.offer(request(job.name, "k2"))
          yield* queue.offer(request(job.name, "k3"))
          return job
        })
      ).pipe(Effect.supervised(supervisor))
      assert.deepStrictEqual([job.state.interrupted, job.state.done, job.state.ran.length], [1, 0, 1])
      assert.strictEqual(yield* refreshes(job.name, "dropped"), 2)
      // both counted; the warnings are rate-limited per job: one line within the interval
      assert.strictEqual(logs.messages.filter((m) => m.includes("shut down before it ran")).length, 1)
      yield* eventually(Effect.map(supervisor.value, (fibers) => fibers.length === 0))
    }).pipe(Effect.provide(logs.layer))
  })

  it.effect("with shutdown: drain, closing the scope runs what is queued first", () =>
    Effect.gen(function*() {
      const job = yield* gatedJob({ sleep: "1 second" })
      const region = yield* Effect.fork(Effect.scoped(Effect.gen(function*() {
        const queue = yield* RefreshQueue.makeQueue({ workers: 1, shutdown: "drain" })
        yield* queue.offer(request(job.name, "k1"))
        yield* queue.offer(request(job.name, "k2"))
        yield* eventually(() => job.state.running === 1)
      })))
      yield* settle
      yield* TestClock.adjust("1 second")
      yield* eventually(() => job.state.done === 1)
      yield* settle
      assert.isNull(region.unsafePoll())
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(region)
      assert.deepStrictEqual([job.state.done, job.state.interrupted], [2, 0])
    }).pipe(Effect.scoped, Effect.provide(JobRegistry.layer)))

  it.effect("a request for a job nobody registered is dropped, counted and logged", () => {
    const logs = captureLogs()
    const name = unique("ghost")
    return usingQueue(
      RefreshQueue.layerQueue(),
      Effect.gen(function*() {
        const queue = yield* RefreshQueue.RefreshQueue
        assert.strictEqual(yield* queue.offer(request(name, "k1")), "enqueued")
        yield* eventually(Effect.map(refreshes(name, "dropped"), (n) => n === 1))
        assert.isTrue(logs.messages.some((m) => m.includes("no job of that name") && m.includes(`job=${name}`)))
      })
    ).pipe(Effect.provide(logs.layer))
  })

  it.effect("rejects invalid options with PolicyError", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Effect.scoped(Layer.build(RefreshQueue.layerQueue({ workers: 1.5 }))))
      assert.deepStrictEqual([error._tag, error.option], ["PolicyError", "workers"])
    }))
})

describe("RefreshQueue with jobs", () => {
  /** Fills a one-slot queue: one refresh running (gated), one waiting. */
  const fill = Effect.gen(function*() {
    const queue = yield* RefreshQueue.RefreshQueue
    const blocker = yield* gatedJob()
    yield* queue.offer(request(blocker.name, "b1"))
    yield* eventually(() => blocker.state.running === 1)
    yield* queue.offer(request(blocker.name, "b2"))
    return blocker
  })

  it.effect("a full queue with refresh-synchronously: the stale read refreshes in the caller and answers fresh", () => {
    const upstream = makeUpstream()
    return withEnv(
      Layer.merge(
        CacheStore.layerMemory,
        RefreshQueue.layerQueue({ capacity: 1, workers: 1, overflow: "refresh-synchronously" })
      ),
      Effect.gen(function*() {
        const job = yield* Job.make({ name: unique(), fetch: upstream.fetch, lifetime: "1 minute" })
        yield* job.get("a")
        yield* fill
        yield* TestClock.adjust("1 minute")
        const outcome = yield* job.getWithOutcome("a")
        assert.deepStrictEqual([outcome.status, outcome.value, outcome.fetchedSynchronously], ["miss", "a#2", true])
        assert.strictEqual((yield* job.getWithOutcome("a")).status, "hit")
      })
    )
  })

  it.effect("a full queue with skip: the stale value is served, the drop counted, and the lease freed for the next read", () => {
    const upstream = makeUpstream()
    return withEnv(
      Layer.merge(CacheStore.layerMemory, RefreshQueue.layerQueue({ capacity: 1, workers: 1, overflow: "skip" })),
      Effect.gen(function*() {
        const job = yield* Job.make({ name: unique(), fetch: upstream.fetch, lifetime: "1 minute" })
        yield* job.get("a")
        const blocker = yield* fill
        yield* TestClock.adjust("1 minute")
        const outcome = yield* job.getWithOutcome("a")
        assert.deepStrictEqual([outcome.status, outcome.value], ["stale", "a#1"])
        assert.strictEqual(yield* refreshes(job.name, "dropped"), 1)
        yield* blocker.gate.open
        yield* eventually(() => blocker.state.done === 2)
        // No need to wait out the 60 s lease: the dropped request gave it back.
        assert.strictEqual(yield* job.get("a"), "a#1")
        yield* eventually(Effect.map(stored(job, "a"), (entry) => entry?.value === "a#2"))
      })
    )
  })

  it.effect("a request is plain data: it survives JSON, and the job found by name writes under the caller's key", () => {
    const lost = makeLostQueue()
    let calls = 0
    return withEnv(
      Layer.merge(CacheStore.layerMemory, lost.layer),
      Effect.gen(function*() {
        const job = yield* Job.make({
          name: unique(),
          argsSchema: Schema.Tuple(Schema.Date),
          fetch: (day: Date) => Effect.sync(() => `${day.toISOString().slice(0, 10)} v${++calls}`),
          lifetime: "1 minute"
        })
        const day = new Date("2024-05-01T00:00:00.000Z")
        yield* job.get(day)
        yield* TestClock.adjust("1 minute")
        yield* job.get(day)
        assert.strictEqual(lost.offered.length, 1)
        const wire = JSON.stringify(Schema.encodeSync(RefreshQueue.RefreshRequest)(lost.offered[0]!))
        const received = Schema.decodeUnknownSync(RefreshQueue.RefreshRequest)(JSON.parse(wire))
        assert.deepStrictEqual(received.args, ["2024-05-01T00:00:00.000Z"])
        assert.strictEqual(received.key, yield* job.key(day))
        assert.strictEqual(yield* JobRegistry.run(received), "succeeded")
        assert.strictEqual((yield* stored(job, day))?.value, "2024-05-01 v2")

        // A request whose arguments do not decode fails with JobError InvalidArgs.
        const error = yield* Effect.flip(JobRegistry.run({ ...received, args: ["not a date"] }))
        assert.deepStrictEqual([error._tag, error.reason], ["JobError", "InvalidArgs"])
        // A request for an unknown job fails with JobError UnknownJob.
        const unknown = yield* Effect.flip(JobRegistry.run({ ...received, job: "nobody" }))
        assert.strictEqual(unknown.reason, "UnknownJob")
        assert.isTrue(Option.isSome(yield* job.peek(day)))
      })
    )
  })
})
