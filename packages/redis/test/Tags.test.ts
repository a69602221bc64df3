/**
 * Tags across instances over a real `redis-server`: two instances (tiered stores and buses with
 * connections of their own, as two processes) run the same job; after A's `invalidateTag`, B
 * stops serving the tagged entry within the bus delay (measured and printed). B's hits make no
 * Redis command at all: the tag's times are kept in process.
 */
import { assert, describe, it } from "@effect/vitest"
import { CacheStore, InvalidationBus } from "@stalewise/core"
import { RedisClient, RedisInvalidationBus, RedisStore, TieredStore } from "@stalewise/redis"
import { Job, RefreshQueue } from "@stalewise/refresh"
import { Context, Effect, Layer } from "effect"
import * as RedisTest from "./utils/RedisTest.js"

const log = (message: string) => console.info(`[stalewise] ${message}`)

const summary = (samples: ReadonlyArray<number>) => {
  const sorted = [...samples].sort((x, y) => x - y)
  const at = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!
  return `median ${at(0.5).toFixed(2)} ms, p95 ${at(0.95).toFixed(2)} ms, max ${
    sorted[sorted.length - 1]!.toFixed(2)
  } ms`
}

const sleep = (millis: number) => Effect.promise(() => new Promise<void>((resolve) => setTimeout(resolve, millis)))

describe.skipIf(!RedisTest.available)("Tags across instances over Redis", () => {
  RedisTest.assertNoUnhandledRejections()

  it.scopedLive("B stops serving a tagged entry within the bus delay after A's invalidateTag; B's hits send no command", () =>
    Effect.gen(function*() {
      const server = yield* RedisTest.privateServer
      const keyPrefix = RedisTest.makePrefix()
      const name = "users"
      let version = 0
      const instance = Effect.gen(function*() {
        const redis = yield* RedisClient.make({ host: RedisTest.host, port: server.port, ...RedisStore.clientDefaults })
        const bus = yield* RedisInvalidationBus.make({ channel: `${keyPrefix}invalidate` }).pipe(
          Effect.provideService(RedisClient.RedisClient, redis)
        )
        const store = yield* TieredStore.make({ keyPrefix, memoryTimeToLive: "1 minute" }).pipe(
          Effect.provideService(RedisClient.RedisClient, redis),
          Effect.provideService(InvalidationBus.InvalidationBus, bus)
        )
        const queue = yield* Layer.build(RefreshQueue.layerFibers())
        return yield* Job.make({
          name,
          fetch: (id: number) => Effect.sync(() => `user ${id} v${version}`),
          lifetime: "1 hour",
          tags: ([id]) => ["users", `user:${id}`]
        }).pipe(
          Effect.provide(
            Context.merge(queue, Context.make(CacheStore.CacheStore, store)).pipe(
              Context.add(InvalidationBus.InvalidationBus, bus)
            )
          )
        )
      })
      const a = yield* instance
      const b = yield* instance

      // commands the server ran, by name
      const probe = yield* RedisClient.make({ host: RedisTest.host, port: server.port, ...RedisStore.clientDefaults })
      const commands = Effect.map(
        Effect.orDie(probe.use("info", (client) => client.info("commandstats"))),
        (info) => {
          const total: Record<string, number> = {}
          for (const match of info.matchAll(/cmdstat_(\w+):calls=(\d+)/g)) total[match[1]!] = Number(match[2])
          return total
        }
      )

      const delays: Record<string, Array<number>> = { hard: [], soft: [] }
      for (let i = 0; i < 30; i++) {
        for (const mode of ["hard", "soft"] as const) {
          const id = i * 2 + (mode === "hard" ? 0 : 1)
          yield* a.get(id)
          yield* RedisTest.eventually(Effect.map(b.getWithOutcome(id), (o) => o.status === "hit"), {
            within: "2 seconds",
            every: "1 millis"
          })
          // the entry's createdAt must be before the invalidation's time (milliseconds)
          yield* sleep(2)
          if (i === 0 && mode === "hard") {
            // B's memory tier fills once A's write message has passed (a read it overtook does not)
            yield* sleep(50)
            yield* b.get(id)
            const before = yield* commands
            for (let n = 0; n < 100; n++) assert.strictEqual((yield* b.getWithOutcome(id)).status, "hit")
            const after = yield* commands
            const sent = Object.entries(after).filter(([command, calls]) =>
              command !== "info" && calls !== (before[command] ?? 0)
            )
            assert.deepStrictEqual(sent, [], "B's hits sent commands to Redis")
          }
          version++
          const start = performance.now()
          yield* a.invalidateTag(i % 2 === 0 ? "users" : `user:${id}`, { mode })
          yield* RedisTest.eventually(
            Effect.map(
              b.getWithOutcome(id),
              (o) => mode === "hard" ? o.status === "miss" : o.status === "stale"
            ),
            { within: "1 second", every: 0 }
          )
          delays[mode]!.push(performance.now() - start)
        }
      }
      for (const [mode, samples] of Object.entries(delays)) {
        log(
          `tag staleness across instances, ${mode} invalidateTag on A → B stops serving the entry as fresh (${samples.length} samples; includes A's own call): ${
            summary(samples)
          }`
        )
        assert.isBelow([...samples].sort((x, y) => x - y)[Math.floor(samples.length / 2)]!, 50)
      }
    }))
})
