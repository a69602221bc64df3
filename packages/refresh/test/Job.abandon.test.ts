import { assert, describe, it } from "@effect/vitest"
import { CacheControl } from "@stalewise/core"
import { Job } from "@stalewise/refresh"
import { Data, Duration, Effect, Either, Exit, Fiber, TestClock, Tracer } from "effect"
import { eventually, FibersEnv, makeUpstream, outcomes, refreshes, settle, stored, unique, withEnv } from "./utils.js"

// An upstream that never answers (a hung connection): `calls` and `interrupted` tell what ran.
const hung = "100 days"

describe("Job: abandoned fetches (onAbandon, backgroundTimeout)", () => {
  it.effect("complete (default): the last caller leaving lets the fetch land and be stored", () =>
    withEnv(
      FibersEnv,
      Effect.gen(function*() {
        const upstream = makeUpstream()
        upstream.state.delay = "5 seconds"
        const job = yield* Job.make({ name: unique(), lifetime: "1 minute", fetch: upstream.fetch })
        const caller = yield* Effect.fork(job.get("a"))
        yield* TestClock.adjust("1 second")
        yield* Fiber.interrupt(caller)
        yield* TestClock.adjust("4 seconds")
        yield* eventually(Effect.map(stored(job, "a"), (entry) => entry !== undefined))
        assert.strictEqual((yield* job.getWithOutcome("a")).status, "hit")
        assert.deepStrictEqual([upstream.state.calls, upstream.state.interrupted], [1, 0])
      })
    ))

  it.effect("complete: a hung fetch nobody waits for is interrupted at backgroundTimeout; the next read fetches anew", () =>
    withEnv(
      FibersEnv,
      Effect.gen(function*() {
        const upstream = makeUpstream()
        upstream.state.delay = hung
        const job = yield* Job.make({
          name: unique(),
          lifetime: "1 minute",
          backgroundTimeout: "10 seconds",
          fetch: upstream.fetch
        })
        const caller = yield* Effect.fork(job.get("a"))
        yield* TestClock.adjust("1 second")
        yield* Fiber.interrupt(caller)
        yield* TestClock.adjust("8 seconds")
        assert.strictEqual(upstream.state.interrupted, 0, "still within its bound")
        yield* TestClock.adjust("1 second")
        yield* eventually(() => upstream.state.interrupted === 1)
        // the key is not pinned: a new caller starts a fresh fetch, which answers once the upstream does
        upstream.state.delay = "1 second"
        const next = yield* Effect.fork(job.get("a"))
        yield* TestClock.adjust("1 second")
        assert.strictEqual(yield* Fiber.join(next), "a#2")
      })
    ))

  it.effect("complete: a caller joining before the bound keeps the fetch alive; leaving re-arms it", () =>
    withEnv(
      FibersEnv,
      Effect.gen(function*() {
        const upstream = makeUpstream()
        upstream.state.delay = hung
        const job = yield* Job.make({
          name: unique(),
          lifetime: "1 minute",
          backgroundTimeout: "10 seconds",
          fetch: upstream.fetch
        })
        const first = yield* Effect.fork(job.get("a"))
        yield* TestClock.adjust("1 second")
        yield* Fiber.interrupt(first)
        const second = yield* Effect.fork(job.get("a"))
        yield* TestClock.adjust("20 seconds")
        // the second caller waits: the fetch runs on (a caller's own wait is bounded by `timeout`)
        assert.strictEqual(upstream.state.interrupted, 0)
        assert.strictEqual(upstream.state.calls, 1)
        yield* Fiber.interrupt(second)
        // nobody waits and the bound has passed: interrupted at once
        yield* eventually(() => upstream.state.interrupted === 1)
      })
    ))

  it.effect("interrupt: the only caller leaving interrupts the fetch; nothing is stored", () =>
    withEnv(
      FibersEnv,
      Effect.gen(function*() {
        const upstream = makeUpstream()
        upstream.state.delay = "5 seconds"
        const job = yield* Job.make({
          name: unique(),
          lifetime: "1 minute",
          onAbandon: "interrupt",
          fetch: upstream.fetch
        })
        const caller = yield* Effect.fork(job.get("a"))
        yield* TestClock.adjust("1 second")
        yield* Fiber.interrupt(caller)
        yield* eventually(() => upstream.state.interrupted === 1)
        yield* TestClock.adjust("10 seconds")
        yield* settle
        assert.isUndefined(yield* stored(job, "a"))
        const next = yield* Effect.fork(job.get("a"))
        yield* TestClock.adjust("5 seconds")
        assert.strictEqual(yield* Fiber.join(next), "a#2")
      })
    ))

  it.effect("interrupt: waiters are counted — one leaving never cancels the fetch the others wait for", () =>
    withEnv(
      FibersEnv,
      Effect.gen(function*() {
        const upstream = makeUpstream()
        upstream.state.delay = "5 seconds"
        const job = yield* Job.make({
          name: unique(),
          lifetime: "1 minute",
          onAbandon: "interrupt",
          fetch: upstream.fetch
        })
        const callers = yield* Effect.forEach([1, 2, 3], () => Effect.fork(job.get("a")))
        yield* TestClock.adjust("1 second")
        yield* Fiber.interrupt(callers[0]!)
        yield* Fiber.interrupt(callers[1]!)
        yield* TestClock.adjust("4 seconds")
        assert.strictEqual(yield* Fiber.join(callers[2]!), "a#1")
        assert.deepStrictEqual([upstream.state.calls, upstream.state.interrupted], [1, 0])
        assert.strictEqual((yield* job.getWithOutcome("a")).status, "hit")
      })
    ))

  it.effect("a hung background refresh fails at backgroundTimeout (counted, backed off) and the key refreshes again", () =>
    withEnv(
      FibersEnv,
      Effect.gen(function*() {
        const upstream = makeUpstream()
        const name = unique()
        const job = yield* Job.make({
          name,
          lifetime: "1 minute",
          backgroundTimeout: "10 seconds",
          refreshBackoff: { initial: "5 seconds" },
          fetch: upstream.fetch
        })
        yield* job.get("a")
        yield* TestClock.adjust("1 minute")
        upstream.state.delay = hung
        assert.strictEqual((yield* job.getWithOutcome("a")).status, "stale")
        yield* eventually(() => upstream.state.calls === 2)
        yield* TestClock.adjust("10 seconds")
        yield* eventually(Effect.map(refreshes(name, "failed"), (n) => n === 1))
        assert.strictEqual(upstream.state.interrupted, 1)
        // still stale and served; past the back-off, the next read asks again and lands
        upstream.state.delay = "0 millis"
        yield* TestClock.adjust("5 seconds")
        assert.strictEqual((yield* job.getWithOutcome("a")).status, "stale")
        yield* eventually(Effect.map(stored(job, "a"), (entry) => entry?.value === "a#3"))
      })
    ))
})

class NotFound extends Data.TaggedError("NotFound")<{ readonly id: string }> {}
class Unavailable extends Data.TaggedError("Unavailable") {}

describe("Job: negative caching", () => {
  const makeJob = (answers: Map<string, "missing" | "down">) => {
    const calls = { n: 0 }
    const fetch = (id: string): Effect.Effect<string, NotFound | Unavailable> =>
      Effect.suspend((): Effect.Effect<string, NotFound | Unavailable> => {
        calls.n++
        const answer = answers.get(id)
        return answer === "missing"
          ? Effect.fail(new NotFound({ id }))
          : answer === "down"
          ? Effect.fail(new Unavailable())
          : Effect.succeed(`${id}!`)
      })
    return { calls, fetch }
  }

  it.effect("a chosen failure is returned again for its timeToLive without asking, then asked again", () =>
    withEnv(
      FibersEnv,
      Effect.gen(function*() {
        const answers = new Map<string, "missing" | "down">([["a", "missing"]])
        const upstream = makeJob(answers)
        const name = unique()
        const job = yield* Job.make({
          name,
          lifetime: "1 minute",
          negative: { when: (error) => error._tag === "NotFound", timeToLive: "10 seconds" },
          fetch: upstream.fetch
        })
        const first = yield* Effect.either(job.get("a"))
        const second = yield* Effect.either(job.get("a"))
        for (const result of [first, second]) {
          assert.isTrue(Either.isLeft(result) && result.left._tag === "NotFound" && result.left.id === "a")
        }
        assert.strictEqual(upstream.calls.n, 1)
        assert.strictEqual(yield* outcomes(name, "negative"), 1)
        answers.delete("a")
        yield* TestClock.adjust("10 seconds")
        assert.strictEqual(yield* job.get("a"), "a!")
        assert.strictEqual(upstream.calls.n, 2)
      })
    ))

  it.effect("other failures are never cached; set, delete and forceRefresh forget a cached one", () =>
    withEnv(
      FibersEnv,
      Effect.gen(function*() {
        const answers = new Map<string, "missing" | "down">([["a", "down"], ["b", "missing"]])
        const upstream = makeJob(answers)
        const job = yield* Job.make({
          name: unique(),
          lifetime: "1 minute",
          negative: { when: (error) => error._tag === "NotFound", timeToLive: "1 hour" },
          fetch: upstream.fetch
        })
        yield* Effect.either(job.get("a"))
        yield* Effect.either(job.get("a"))
        assert.strictEqual(upstream.calls.n, 2, "Unavailable is not cached")
        yield* Effect.either(job.get("b"))
        yield* job.set(["b"], "written")
        assert.strictEqual(yield* job.get("b"), "written")
        yield* job.delete("b")
        const afterDelete = yield* Effect.either(job.get("b"))
        assert.isTrue(Either.isLeft(afterDelete))
        assert.strictEqual(upstream.calls.n, 4, "delete forgot the set value, the miss asked again")
        answers.delete("b")
        assert.strictEqual(yield* job.get("b").pipe(CacheControl.forceRefresh), "b!")
        assert.strictEqual(yield* job.get("b"), "b!")
      })
    ))

  it.effect("off by default: every miss asks the upstream", () =>
    withEnv(
      FibersEnv,
      Effect.gen(function*() {
        const upstream = makeJob(new Map([["a", "missing"]]))
        const job = yield* Job.make({ name: unique(), lifetime: "1 minute", fetch: upstream.fetch })
        yield* Effect.either(job.get("a"))
        yield* Effect.either(job.get("a"))
        assert.strictEqual(upstream.calls.n, 2)
      })
    ))

  it.effect("invalid durations are a PolicyError", () =>
    withEnv(
      FibersEnv,
      Effect.gen(function*() {
        const upstream = makeUpstream()
        for (
          const options of [
            { backgroundTimeout: "0 seconds" },
            { backgroundTimeout: Duration.infinity },
            { negative: { when: () => true, timeToLive: "0 seconds" } }
          ] as const
        ) {
          const exit = yield* Effect.exit(Job.make({ name: unique(), fetch: upstream.fetch, ...options }))
          assert.isTrue(Exit.isFailure(exit))
          assert.strictEqual(
            Exit.isFailure(exit) && exit.cause._tag === "Fail" ? exit.cause.error._tag : "",
            "PolicyError",
            JSON.stringify(options)
          )
        }
      })
    ))
})

describe("Job: spans", () => {
  it.effect("reads that wait run in a stalewise.get span; hits and stale reads only with traceHits", () =>
    withEnv(
      FibersEnv,
      Effect.gen(function*() {
        const spans: Array<Tracer.Span> = []
        const tracer = yield* Effect.tracer
        const recording = Tracer.make({
          span: (...args) => {
            const span = tracer.span(...args)
            spans.push(span)
            return span
          },
          context: tracer.context
        })
        const statuses = () =>
          spans.filter((span) => span.name === "stalewise.get").map((span) => span.attributes.get("stalewise.status"))
        const upstream = makeUpstream()
        const quiet = yield* Job.make({ name: unique(), lifetime: "1 minute", fetch: upstream.fetch })
        yield* quiet.get("a").pipe(Effect.withTracer(recording))
        yield* quiet.get("a").pipe(Effect.withTracer(recording))
        assert.deepStrictEqual(statuses(), ["miss"])
        const name = unique()
        const traced = yield* Job.make({ name, lifetime: "1 minute", traceHits: true, fetch: upstream.fetch })
        yield* traced.get("a").pipe(Effect.withTracer(recording))
        yield* traced.get("a").pipe(Effect.withTracer(recording))
        yield* TestClock.adjust("1 minute")
        yield* traced.get("a").pipe(Effect.withTracer(recording))
        assert.deepStrictEqual(statuses(), ["miss", "miss", "hit", "stale"])
        yield* traced.get("secret-argument").pipe(Effect.withTracer(recording))
        const last = spans.filter((span) => span.name === "stalewise.get").at(-1)!
        assert.strictEqual(last.attributes.get("stalewise.job"), name)
        assert.strictEqual(last.attributes.get("stalewise.strategy"), "stale-while-revalidate")
        // a key digest, never the arguments
        assert.match(String(last.attributes.get("stalewise.key_digest")), /^[0-9a-f]{8}$/)
        for (const value of last.attributes.values()) assert.notInclude(String(value), "secret")
      })
    ))
})
