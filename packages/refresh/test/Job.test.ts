import { assert, describe, it } from "@effect/vitest"
import { CacheStore } from "@stalewise/core"
import { Job, JobRegistry, RefreshQueue } from "@stalewise/refresh"
import { Duration, Effect, Fiber, Layer, Option, Schema, Supervisor, TestClock } from "effect"
import {
  captureLogs,
  eventually,
  FibersEnv,
  layerLaxStore,
  makeLostQueue,
  makeUpstream,
  outcomes,
  refreshes,
  settle,
  stored,
  unique,
  UpstreamError,
  withEnv
} from "./utils.js"

const minutes = (n: number) => Duration.minutes(n)
const millis = (n: number) => Duration.millis(n)

describe("Job: the time rules", () => {
  it.effect("a value is a hit until lifetime, stale at lifetime, and one refresh replaces it", () => {
    const upstream = makeUpstream()
    return withEnv(
      FibersEnv,
      Effect.gen(function*() {
        const job = yield* Job.make({
          name: unique(),
          fetch: upstream.fetch,
          lifetime: "10 minutes",
          timeToLive: "1 hour"
        })
        const first = yield* job.getWithOutcome("a")
        assert.deepStrictEqual([first.status, first.value, first.fetchedSynchronously], ["miss", "a#1", true])

        yield* TestClock.adjust(millis(10 * 60_000 - 1))
        const hit = yield* job.getWithOutcome("a")
        assert.deepStrictEqual([hit.status, hit.value, hit.fetchedSynchronously], ["hit", "a#1", false])
        assert.strictEqual(Duration.toMillis(hit.age), 10 * 60_000 - 1)
        yield* settle
        assert.strictEqual(upstream.state.calls, 1)

        yield* TestClock.adjust(millis(1))
        const stale = yield* job.getWithOutcome("a")
        assert.deepStrictEqual([stale.status, stale.value, stale.fetchedSynchronously], ["stale", "a#1", false])
        assert.strictEqual(Duration.toMillis(stale.age), 10 * 60_000)

        yield* eventually(Effect.map(stored(job, "a"), (entry) => entry?.value === "a#2"))
        const fresh = yield* job.getWithOutcome("a")
        assert.deepStrictEqual([fresh.status, fresh.value], ["hit", "a#2"])
        assert.strictEqual(upstream.state.calls, 2)
      })
    )
  })

  for (const [store, layer] of [["memory", CacheStore.layerMemory], ["lax", layerLaxStore]] as const) {
    it.effect(`stale until timeToLive, a miss at timeToLive, fetched synchronously (${store} store)`, () => {
      const upstream = makeUpstream()
      const lost = makeLostQueue()
      return withEnv(
        Layer.merge(layer, lost.layer),
        Effect.gen(function*() {
          const job = yield* Job.make({
            name: unique(),
            fetch: upstream.fetch,
            lifetime: "1 minute",
            timeToLive: "1 hour"
          })
          yield* job.get("a")
          yield* TestClock.adjust(millis(60 * 60_000 - 1))
          const stale = yield* job.getWithOutcome("a")
          assert.deepStrictEqual([stale.status, stale.value], ["stale", "a#1"])
          yield* TestClock.adjust(millis(1))
          const miss = yield* job.getWithOutcome("a")
          assert.deepStrictEqual([miss.status, miss.value, miss.fetchedSynchronously], ["miss", "a#2", true])
        })
      )
    })
  }

  it.effect("past syncRefreshAfter a stale read refreshes synchronously; just before it, in the background", () => {
    const upstream = makeUpstream()
    const lost = makeLostQueue()
    return withEnv(
      Layer.merge(CacheStore.layerMemory, lost.layer),
      Effect.gen(function*() {
        const job = yield* Job.make({
          name: unique(),
          fetch: upstream.fetch,
          lifetime: "1 minute",
          syncRefreshAfter: "5 minutes",
          timeToLive: "1 hour"
        })
        yield* job.get("a")
        yield* TestClock.adjust(millis(5 * 60_000 - 1))
        const before = yield* job.getWithOutcome("a")
        assert.deepStrictEqual([before.status, before.value, before.fetchedSynchronously], ["stale", "a#1", false])
        assert.strictEqual(lost.offered.length, 1)
        yield* TestClock.adjust(millis(1))
        const at = yield* job.getWithOutcome("a")
        assert.deepStrictEqual([at.status, at.value, at.fetchedSynchronously], ["miss", "a#2", true])
        assert.strictEqual(upstream.state.calls, 2)
        assert.strictEqual((yield* job.getWithOutcome("a")).status, "hit")
      })
    )
  })

  it.effect("the age of a value is never reset by a refresh attempt: it still expires at timeToLive", () => {
    const upstream = makeUpstream()
    return withEnv(
      FibersEnv,
      Effect.gen(function*() {
        const job = yield* Job.make({
          name: unique(),
          fetch: upstream.fetch,
          lifetime: "1 minute",
          timeToLive: "10 minutes",
          refreshBackoff: { initial: "1 second", max: "1 second" }
        })
        yield* job.get("a")
        upstream.state.failing = true
        // A stale read every minute: each requests a refresh, each refresh fails.
        for (let minute = 1; minute < 10; minute++) {
          yield* TestClock.adjust(minutes(1))
          assert.strictEqual(yield* job.get("a"), "a#1")
          yield* eventually(() => upstream.state.calls === minute + 1)
          const entry = yield* stored(job, "a")
          assert.deepStrictEqual([entry?.createdAt, entry?.staleAt, entry?.expiresAt], [0, 60_000, 600_000])
        }
        yield* eventually(refreshes(job.name, "failed").pipe(Effect.map((n) => n === 9)))
        yield* TestClock.adjust(minutes(1))
        const error = yield* Effect.flip(job.get("a"))
        assert.strictEqual(error._tag, "UpstreamError")
        assert.isUndefined(yield* stored(job, "a"))
      })
    )
  })

  it.effect("jitter shortens lifetime by a random fraction below jitter, per write", () =>
    withEnv(
      FibersEnv,
      Effect.gen(function*() {
        const job = yield* Job.make({
          name: unique(),
          fetch: (n: number) => Effect.succeed(n),
          lifetime: "100 seconds",
          jitter: 0.5
        })
        const lifetimes = new Set<number>()
        for (let i = 0; i < 50; i++) {
          yield* job.get(i)
          const entry = (yield* stored(job, i))!
          const lifetime = entry.staleAt - entry.createdAt
          assert.isTrue(lifetime > 50_000 && lifetime <= 100_000, `lifetime ${lifetime}`)
          assert.strictEqual(entry.expiresAt - entry.createdAt, Duration.toMillis("30 days"))
          lifetimes.add(lifetime)
        }
        assert.isAbove(lifetimes.size, 10)
      })
    ))
})

describe("Job: single flight and leases", () => {
  it.effect("1,000 concurrent stale reads are all served at once and cause one refresh", () => {
    const upstream = makeUpstream()
    return withEnv(
      FibersEnv,
      Effect.gen(function*() {
        const job = yield* Job.make({ name: unique(), fetch: upstream.fetch, lifetime: "1 minute" })
        yield* job.get("a")
        upstream.state.delay = "1 second"
        yield* TestClock.adjust(minutes(1))
        const served = yield* Effect.all(Array.from({ length: 1_000 }, () => job.getWithOutcome("a")), {
          concurrency: "unbounded"
        })
        assert.isTrue(served.every((outcome) => outcome.status === "stale" && outcome.value === "a#1"))
        yield* eventually(() => upstream.state.calls === 2)
        yield* TestClock.adjust("1 second")
        yield* eventually(Effect.map(stored(job, "a"), (entry) => entry?.value === "a#2"))
        yield* settle
        assert.strictEqual(upstream.state.calls, 2)
        assert.strictEqual(yield* refreshes(job.name, "started"), 1)
        assert.strictEqual(yield* refreshes(job.name, "succeeded"), 1)
        assert.strictEqual(yield* refreshes(job.name, "skipped"), 999)
      })
    )
  })

  it.effect("concurrent misses share one fetch (cacheback ran one per caller)", () => {
    const upstream = makeUpstream()
    upstream.state.delay = "1 second"
    return withEnv(
      FibersEnv,
      Effect.gen(function*() {
        const job = yield* Job.make({ name: unique(), fetch: upstream.fetch })
        const fiber = yield* Effect.fork(
          Effect.all(Array.from({ length: 100 }, () => job.getWithOutcome("a")), { concurrency: "unbounded" })
        )
        yield* eventually(() => upstream.state.calls === 1)
        yield* TestClock.adjust("1 second")
        const results = yield* Fiber.join(fiber)
        assert.isTrue(results.every((outcome) => outcome.status === "miss" && outcome.value === "a#1"))
        assert.strictEqual(upstream.state.calls, 1)
      })
    )
  })

  it.effect("concurrent reads past syncRefreshAfter share one synchronous refresh", () => {
    const upstream = makeUpstream()
    const lost = makeLostQueue()
    return withEnv(
      Layer.merge(CacheStore.layerMemory, lost.layer),
      Effect.gen(function*() {
        const job = yield* Job.make({
          name: unique(),
          fetch: upstream.fetch,
          lifetime: "1 minute",
          syncRefreshAfter: "2 minutes"
        })
        yield* job.get("a")
        upstream.state.delay = "1 second"
        yield* TestClock.adjust(minutes(2))
        const fiber = yield* Effect.fork(
          Effect.all(Array.from({ length: 100 }, () => job.getWithOutcome("a")), { concurrency: "unbounded" })
        )
        yield* eventually(() => upstream.state.calls === 2)
        yield* TestClock.adjust("1 second")
        const results = yield* Fiber.join(fiber)
        assert.isTrue(results.every((outcome) => outcome.status === "miss" && outcome.value === "a#2"))
        assert.strictEqual(upstream.state.calls, 2)
        assert.strictEqual(lost.offered.length, 0)
      })
    )
  })

  it.effect("one refresh request per refreshLease; a lease that runs out with no refresh landed lets the next read retry", () => {
    const upstream = makeUpstream()
    const lost = makeLostQueue()
    return withEnv(
      Layer.merge(CacheStore.layerMemory, lost.layer),
      Effect.gen(function*() {
        const job = yield* Job.make({
          name: unique(),
          fetch: upstream.fetch,
          lifetime: "1 minute",
          refreshLease: "30 seconds"
        })
        yield* job.get("a")
        yield* TestClock.adjust(minutes(1))
        yield* job.get("a")
        assert.strictEqual(lost.offered.length, 1)
        yield* TestClock.adjust(millis(30_000 - 1))
        for (let i = 0; i < 5; i++) assert.strictEqual(yield* job.get("a"), "a#1")
        assert.strictEqual(lost.offered.length, 1)
        yield* TestClock.adjust(millis(1))
        yield* job.get("a")
        assert.strictEqual(lost.offered.length, 2)
        const [first, second] = lost.offered
        assert.strictEqual(first!.key, second!.key)
        assert.strictEqual(first!.job, job.name)
        assert.strictEqual(upstream.state.calls, 1)
      })
    )
  })

  it.effect("refreshes run in another process repeat every time the value goes stale, not once per refreshLease", () => {
    const upstream = makeUpstream()
    const app = makeLostQueue()
    const worker = makeLostQueue()
    let leaseCalls = 0
    return Effect.gen(function*() {
      const memory = yield* CacheStore.makeMemory()
      const store: CacheStore.CacheStore.Service = {
        ...memory,
        acquireLease: (key, duration) =>
          Effect.zipRight(
            Effect.sync(() => leaseCalls++),
            // a round trip long enough for concurrent readers to overlap
            Effect.zipRight(Effect.sleep("10 millis"), memory.acquireLease(key, duration))
          )
      }
      const shared = Layer.succeed(CacheStore.CacheStore, store)
      const appEnv = yield* Layer.build(Layer.merge(app.layer, shared))
      const workerEnv = yield* Layer.build(Layer.merge(worker.layer, shared))
      const options = { name: unique(), fetch: upstream.fetch, lifetime: "1 minute", refreshLease: "1 hour" } as const
      const appJob = yield* Effect.provide(Job.make(options), appEnv)
      yield* Effect.provide(Job.make(options), workerEnv)
      /** The worker takes the app's last request and runs it: fetch, store, release the lease. */
      const workerRuns = (n: number) =>
        Effect.provide(JobRegistry.run(app.offered[n - 1]!), workerEnv).pipe(
          Effect.tap((result) => assert.strictEqual(result, "succeeded"))
        )

      // the miss takes the key's lease too (one fetch across processes): one slow round trip
      const first = yield* Effect.fork(appJob.get("a"))
      yield* TestClock.adjust("10 millis")
      assert.strictEqual(yield* Fiber.join(first), "a#1")
      for (let cycle = 1; cycle <= 4; cycle++) {
        yield* TestClock.adjust(minutes(1))
        // 100 concurrent stale readers: one lease round trip, one request
        const leaseCallsBefore = leaseCalls
        const readers = yield* Effect.fork(
          Effect.all(Array.from({ length: 100 }, () => appJob.getWithOutcome("a")), { concurrency: "unbounded" })
        )
        yield* TestClock.adjust("10 millis")
        const served = yield* Fiber.join(readers)
        assert.isTrue(served.every((outcome) => outcome.status === "stale" && outcome.value === `a#${cycle}`))
        assert.strictEqual(leaseCalls - leaseCallsBefore, 1, `cycle ${cycle}: one lease call`)
        assert.strictEqual(app.offered.length, cycle, `cycle ${cycle}: one request`)
        // until the refresh lands, the stale readers neither take the lease nor ask again
        yield* TestClock.adjust("5 seconds")
        assert.strictEqual((yield* appJob.getWithOutcome("a")).status, "stale")
        assert.strictEqual(leaseCalls - leaseCallsBefore, 1)
        yield* workerRuns(cycle)
        const landed = yield* appJob.getWithOutcome("a")
        assert.deepStrictEqual([landed.status, landed.value], ["hit", `a#${cycle + 1}`])
      }
      assert.strictEqual(app.offered.length, 4)
      assert.strictEqual(worker.offered.length, 0)
      assert.strictEqual(upstream.state.calls, 5)
    }).pipe(Effect.scoped)
  })

  it.effect("a landed refresh ends the request memo at once, even when it goes stale before the memo would run out", () => {
    const upstream = makeUpstream()
    const app = makeLostQueue()
    const worker = makeLostQueue()
    return Effect.gen(function*() {
      const shared = Layer.succeed(CacheStore.CacheStore, yield* CacheStore.makeMemory())
      const appEnv = yield* Layer.build(Layer.merge(app.layer, shared))
      const workerEnv = yield* Layer.build(Layer.merge(worker.layer, shared))
      const options = {
        name: unique(),
        fetch: upstream.fetch,
        lifetime: "1 minute",
        refreshLease: "1 hour",
        jitter: 0.5
      } as const
      // The app's values live the full minute; the worker's are jittered to ~30 s.
      const appJob = yield* Effect.provide(Job.make(options), appEnv).pipe(Effect.withRandomFixed([0]))
      yield* Effect.provide(Job.make(options), workerEnv).pipe(Effect.withRandomFixed([0.99]))

      yield* appJob.get("a")
      yield* TestClock.adjust(minutes(1))
      assert.strictEqual((yield* appJob.getWithOutcome("a")).status, "stale")
      assert.strictEqual(app.offered.length, 1)
      yield* Effect.provide(JobRegistry.run(app.offered[0]!), workerEnv)
      const landed = Option.getOrThrow(yield* appJob.peek("a"))
      assert.strictEqual(landed.staleAt - landed.createdAt, 30_300)
      // stale again 30.3 s after the last request: asked for again, not after a minute
      yield* TestClock.adjust("30300 millis")
      const stale = yield* appJob.getWithOutcome("a")
      assert.deepStrictEqual([stale.status, stale.value], ["stale", "a#2"])
      assert.strictEqual(app.offered.length, 2)
    }).pipe(Effect.scoped)
  })

  it.effect("a refresh that never lands is asked for again after min(lifetime, refreshLease)", () => {
    const upstream = makeUpstream()
    const lost = makeLostQueue()
    return withEnv(
      Layer.merge(CacheStore.layerMemory, lost.layer),
      Effect.gen(function*() {
        const job = yield* Job.make({ name: unique(), fetch: upstream.fetch, lifetime: "1 minute" })
        yield* job.get("a")
        yield* TestClock.adjust(minutes(1))
        yield* job.get("a")
        assert.strictEqual(lost.offered.length, 1)
        // its lease (60 s by default) is not released: the worker died. The next request must
        // wait for it to run out, and no reader asks in between.
        yield* TestClock.adjust(millis(60_000 - 1))
        yield* job.get("a")
        assert.strictEqual(lost.offered.length, 1)
        yield* TestClock.adjust(millis(1))
        yield* job.get("a")
        assert.strictEqual(lost.offered.length, 2)
      })
    )
  })

  it.effect("the lease lives in the CacheStore, so it holds across processes sharing a store", () => {
    const upstream = makeUpstream()
    const processA = makeLostQueue()
    const processB = makeLostQueue()
    return Effect.gen(function*() {
      const a = yield* Layer.build(processA.layer)
      const b = yield* Layer.build(processB.layer)
      const name = unique()
      const options = { name, fetch: upstream.fetch, lifetime: "1 minute", refreshLease: "30 seconds" } as const
      const jobA = yield* Effect.provide(Job.make(options), a)
      const jobB = yield* Effect.provide(Job.make(options), b)
      yield* jobA.get("a")
      yield* TestClock.adjust(minutes(1))
      assert.strictEqual(yield* jobB.get("a"), "a#1")
      assert.strictEqual(yield* jobA.get("a"), "a#1")
      assert.deepStrictEqual([processA.offered.length, processB.offered.length], [0, 1])
      yield* TestClock.adjust("30 seconds")
      yield* jobA.get("a")
      yield* jobB.get("a")
      assert.deepStrictEqual([processA.offered.length, processB.offered.length], [1, 1])
    }).pipe(Effect.scoped, Effect.provide(CacheStore.layerMemory))
  })

  it.effect("interrupting a caller cancels neither the fetch others wait on nor the entry", () => {
    const upstream = makeUpstream()
    upstream.state.delay = "1 second"
    return withEnv(
      FibersEnv,
      Effect.gen(function*() {
        const job = yield* Job.make({ name: unique(), fetch: upstream.fetch })
        const first = yield* Effect.fork(job.get("a"))
        yield* eventually(() => upstream.state.calls === 1)
        const second = yield* Effect.fork(job.get("a"))
        yield* settle
        yield* Fiber.interrupt(first)
        yield* TestClock.adjust("1 second")
        assert.strictEqual(yield* Fiber.join(second), "a#1")
        assert.strictEqual(upstream.state.interrupted, 0)

        // The only caller interrupted: the fetch still lands and is stored.
        const lonely = yield* Effect.fork(job.get("b"))
        yield* eventually(() => upstream.state.calls === 2)
        yield* Fiber.interrupt(lonely)
        yield* TestClock.adjust("1 second")
        yield* eventually(Effect.map(stored(job, "b"), (entry) => entry?.value === "b#2"))
        const next = yield* job.getWithOutcome("b")
        assert.deepStrictEqual([next.status, next.value], ["hit", "b#2"])
        assert.strictEqual(upstream.state.calls, 2)
      })
    )
  })

  it.effect("a refresh writes under the key the caller computed, even when the arguments' encoding is lossy", () => {
    let calls = 0
    return withEnv(
      FibersEnv,
      Effect.gen(function*() {
        const job = yield* Job.make({
          name: unique(),
          // The schema keeps `id` only: a worker that recomputed the key from decoded arguments
          // would write elsewhere (cacheback's bug with lossy task serialisation).
          argsSchema: Schema.Tuple(Schema.Struct({ id: Schema.Number })),
          fetch: (query: { readonly id: number }) => Effect.sync(() => `user ${query.id} v${++calls}`),
          lifetime: "1 minute"
        })
        const query = { id: 1, traceId: "abc" }
        assert.strictEqual(yield* job.get(query), "user 1 v1")
        yield* TestClock.adjust(minutes(1))
        assert.strictEqual(yield* job.get(query), "user 1 v1")
        yield* eventually(Effect.map(stored(job, query), (entry) => entry?.value === "user 1 v2"))
        assert.isUndefined(yield* stored(job, { id: 1 }))
        assert.notStrictEqual(yield* job.key(query), yield* job.key({ id: 1 }))
      })
    )
  })
})

describe("Job: failures", () => {
  it.effect("a failed refresh keeps the last good value and backs off, exponentially, per key", () => {
    const upstream = makeUpstream()
    return withEnv(
      FibersEnv,
      Effect.gen(function*() {
        const job = yield* Job.make({
          name: unique(),
          fetch: upstream.fetch,
          lifetime: "1 minute",
          refreshBackoff: { initial: "5 seconds", max: "10 seconds" }
        })
        yield* job.get("a")
        yield* job.get("b")
        upstream.state.failing = true
        yield* TestClock.adjust(minutes(1))
        const stale = yield* job.getWithOutcome("a")
        assert.deepStrictEqual([stale.status, stale.value], ["stale", "a#1"])
        yield* eventually(refreshes(job.name, "failed").pipe(Effect.map((n) => n === 1)))
        assert.strictEqual((yield* stored(job, "a"))?.value, "a#1")
        assert.strictEqual(upstream.state.calls, 3)

        // "a" backs off for 5 s: stale reads serve the old value and try nothing…
        yield* TestClock.adjust(millis(4_999))
        assert.strictEqual(yield* job.get("a"), "a#1")
        yield* settle
        assert.strictEqual(upstream.state.calls, 3)
        // …while "b", which has not failed, still refreshes.
        assert.strictEqual(yield* job.get("b"), "b#2")
        yield* eventually(() => upstream.state.calls === 4)
        yield* eventually(refreshes(job.name, "failed").pipe(Effect.map((n) => n === 2)))

        yield* TestClock.adjust(millis(1))
        yield* job.get("a")
        yield* eventually(() => upstream.state.calls === 5)
        // Second failure of "a": 10 s (doubled, and the cap).
        yield* eventually(refreshes(job.name, "failed").pipe(Effect.map((n) => n === 3)))
        yield* TestClock.adjust(millis(9_999))
        yield* job.get("a")
        yield* settle
        assert.strictEqual(upstream.state.calls, 5)
        upstream.state.failing = false
        yield* TestClock.adjust(millis(1))
        yield* job.get("a")
        yield* eventually(Effect.map(stored(job, "a"), (entry) => entry?.value === "a#6"))
        assert.strictEqual((yield* job.getWithOutcome("a")).status, "hit")
        assert.strictEqual(yield* refreshes(job.name, "succeeded"), 1)
      })
    )
  })

  it.effect("a failed synchronous refresh serves the stale value (failover), then backs off; staleIfError: false fails", () => {
    const upstream = makeUpstream()
    const lost = makeLostQueue()
    return withEnv(
      Layer.merge(CacheStore.layerMemory, lost.layer),
      Effect.gen(function*() {
        const options = { fetch: upstream.fetch, lifetime: "1 minute", syncRefreshAfter: "2 minutes" } as const
        const lenient = yield* Job.make({ ...options, name: unique() })
        const strict = yield* Job.make({ ...options, name: unique(), staleIfError: false })
        yield* lenient.get("a")
        yield* strict.get("a")
        upstream.state.failing = true
        yield* TestClock.adjust(minutes(2))

        const failover = yield* lenient.getWithOutcome("a")
        assert.deepStrictEqual(
          [failover.status, failover.reason, failover.value, failover.fetchedSynchronously],
          ["failover", "error", "a#1", true]
        )
        assert.strictEqual(Duration.toMillis(failover.age), 120_000)
        // While backing off, the stale value is served without asking the upstream.
        const calls = upstream.state.calls
        const next = yield* lenient.getWithOutcome("a")
        assert.deepStrictEqual([next.status, next.value], ["stale", "a#1"])
        assert.strictEqual(upstream.state.calls, calls)
        assert.strictEqual(yield* outcomes(lenient.name, "stale"), 1)

        const error = yield* Effect.flip(strict.get("a"))
        assert.instanceOf(error, UpstreamError)
        assert.strictEqual((yield* stored(strict, "a"))?.value, "a#2")
      })
    )
  })

  it.effect("a fetch timeout fails a miss with JobError Timeout, and a synchronous stale refresh fails over", () => {
    const upstream = makeUpstream()
    return withEnv(
      FibersEnv,
      Effect.gen(function*() {
        const job = yield* Job.make({
          name: unique(),
          fetch: upstream.fetch,
          timeout: "2 seconds",
          lifetime: "1 minute",
          syncRefreshAfter: "2 minutes"
        })
        yield* job.get("a")
        upstream.state.delay = "10 seconds"
        const miss = yield* Effect.fork(Effect.flip(job.get("b")))
        yield* eventually(() => upstream.state.calls === 2)
        yield* TestClock.adjust("2 seconds")
        const error = yield* Fiber.join(miss)
        assert.strictEqual(error._tag, "JobError")
        assert.strictEqual(error._tag === "JobError" && error.reason, "Timeout")
        assert.strictEqual(upstream.state.interrupted, 1)

        yield* TestClock.adjust(minutes(2))
        const stale = yield* Effect.fork(job.getWithOutcome("a"))
        yield* eventually(() => upstream.state.calls === 3)
        yield* TestClock.adjust("2 seconds")
        const outcome = yield* Fiber.join(stale)
        assert.deepStrictEqual([outcome.status, outcome.reason, outcome.value], ["failover", "timeout", "a#1"])
      })
    )
  })

  it.effect("the upstream's error passes through unchanged on a miss, and nothing is cached", () => {
    const upstream = makeUpstream()
    upstream.state.failing = true
    return withEnv(
      FibersEnv,
      Effect.gen(function*() {
        const job = yield* Job.make({ name: unique(), fetch: upstream.fetch })
        const error = yield* Effect.flip(job.get("a"))
        assert.instanceOf(error, UpstreamError)
        assert.strictEqual(error._tag === "UpstreamError" && error.call, 1)
        assert.isUndefined(yield* stored(job, "a"))
        upstream.state.failing = false
        assert.strictEqual(yield* job.get("a"), "a#2")
      })
    )
  })

  it.effect("a failing store degrades to the upstream: reads never fail because of it", () => {
    const upstream = makeUpstream()
    const failure = (method: string) =>
      Effect.fail(new CacheStore.CacheStoreError({ reason: "Unavailable", backend: "broken", method }))
    const broken: CacheStore.CacheStore.Service = {
      [CacheStore.TypeId]: CacheStore.TypeId,
      backend: "broken",
      get: () => failure("get"),
      set: () => failure("set"),
      delete: () => failure("delete"),
      deletePrefix: () => failure("deletePrefix"),
      acquireLease: () => failure("acquireLease"),
      releaseLease: () => failure("releaseLease")
    }
    return withEnv(
      Layer.merge(Layer.succeed(CacheStore.CacheStore, broken), RefreshQueue.layerFibers()),
      Effect.gen(function*() {
        const job = yield* Job.make({ name: unique(), fetch: upstream.fetch })
        const outcome = yield* job.getWithOutcome("a")
        assert.deepStrictEqual([outcome.status, outcome.value], ["miss", "a#1"])
        assert.strictEqual(yield* job.get("a"), "a#2")
        yield* job.refreshInBackground("a")
        const error = yield* Effect.flip(job.delete("a"))
        assert.strictEqual(error._tag, "CacheStoreError")
      })
    )
  })

  it.effect("one outage of one store is one warning line per interval, whichever jobs read it", () => {
    const upstream = makeUpstream()
    const logs = captureLogs()
    const broken: CacheStore.CacheStore.Service = {
      [CacheStore.TypeId]: CacheStore.TypeId,
      backend: "broken",
      get: () =>
        Effect.fail(new CacheStore.CacheStoreError({ reason: "Unavailable", backend: "broken", method: "get" })),
      set: () => Effect.void,
      delete: () => Effect.void,
      deletePrefix: () => Effect.succeed(0),
      acquireLease: () => Effect.succeed(Option.none()),
      releaseLease: () => Effect.succeed(true)
    }
    const readFailed = () => logs.messages.filter((m) => m.includes("store read failed")).length
    return withEnv(
      Layer.merge(Layer.succeed(CacheStore.CacheStore, broken), RefreshQueue.layerFibers()),
      Effect.gen(function*() {
        const users = yield* Job.make({ name: unique(), fetch: upstream.fetch })
        const teams = yield* Job.make({ name: unique(), fetch: upstream.fetch })
        // every read fails over to the upstream; the store's warnings are shared by both jobs
        assert.strictEqual(yield* users.get("a"), "a#1")
        assert.strictEqual(yield* teams.get("b"), "b#2")
        assert.strictEqual(yield* users.get("c"), "c#3")
        assert.strictEqual(readFailed(), 1)
        yield* TestClock.adjust("1 hour")
        assert.strictEqual(yield* teams.get("d"), "d#4")
        assert.isAbove(readFailed(), 1)
      })
    ).pipe(Effect.provide(logs.layer))
  })

  it.effect("arguments that cannot be keyed fail with CacheKeyError before any fetch", () => {
    let calls = 0
    return withEnv(
      FibersEnv,
      Effect.gen(function*() {
        const job = yield* Job.make({
          name: unique(),
          fetch: (_: { readonly onDone: () => void }) => Effect.sync(() => ++calls)
        })
        const error = yield* Effect.flip(job.get({ onDone: () => {} }))
        assert.strictEqual(error._tag, "CacheKeyError")
        assert.strictEqual(calls, 0)
      })
    )
  })

  it.effect("hostile arguments and throwing key functions are CacheKeyErrors inside the Effect, on every method", () => {
    let calls = 0
    let deep: unknown = 1
    for (let i = 0; i < 20_000; i++) deep = [deep]
    const revoked = Proxy.revocable({}, {})
    revoked.revoke()
    return withEnv(
      FibersEnv,
      Effect.gen(function*() {
        const job = yield* Job.make({ name: unique(), fetch: (_: unknown) => Effect.sync(() => ++calls) })
        const keyed = yield* Job.make({
          name: unique(),
          fetch: (_: number) => Effect.sync(() => ++calls),
          key: (_: number): string => {
            throw new Error("SECRET")
          }
        })
        const prepared = yield* Job.make({
          name: unique(),
          fetch: (_: number) => Effect.sync(() => ++calls),
          prepareArgs: (_: number) => {
            throw new Error("SECRET")
          }
        })
        for (
          const argument of [deep, revoked.proxy, {
            get id(): number {
              throw new Error("SECRET")
            }
          }]
        ) {
          const calls = [
            () => job.get(argument),
            () => job.getWithOutcome(argument),
            () => job.key(argument),
            () => job.invalidate(argument),
            () => job.delete(argument),
            () => job.peek(argument),
            () => job.set([argument], 1),
            () => job.refresh(argument),
            () => job.refreshInBackground(argument)
          ]
          for (const call of calls) {
            const error = yield* Effect.flip(call() as Effect.Effect<unknown, { readonly _tag: string }>)
            assert.strictEqual(error._tag, "CacheKeyError")
          }
        }
        for (const other of [keyed, prepared]) {
          const error = yield* Effect.flip(other.get(1))
          assert.strictEqual(error._tag, "CacheKeyError")
          assert.notInclude(error.message, "SECRET")
        }
        assert.strictEqual(calls, 0)
      })
    )
  })
})

describe("Job: refresh requests it does not own", () => {
  it.effect("a request runs only under the key the job derives from its arguments, and releases only that key's lease", () => {
    const upstream = makeUpstream()
    return withEnv(
      FibersEnv,
      Effect.gen(function*() {
        const name = unique()
        const job = yield* Job.make({ name, fetch: upstream.fetch, argsSchema: Schema.Tuple(Schema.String) })
        const other = yield* Job.make({ name: unique(), fetch: upstream.fetch })
        yield* other.set(["x"], "keep")
        const victim = yield* other.key("x")
        const run = (key: string, args: unknown) =>
          Effect.flip(JobRegistry.run({ job: name, key, args, requestedAt: 0 }))
        for (
          const [key, args] of [[victim, ["x"]], ["admin:flags:enabled", ["x"]], [yield* job.key("y"), ["x"]]] as const
        ) {
          const error = yield* run(key, args)
          assert.deepStrictEqual([error._tag, error.reason], ["JobError", "Rejected"])
          assert.notInclude(error.message, key)
        }
        assert.strictEqual(upstream.state.calls, 0)
        assert.strictEqual(Option.getOrThrow(yield* other.peek("x")).value, "keep")
        // the honest request runs and writes where the job reads
        assert.strictEqual(
          yield* JobRegistry.run({ job: name, key: yield* job.key("y"), args: ["y"], requestedAt: 0 }),
          "succeeded"
        )
        assert.strictEqual(Option.getOrThrow(yield* job.peek("y")).value, "y#1")
      })
    )
  })
})

describe("Job: misses without fetching", () => {
  it.effect("fetchOnMiss: false returns empty (status empty) and requests one refresh", () => {
    const upstream = makeUpstream()
    return withEnv(
      FibersEnv,
      Effect.gen(function*() {
        const job = yield* Job.make({
          name: unique(),
          fetch: upstream.fetch,
          fetchOnMiss: false,
          empty: () => "nothing yet"
        })
        const first = yield* job.getWithOutcome("a")
        assert.deepStrictEqual([first.status, first.value, first.fetchedSynchronously], ["empty", "nothing yet", false])
        yield* eventually(Effect.map(stored(job, "a"), (entry) => entry?.value === "a#1"))
        const second = yield* job.getWithOutcome("a")
        assert.deepStrictEqual([second.status, second.value], ["hit", "a#1"])
        assert.strictEqual(upstream.state.calls, 1)
      })
    )
  })
})

describe("Job: operations", () => {
  it.effect("invalidate marks the entry stale without touching its age, and requests a refresh", () => {
    const upstream = makeUpstream()
    const lost = makeLostQueue()
    return withEnv(
      Layer.merge(CacheStore.layerMemory, lost.layer),
      Effect.gen(function*() {
        const job = yield* Job.make({
          name: unique(),
          fetch: upstream.fetch,
          lifetime: "10 minutes",
          timeToLive: "1 hour"
        })
        yield* job.invalidate("absent")
        assert.strictEqual(lost.offered.length, 0)
        yield* job.get("a")
        yield* TestClock.adjust(minutes(1))
        yield* job.invalidate("a")
        const entry = (yield* stored(job, "a"))!
        assert.deepStrictEqual([entry.value, entry.createdAt, entry.staleAt, entry.expiresAt], [
          "a#1",
          0,
          60_000,
          3_600_000
        ])
        assert.strictEqual(lost.offered.length, 1)
        const outcome = yield* job.getWithOutcome("a")
        assert.deepStrictEqual([outcome.status, outcome.value], ["stale", "a#1"])
      })
    )
  })

  it.effect("after invalidate, a failing refresh leaves the old value available (stale-if-error)", () => {
    const upstream = makeUpstream()
    return withEnv(
      FibersEnv,
      Effect.gen(function*() {
        const job = yield* Job.make({ name: unique(), fetch: upstream.fetch })
        yield* job.get("a")
        upstream.state.failing = true
        yield* job.invalidate("a")
        yield* eventually(refreshes(job.name, "failed").pipe(Effect.map((n) => n === 1)))
        const outcome = yield* job.getWithOutcome("a")
        assert.deepStrictEqual([outcome.status, outcome.value], ["stale", "a#1"])
      })
    )
  })

  it.effect("delete removes the entry; the next read is a miss", () => {
    const upstream = makeUpstream()
    return withEnv(
      FibersEnv,
      Effect.gen(function*() {
        const job = yield* Job.make({ name: unique(), fetch: upstream.fetch })
        yield* job.get("a")
        yield* job.delete("a")
        assert.isUndefined(yield* stored(job, "a"))
        const outcome = yield* job.getWithOutcome("a")
        assert.deepStrictEqual([outcome.status, outcome.value], ["miss", "a#2"])
      })
    )
  })

  it.effect("peek returns the entry with its timestamps and has no side effect", () => {
    const upstream = makeUpstream()
    const lost = makeLostQueue()
    return withEnv(
      Layer.merge(CacheStore.layerMemory, lost.layer),
      Effect.gen(function*() {
        const job = yield* Job.make({
          name: unique(),
          fetch: upstream.fetch,
          lifetime: "1 minute",
          timeToLive: "1 hour"
        })
        assert.isTrue(Option.isNone(yield* job.peek("a")))
        yield* job.get("a")
        yield* TestClock.adjust(minutes(30))
        const entry = Option.getOrThrow(yield* job.peek("a"))
        assert.deepStrictEqual(entry, { value: "a#1", createdAt: 0, staleAt: 60_000, expiresAt: 3_600_000 })
        assert.strictEqual(upstream.state.calls, 1)
        assert.strictEqual(lost.offered.length, 0)
      })
    )
  })

  it.effect("set stores a value as if just fetched; refresh fetches now; refreshInBackground requests one", () => {
    const upstream = makeUpstream()
    return withEnv(
      FibersEnv,
      Effect.gen(function*() {
        const job = yield* Job.make({ name: unique(), fetch: upstream.fetch, lifetime: "1 minute" })
        yield* TestClock.adjust("5 seconds")
        yield* job.set(["a"], "by hand")
        const set = yield* job.getWithOutcome("a")
        assert.deepStrictEqual([set.status, set.value], ["hit", "by hand"])
        assert.strictEqual((yield* stored(job, "a"))?.createdAt, 5_000)
        assert.strictEqual(upstream.state.calls, 0)

        assert.strictEqual(yield* job.refresh("a"), "a#1")
        assert.strictEqual(yield* job.get("a"), "a#1")

        yield* job.refreshInBackground("a")
        yield* eventually(Effect.map(stored(job, "a"), (entry) => entry?.value === "a#2"))
        assert.strictEqual((yield* job.getWithOutcome("a")).status, "hit")

        yield* job.set(["b"], "b")
        assert.strictEqual(yield* job.clear, 2)
        assert.isUndefined(yield* stored(job, "a"))
      })
    )
  })

  it.effect("refresh answers from a fetch that started after the call, waiting for one already running", () => {
    const upstream = makeUpstream()
    upstream.state.delay = "1 second"
    return withEnv(
      FibersEnv,
      Effect.gen(function*() {
        const job = yield* Job.make({ name: unique(), fetch: upstream.fetch })
        const miss = yield* Effect.fork(job.get("a"))
        yield* eventually(() => upstream.state.calls === 1)
        // Say the source changed now: the running fetch may predate the change.
        const refreshing = yield* Effect.fork(
          Effect.all(Array.from({ length: 10 }, () => job.refresh("a")), { concurrency: "unbounded" })
        )
        yield* settle
        yield* TestClock.adjust("1 second")
        assert.strictEqual(yield* Fiber.join(miss), "a#1")
        yield* eventually(() => upstream.state.calls === 2)
        yield* TestClock.adjust("1 second")
        const values = yield* Fiber.join(refreshing)
        assert.isTrue(values.every((value) => value === "a#2"))
        assert.strictEqual(upstream.state.calls, 2)
        assert.strictEqual(yield* job.get("a"), "a#2")
      })
    )
  })

  it.effect("key and prepareArgs decide the key; fetch gets the arguments as given", () =>
    withEnv(
      FibersEnv,
      Effect.gen(function*() {
        const seen: Array<unknown> = []
        const fetch = (user: { readonly id: number; readonly name: string }) =>
          Effect.sync(() => {
            seen.push(user)
            return user.name
          })
        const byId = yield* Job.make({ name: unique(), fetch, key: (user) => `user-${user.id}` })
        const prepared = yield* Job.make({ name: unique(), fetch, prepareArgs: (user) => user.id })
        for (const job of [byId, prepared]) {
          assert.strictEqual(yield* job.get({ id: 1, name: "Ada" }), "Ada")
          assert.strictEqual(yield* job.get({ id: 1, name: "Renamed" }), "Ada")
        }
        assert.isTrue((yield* byId.key({ id: 1, name: "x" })).endsWith(":user-1"))
        assert.deepStrictEqual(seen, [{ id: 1, name: "Ada" }, { id: 1, name: "Ada" }])
      })
    ))

  it.effect("counts outcomes by status, per job", () => {
    const upstream = makeUpstream()
    const lost = makeLostQueue()
    return withEnv(
      Layer.merge(CacheStore.layerMemory, lost.layer),
      Effect.gen(function*() {
        const job = yield* Job.make({ name: unique(), fetch: upstream.fetch, lifetime: "1 minute" })
        yield* job.get("a")
        yield* job.get("a")
        yield* job.get("a")
        yield* TestClock.adjust(minutes(1))
        yield* job.get("a")
        assert.deepStrictEqual(
          [yield* outcomes(job.name, "miss"), yield* outcomes(job.name, "hit"), yield* outcomes(job.name, "stale")],
          [1, 2, 1]
        )
      })
    )
  })
})

describe("Job: definition", () => {
  const define = (options: Partial<Job.Options<[string], string, never, never>>) =>
    withEnv(
      FibersEnv,
      // the options are checked at run time too (a `fetchOnMiss` read from configuration, plain JS callers)
      Effect.flip(
        Job.make({ name: unique(), fetch: (id: string) => Effect.succeed(id), ...options } as Job.Options<
          [string],
          string,
          never,
          never
        >)
      )
    )

  it.effect("invalid combinations fail at definition with a typed PolicyError", () =>
    Effect.gen(function*() {
      const cases: Array<[Partial<Job.Options<[string], string, never, never>>, string]> = [
        [{ lifetime: "2 hours", timeToLive: "1 hour" }, "timeToLive"],
        [{ fetchOnMiss: false }, "empty"],
        [{ key: (id) => id, prepareArgs: (id) => id }, "prepareArgs"],
        [{ jitter: 1 }, "jitter"],
        [{ timeout: 0 }, "timeout"],
        [{ refreshBackoff: { initial: "1 minute", max: "1 second" } }, "refreshBackoff"],
        [{ syncRefreshAfter: "1 second" }, "syncRefreshAfter"],
        [{ name: "a:b" }, "name"],
        [{ namespace: "" }, "namespace"]
      ]
      for (const [options, option] of cases) {
        const error = yield* define(options)
        assert.strictEqual(error._tag, "PolicyError")
        assert.strictEqual(error.option, option, JSON.stringify(options))
      }
    }))

  it.effect("two jobs cannot answer to one name in a registry", () =>
    withEnv(
      FibersEnv,
      Effect.gen(function*() {
        const name = unique()
        yield* Job.make({ name, fetch: (id: string) => Effect.succeed(id) })
        const error = yield* Effect.flip(Job.make({ name, fetch: (id: string) => Effect.succeed(id) }))
        assert.deepStrictEqual([error.reason, error.option], ["InvalidCombination", "name"])
      })
    ))

  it.effect("Job.cached wraps a function and exposes its job", () => {
    const upstream = makeUpstream()
    return withEnv(
      FibersEnv,
      Effect.gen(function*() {
        const cachedFetch = yield* Job.cached(upstream.fetch, { name: unique(), lifetime: "1 minute" })
        assert.strictEqual(yield* cachedFetch("a"), "a#1")
        assert.strictEqual(yield* cachedFetch("a"), "a#1")
        yield* cachedFetch.job.set(["a"], "set")
        assert.strictEqual(Option.getOrThrow(yield* cachedFetch.job.peek("a")).value, "set")
        yield* cachedFetch.job.delete("a")
        assert.strictEqual(yield* cachedFetch("a"), "a#2")
        yield* cachedFetch.job.invalidate("a")
        yield* eventually(Effect.map(stored(cachedFetch.job, "a"), (entry) => entry?.value === "a#3"))
      })
    )
  })
})

describe("Job: scope", () => {
  it.effect("closing the scope interrupts fetches and refreshes in flight and leaves no fiber behind", () => {
    const upstream = makeUpstream()
    return Effect.gen(function*() {
      const supervisor = yield* Supervisor.track
      const name = unique()
      const live = yield* Effect.gen(function*() {
        const job = yield* Job.make({ name, fetch: upstream.fetch, lifetime: "1 minute" })
        yield* job.get("a")
        upstream.state.delay = "1 hour"
        yield* TestClock.adjust(minutes(1))
        yield* job.get("a") // stale: a background refresh starts and hangs
        yield* Effect.fork(job.get("b")) // a miss whose caller is left waiting
        yield* eventually(() => upstream.state.calls === 3)
        return (yield* supervisor.value).length
      }).pipe(Effect.scoped, Effect.provide(FibersEnv), Effect.supervised(supervisor))
      // The waiting caller, its fetch, and the queue's fiber running the refresh, at least.
      assert.isAtLeast(live, 3)
      assert.strictEqual(upstream.state.interrupted, 2)
      yield* eventually(Effect.map(supervisor.value, (fibers) => fibers.length === 0), "a fiber is still running")
    })
  })

  it.effect("a queue that drains lets a background refresh in flight land after the job's scope has closed", () => {
    const upstream = makeUpstream()
    return Effect.gen(function*() {
      const store = yield* CacheStore.CacheStore
      let key = ""
      const region = yield* Effect.fork(
        Effect.gen(function*() {
          const job = yield* Job.make({ name: unique(), fetch: upstream.fetch, lifetime: "1 minute" })
          key = yield* job.key("a")
          yield* job.get("a")
          upstream.state.delay = "1 second"
          yield* TestClock.adjust(minutes(1))
          yield* job.get("a")
          yield* eventually(() => upstream.state.calls === 2)
        }).pipe(Effect.scoped, Effect.provide(RefreshQueue.layerFibers({ shutdown: "drain" })))
      )
      yield* settle
      assert.isNull(region.unsafePoll())
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(region)
      assert.strictEqual(upstream.state.interrupted, 0)
      assert.strictEqual(Option.getOrThrow(yield* store.get<string>(key)).value, "a#2")
    }).pipe(Effect.provide(CacheStore.layerMemory))
  })
})
