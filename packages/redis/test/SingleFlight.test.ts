/**
 * One upstream call per key across processes: three real reader processes (`node --import tsx
 * test/fixtures/singleFlightReader.ts`), each with its own connections, store and bus, sharing
 * one `redis-server`, each running five concurrent readers of the same key. The fetch counts
 * itself in Redis, so the count is cluster-wide.
 */
import { assert, describe, it } from "@effect/vitest"
import { CacheEntry, EntryCodec } from "@stalewise/core"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as ChildProcess from "node:child_process"
import * as Readline from "node:readline"
import { fileURLToPath } from "node:url"
import * as RedisTest from "./utils/RedisTest.js"

const log = (message: string) => console.info(`[stalewise] ${message}`)

const processes = 3

/** A reader child process, SIGKILLed when the scope closes if still alive. */
const spawnReader = (env: Record<string, string>) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const fixture = fileURLToPath(new URL("./fixtures/singleFlightReader.ts", import.meta.url))
      const child = ChildProcess.spawn(process.execPath, ["--import", "tsx", fixture], {
        cwd: fileURLToPath(new URL("..", import.meta.url)),
        env: { ...process.env, ...env },
        stdio: ["pipe", "pipe", "pipe"]
      })
      const lines: Array<string> = []
      const errors: Array<string> = []
      let onReady: (() => void) | undefined
      Readline.createInterface({ input: child.stdout }).on("line", (line) => {
        lines.push(line)
        if (line === "ready") onReady?.()
      })
      child.stderr.on("data", (chunk: Buffer) => errors.push(chunk.toString("utf8")))
      const ready = new Promise<void>((resolve) => {
        onReady = resolve
      })
      const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)))
      return { child, lines, errors, ready, exited }
    }),
    ({ child, exited }) =>
      Effect.promise(async () => {
        if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
        await exited
      })
  )

const run = (options: {
  readonly op: "get" | "refresh" | "cache-first"
  readonly readers: number
  readonly seed?: CacheEntry.CacheEntry<string> | undefined
}) =>
  Effect.gen(function*() {
    const keyPrefix = RedisTest.makePrefix()
    const job = `flight${crypto.randomUUID().slice(0, 8)}`
    const counter = `${keyPrefix}fetches`
    const id = "k1"
    const client = yield* RedisTest.connect
    if (options.seed !== undefined) {
      const json = Either.getOrThrow(EntryCodec.encode(options.seed, undefined, { backend: "test", method: "set" }))
      yield* Effect.promise(() => client.set(`${keyPrefix}v:refresh:${job}:${id}`, json))
    }
    const env = {
      REDIS_HOST: RedisTest.host,
      REDIS_PORT: String(RedisTest.port),
      KEY_PREFIX: keyPrefix,
      CHANNEL: `${keyPrefix}invalidate`,
      JOB: job,
      COUNTER: counter,
      ID: id,
      READERS: String(options.readers),
      OP: options.op,
      FETCH_MILLIS: "500",
      LIFETIME_MILLIS: "1000",
      SYNC_REFRESH_AFTER_MILLIS: "2000"
    }
    const children = yield* Effect.forEach(Array.from({ length: processes }), () => spawnReader(env))
    yield* Effect.promise(() => Promise.all(children.map((child) => child.ready))).pipe(
      Effect.timeoutFail({ duration: Duration.seconds(20), onTimeout: () => new Error("readers not ready") })
    )
    for (const { child } of children) child.stdin.write("go\n")
    const codes = yield* Effect.promise(() => Promise.all(children.map((child) => child.exited))).pipe(
      Effect.timeoutFail({ duration: Duration.seconds(20), onTimeout: () => new Error("readers did not finish") })
    )
    assert.deepStrictEqual(codes, children.map(() => 0), children.flatMap((child) => child.errors).join("\n"))
    const outcomes = children.flatMap((child) => child.lines.filter((line) => line.startsWith("outcome ")))
    const fetches = Number(yield* Effect.promise(() => client.get(counter)))
    const waits: Record<string, number> = {}
    for (const line of children.flatMap((child) => child.lines)) {
      const [tag, result, count] = line.split(" ")
      if (tag === "leaseWaits") waits[result!] = (waits[result!] ?? 0) + Number(count)
    }
    return { fetches, outcomes, waits }
  })

describe.skipIf(!RedisTest.available)("single flight across processes", () => {
  it.scopedLive("a cold key read by 3 processes × 5 readers costs one fetch", () =>
    Effect.gen(function*() {
      const { fetches, outcomes, waits } = yield* run({ op: "get", readers: 5 })
      log(`cold key, ${processes} processes × 5 readers: ${fetches} fetch(es); lease waits ${JSON.stringify(waits)}`)
      // the two processes without the lease waited and were served the landed value
      assert.deepStrictEqual(waits, { landed: processes - 1, "took-over": 0, budget: 0 })
      assert.strictEqual(outcomes.length, processes * 5)
      assert.strictEqual(fetches, 1)
      assert.strictEqual(new Set(outcomes).size, 1, "every reader got the one value fetched")
      assert.match(outcomes[0]!, /^outcome miss k1 from \d+$/)
    }))

  it.scopedLive("a value past syncRefreshAfter read by 3 processes × 5 readers costs one fetch", () =>
    Effect.gen(function*() {
      const createdAt = Date.now() - 10_000
      const seed = CacheEntry.make({
        value: "old",
        createdAt,
        staleAt: createdAt + 1_000,
        expiresAt: createdAt + 3_600_000
      })
      const { fetches, outcomes, waits } = yield* run({ op: "get", readers: 5, seed })
      log(
        `past syncRefreshAfter, ${processes} processes × 5 readers: ${fetches} fetch(es); lease waits ${
          JSON.stringify(waits)
        }`
      )
      assert.deepStrictEqual(waits, { landed: processes - 1, "took-over": 0, budget: 0 })
      assert.strictEqual(outcomes.length, processes * 5)
      assert.strictEqual(fetches, 1)
      assert.strictEqual(new Set(outcomes).size, 1)
      assert.match(outcomes[0]!, /^outcome miss k1 from \d+$/, "a fresh value, not the stale one")
    }))

  it.scopedLive("a cold key read through a persisted CacheFirst by 3 processes × 5 readers costs one fetch", () =>
    Effect.gen(function*() {
      const { fetches, outcomes, waits } = yield* run({ op: "cache-first", readers: 5 })
      log(
        `CacheFirst cold key, ${processes} processes × 5 readers: ${fetches} fetch(es); lease waits ${
          JSON.stringify(waits)
        }`
      )
      assert.strictEqual(outcomes.length, processes * 5)
      assert.strictEqual(fetches, 1)
      assert.deepStrictEqual(waits, { landed: processes - 1, "took-over": 0, budget: 0 })
      assert.strictEqual(new Set(outcomes.map((line) => line.split(" ").slice(2).join(" "))).size, 1)
    }))

  it.scopedLive("refresh in 3 processes costs one fetch (× 5 callers each: two, the second for read-your-writes)", () =>
    Effect.gen(function*() {
      const createdAt = Date.now()
      const seed = CacheEntry.make({ value: "old", createdAt, staleAt: createdAt + 60_000, expiresAt: Infinity })
      const one = yield* run({ op: "refresh", readers: 1, seed })
      const five = yield* run({ op: "refresh", readers: 5, seed })
      log(`refresh: ${processes} processes × 1 caller: ${one.fetches} fetch(es); × 5 callers: ${five.fetches}`)
      assert.strictEqual(one.fetches, 1)
      assert.isAtMost(five.fetches, 2)
      for (const outcome of [...one.outcomes, ...five.outcomes]) {
        assert.match(outcome, /^outcome refreshed k1 from \d+$/)
      }
    }))
})
