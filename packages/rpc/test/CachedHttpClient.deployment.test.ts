/**
 * The HTTP cache as deployed: two application processes (`fixtures/httpCacheProcess.ts`, real
 * child processes) sharing one real `redis-server` as their `CacheStore`, in front of a real
 * origin on 127.0.0.1, with several users. Real time on purpose: the processes have their own
 * clocks; the stale window (`lifetime` 1.5 s, long enough for the second process to read a fresh
 * copy on a busy machine) is waited for, once.
 */
import { assert, describe, it } from "@effect/vitest"
import * as RedisTest from "@stalewise/redis/test/utils/RedisTest"
import { Deferred, Duration, Effect } from "effect"
import * as ChildProcess from "node:child_process"
import * as Readline from "node:readline"
import { fileURLToPath } from "node:url"
import * as HttpOrigin from "./fixtures/HttpOrigin.js"

interface Answer {
  readonly status: string | undefined
  readonly body: string
}

/** An application process; killed when the scope closes. */
const spawnApp = (prefix: string) =>
  Effect.acquireRelease(
    Effect.async<
      ChildProcess.ChildProcessWithoutNullStreams & { readonly pending: Map<number, (a: Array<Answer>) => void> }
    >(
      (resume) => {
        const fixture = fileURLToPath(new URL("./fixtures/httpCacheProcess.ts", import.meta.url))
        const child = ChildProcess.spawn(process.execPath, ["--import", "tsx", fixture], {
          cwd: fileURLToPath(new URL("..", import.meta.url)),
          env: {
            ...process.env,
            REDIS_HOST: RedisTest.host,
            REDIS_PORT: String(RedisTest.port),
            KEY_PREFIX: prefix
          },
          stdio: ["pipe", "pipe", "pipe"]
        })
        const pending = new Map<number, (answers: Array<Answer>) => void>()
        const errors: Array<string> = []
        child.stderr.on("data", (chunk: Buffer) => errors.push(chunk.toString("utf8")))
        Readline.createInterface({ input: child.stdout }).on("line", (line) => {
          if (line === "ready") return resume(Effect.succeed(Object.assign(child, { pending })))
          const { answers, id } = JSON.parse(line) as { id: number; answers: Array<Answer> }
          pending.get(id)?.(answers)
          pending.delete(id)
        })
        child.once("exit", (code) => resume(Effect.dieMessage(`app process exited (${code}): ${errors.join("")}`)))
      }
    ).pipe(Effect.timeoutFail({ duration: "20 seconds", onTimeout: () => new Error("app process never ready") })),
    (child) => Effect.sync(() => child.kill("SIGKILL"))
  )

let nextId = 0

/** Asks `app` to send `count` concurrent requests for `url`; the answers it got. */
const ask = (
  app: Effect.Effect.Success<ReturnType<typeof spawnApp>>,
  url: string,
  count: number,
  headers: Record<string, string> = {}
) =>
  Effect.gen(function*() {
    const id = nextId++
    const done = yield* Deferred.make<Array<Answer>>()
    app.pending.set(id, (answers) => Deferred.unsafeDone(done, Effect.succeed(answers)))
    app.stdin.write(JSON.stringify({ id, url, headers, count }) + "\n")
    return yield* Deferred.await(done).pipe(Effect.timeout("20 seconds"))
  })

describe("CachedHttpClient deployed: two processes, one Redis store", () => {
  it.live(
    "stale readers in both processes are served at once; one background request cluster-wide; users never cross",
    () =>
      Effect.gen(function*() {
        assert.isTrue(RedisTest.available, "this test needs redis-server on PATH (required in CI)")
        const origin = yield* HttpOrigin.make
        const prefix = RedisTest.makePrefix()
        const [a, b] = yield* Effect.all([spawnApp(prefix), spawnApp(prefix)], { concurrency: 2 })
        let version = 1
        yield* origin.route("/r", () => ({ headers: { etag: `"v${version}"` }, body: `v${version}` }))
        const url = origin.url("/r")

        assert.deepStrictEqual(yield* ask(a, url, 1), [{ status: "miss", body: "v1" }])
        assert.deepStrictEqual(yield* ask(b, url, 1), [{ status: "hit", body: "v1" }], "B is served what A stored")

        yield* Effect.sleep(Duration.millis(1_600)) // past `lifetime` (1.5 s)
        yield* origin.hang("/r")
        version = 2
        const [fromA, fromB] = yield* Effect.all([ask(a, url, 50), ask(b, url, 50)], { concurrency: 2 })
        assert.strictEqual([...fromA!, ...fromB!].filter((x) => x.status === "stale" && x.body === "v1").length, 100)
        yield* origin.awaitRequests("/r", 2)
        yield* origin.release("/r")
        // the one background refresh lands; both processes then serve the new version
        for (const app of [a, b]) {
          let answer: Answer | undefined
          for (let i = 0; i < 200 && answer?.body !== "v2"; i++) {
            answer = (yield* ask(app, url, 1))[0]
            if (answer?.body !== "v2") yield* Effect.sleep("10 millis")
          }
          assert.strictEqual(answer?.body, "v2")
        }
        assert.strictEqual((yield* origin.stats("/r")).requests, 2, "one initial request, one refresh for 100 readers")

        // per user: the same URL, two users, two processes, one store
        yield* origin.route("/me", (request) => ({
          headers: { "cache-control": "private" },
          body: request.headers["authorization"] ?? "anonymous"
        }))
        const me = origin.url("/me")
        const alice = { authorization: "Bearer alice" }
        const bob = { authorization: "Bearer bob" }
        assert.deepStrictEqual(yield* ask(a, me, 1, alice), [{ status: "miss", body: "Bearer alice" }])
        assert.deepStrictEqual(yield* ask(b, me, 1, bob), [{ status: "miss", body: "Bearer bob" }])
        assert.deepStrictEqual(yield* ask(b, me, 1, alice), [{ status: "hit", body: "Bearer alice" }])
        assert.deepStrictEqual(yield* ask(a, me, 1, bob), [{ status: "hit", body: "Bearer bob" }])
        assert.deepStrictEqual(yield* ask(a, me, 1), [{ status: "bypass", body: "anonymous" }])
      }).pipe(Effect.scoped),
    { timeout: 60_000 }
  )
})
