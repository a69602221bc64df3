/**
 * What callers see when a Redis Cluster changes under load, on clusters of each test's own (3
 * masters, 3 replicas, `cluster-node-timeout` 1 s): a master killed (SIGKILL) while callers read
 * through a `Job`, and slots migrated (`redis-cli --cluster reshard`) while callers read,
 * write and take leases on keys in those slots. The figures are logged (`[stalewise] …`) and
 * reported in docs/redis-cluster.md. The tests run one after the other: both load the machine.
 */
import { assert, describe, it } from "@effect/vitest"
import { CacheEntry, CacheMetrics, CacheStore } from "@stalewise/core"
import { RedisClient, RedisInvalidationBus, RedisStore } from "@stalewise/redis"
import { Job, RefreshQueue } from "@stalewise/refresh"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as RedisCluster from "./utils/RedisCluster.js"
import * as RedisTest from "./utils/RedisTest.js"

const log = (message: string) => console.info(`[stalewise] ${message}`)

const entry = <A>(value: A) => CacheEntry.make({ value, createdAt: 0, staleAt: 60_000, expiresAt: Infinity })

const build = (options: RedisStore.LayerOptions) =>
  Effect.map(Layer.build(RedisStore.layer(options)), Context.get(CacheStore.CacheStore))

const storeErrors = Effect.map(
  Metric.value(Metric.tagged(CacheMetrics.storeErrors, "backend", "redis")),
  (state) => state.count
)

/** `count` cache keys whose entries (`${keyPrefix}v:{key}`) hash into one of `slots`. */
const keysIn = (keyPrefix: string, name: string, slots: ReadonlyArray<readonly [number, number]>, count: number) => {
  const keys: Array<string> = []
  for (let i = 0; keys.length < count; i++) {
    const key = `${name}:${i}`
    const slot = RedisCluster.slotOf(`${keyPrefix}v:{${key}}`)
    if (slots.some(([first, last]) => slot >= first && slot <= last)) keys.push(key)
  }
  return keys
}

const percentile = (samples: ReadonlyArray<number>, p: number) => {
  const sorted = [...samples].sort((x, y) => x - y)
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? 0
}

/** Runs `call` from `callers` fibers in a loop until `stop()`; each call's duration and outcome. */
const load = <E>(
  callers: number,
  stop: () => boolean,
  call: (caller: number, round: number) => Effect.Effect<void, E>
) =>
  Effect.gen(function*() {
    const durations: Array<number> = []
    const errors: Array<unknown> = []
    yield* Effect.forEach(
      Array.from({ length: callers }, (_, caller) => caller),
      (caller) =>
        Effect.gen(function*() {
          for (let round = 0; !stop(); round++) {
            const start = performance.now()
            const result = yield* Effect.either(call(caller, round))
            durations.push(performance.now() - start)
            if (Either.isLeft(result)) errors.push(result.left)
            // a turn of the event loop between calls, so that timers and sockets are served
            yield* Effect.promise(() => new Promise((resolve) => setImmediate(resolve)))
          }
        }),
      { concurrency: "unbounded", discard: true }
    )
    return { durations, errors }
  })

describe.skipIf(!RedisTest.clusterAvailable).sequential(
  "Redis Cluster faults (private cluster: a master killed, slots migrated)",
  () => {
    RedisTest.assertNoUnhandledRejections()

    it.scopedLive("a master killed under load: its replica takes over, callers get answers throughout, the store recovers", () =>
      Effect.gen(function*() {
        const cluster = yield* RedisTest.privateCluster
        const keyPrefix = "cache:"
        const commandTimeout = 500
        const store = yield* build({ nodes: cluster.nodes, keyPrefix, commandTimeout })
        const refresh = yield* Layer.build(RefreshQueue.layerFibers())
        let upstream = 0
        // a job reads the store on every call (no in-process copy), so every call meets the cluster
        const profile = yield* Job.make({
          name: "profile",
          argsSchema: Schema.Tuple(Schema.Number),
          schema: Schema.String,
          key: (id: number) => String(id),
          fetch: (id: number) => Effect.sync(() => `profile ${id} #${++upstream}`),
          lifetime: "1 minute"
        }).pipe(Effect.provide(refresh), Effect.provideService(CacheStore.CacheStore, store))
        const ids = Array.from({ length: 300 }, (_, id) => id)
        for (const id of ids) yield* profile.get(id)
        yield* Effect.sleep("100 millis") // the writes after the upstream calls have landed

        const nodes = yield* cluster.describe(cluster.ports[0]!)
        const victim = nodes.find((node) => node.master && node.slots.length > 0)!
        const heir = nodes.find((node) => node.masterId === victim.id)!
        // store keys on the victim's slots, read directly to see when the store answers for them again
        const probes = keysIn(keyPrefix, "probe", victim.slots, 5)
        for (const key of probes) yield* store.set(key, entry(key))
        const errorsBefore = yield* storeErrors

        let done = false
        let killedAt = 0
        const probeResults: Array<{ readonly at: number; readonly ok: boolean }> = []
        const probing = Effect.gen(function*() {
          for (let round = 0; !done; round++) {
            const read = yield* Effect.either(store.get(probes[round % probes.length]!))
            probeResults.push({ at: performance.now(), ok: Either.isRight(read) && Option.isSome(read.right) })
            yield* Effect.sleep("10 millis")
          }
        })
        const loading = load(
          16,
          () => done,
          (caller, round) => Effect.asVoid(profile.get(ids[(caller * 7919 + round * 31) % ids.length]!))
        )
        const [{ durations, errors }] = yield* Effect.all([
          loading,
          probing,
          Effect.gen(function*() {
            yield* Effect.sleep("500 millis")
            killedAt = performance.now()
            yield* cluster.kill(victim.port)
            // until the store has answered for the victim's slots for a while, and at least 4 s
            yield* RedisTest.eventually(
              Effect.sync(() => {
                const last = probeResults.slice(-10)
                return performance.now() - killedAt > 4_000 && last.length === 10 && last.every((p) => p.ok)
              }),
              { within: "20 seconds", every: "20 millis" }
            )
            done = true
          })
        ], { concurrency: "unbounded" })

        const afterKill = probeResults.filter((p) => p.at > killedAt)
        const lastFailure = afterKill.filter((p) => !p.ok).at(-1)
        const recoveredAfter = lastFailure === undefined ? 0 : lastFailure.at - killedAt
        const failedProbes = afterKill.filter((p) => !p.ok).length
        const errorsDuring = (yield* storeErrors) - errorsBefore
        const slowest = Math.max(...durations)
        log(
          `master killed under load (16 callers through a Job, commandTimeout ${commandTimeout} ms, ` +
            `cluster-node-timeout 1 s): ${durations.length} calls, ${errors.length} caller errors, ` +
            `p50 ${percentile(durations, 0.5).toFixed(1)} ms, p99 ${percentile(durations, 0.99).toFixed(1)} ms, ` +
            `slowest ${slowest.toFixed(0)} ms; ${errorsDuring} store errors counted; ` +
            `the store answered again for the killed master's slots ${recoveredAfter.toFixed(0)} ms after the kill ` +
            `(${failedProbes} failed probe reads)`
        )
        assert.strictEqual(errors.length, 0, "every caller got an answer (from the store or the upstream)")
        assert.isBelow(slowest, commandTimeout * 2 + 500, "no call hung: each store call ends at commandTimeout")
        assert.isAbove(errorsDuring, 0, "the store errors were counted")
        // the replica took over: the probes' values are still there (it had replicated them)
        for (const key of probes) assert.strictEqual(Option.getOrThrow(yield* store.get(key)).value, key)
        const after = yield* cluster.describe(heir.port)
        assert.isTrue(after.find((node) => node.id === heir.id)!.master, "the replica is a master now")
      }))

    it.scopedLive("slots migrated under load (reshard): every read finds the latest write, leases stay exclusive, no caller error", () =>
      Effect.gen(function*() {
        const cluster = yield* RedisTest.privateCluster
        const keyPrefix = "cache:"
        const store = yield* build({ nodes: cluster.nodes, keyPrefix, commandTimeout: "2 seconds" })
        const nodes = yield* cluster.describe(cluster.ports[0]!)
        const masters = nodes.filter((node) => node.master && node.slots.length > 0)
        const [from, to] = [masters[0]!, masters[1]!]
        // redis-cli moves the source's lowest slots first: keys in the first 20 of them move
        const first = Math.min(...from.slots.map(([start]) => start))
        const moving = 20
        const keys = keysIn(keyPrefix, "k", [[first, first + moving - 1]], 60)
        const latest = new Map<string, number>()
        for (const key of keys) {
          yield* store.set(key, entry(0))
          latest.set(key, 0)
        }

        let done = false
        const misses: Array<string> = []
        const stale: Array<string> = []
        let leaseConflicts = 0
        const held = new Set<string>()
        const loading = load(12, () => done, (caller, round) => {
          // 60 keys, 12 callers: caller c alone writes the keys c, c + 12, … (so values only grow);
          // reads and leases go to any key
          const owned = keys[(caller + 12 * Math.floor(round / 3)) % keys.length]!
          const key = keys[(caller * 13 + round) % keys.length]!
          switch (round % 3) {
            case 0: {
              const next = (latest.get(owned) ?? 0) + 1
              return Effect.tap(store.set(owned, entry(next)), () => Effect.sync(() => latest.set(owned, next)))
            }
            case 1: {
              const expected = latest.get(key) ?? 0
              return Effect.map(store.get<number>(key), (found) => {
                if (Option.isNone(found)) misses.push(key)
                else if (found.value.value < expected) stale.push(key)
              })
            }
            default:
              return Effect.flatMap(store.acquireLease(key, "10 seconds"), (lease) => {
                if (Option.isNone(lease)) return Effect.void
                if (held.has(key)) leaseConflicts++
                held.add(key)
                return Effect.zipRight(
                  Effect.sync(() => held.delete(key)),
                  Effect.asVoid(store.releaseLease(lease.value))
                )
              })
          }
        })
        const [{ durations, errors }, took] = yield* Effect.all([
          loading,
          Effect.gen(function*() {
            yield* Effect.sleep("300 millis")
            const start = performance.now()
            yield* cluster.reshard(from.port, to.port, moving)
            const took = performance.now() - start
            yield* Effect.sleep("300 millis")
            done = true
            return took
          })
        ], { concurrency: "unbounded" })

        const after = yield* cluster.describe(to.port)
        const owner = after.find((node) => node.slots.some(([start, end]) => first >= start && first <= end))
        log(
          `reshard of ${moving} slots (${keys.length} keys) under load (12 callers: set, get, lease): ` +
            `took ${took.toFixed(0)} ms; ${durations.length} calls, ${errors.length} caller errors, ` +
            `${misses.length} misses, ${stale.length} stale reads, p99 ${percentile(durations, 0.99).toFixed(1)} ms, ` +
            `slowest ${Math.max(...durations).toFixed(0)} ms`
        )
        assert.strictEqual(owner?.id, to.id, "the slots moved")
        assert.deepStrictEqual(errors, [], "MOVED and ASK were followed")
        assert.deepStrictEqual(misses, [], "no entry was lost")
        assert.deepStrictEqual(stale, [], "no read went back in time")
        assert.strictEqual(leaseConflicts, 0)
        for (const key of keys) {
          assert.strictEqual(Option.getOrThrow(yield* store.get<number>(key)).value, latest.get(key), key)
        }
        // a prefix delete walks every master, the new owner of the moved slots included
        assert.strictEqual(yield* store.deletePrefix("k:"), keys.length)
      }))

    it.scopedLive("the node a bus listens on killed: the bus flushes, subscribes on another node and hears the next message", () =>
      Effect.gen(function*() {
        const cluster = yield* RedisTest.privateCluster
        const channel = "app:invalidate"
        const busOn = (name: string) =>
          Effect.flatMap(
            RedisClient.make({ nodes: cluster.nodes, connectionName: name, ...RedisStore.clientDefaults }),
            (redis) => Effect.provideService(RedisInvalidationBus.make({ channel }), RedisClient.RedisClient, redis)
          )
        const [a, b] = [yield* busOn("bus-a"), yield* busOn("bus-b")]
        const heard: Array<{ readonly event: string; readonly at: number }> = []
        yield* b.subscribe((event) =>
          heard.push({
            event: event._tag === "Flush" ? event.reason : event._tag === "Key" ? event.key : event.prefix,
            at: performance.now()
          })
        )
        // a message from a, until b hears it (a's PUBLISH may meet the dead node and fail: it is retried)
        const hears = (key: string) =>
          RedisTest.eventually(
            Effect.zipRight(
              a.publish({ _tag: "Key", key, origin: "a", at: Date.now() }),
              Effect.sync(() => heard.some((h) => h.event === key))
            ),
            { within: "10 seconds", every: "50 millis" }
          )
        yield* hears("before")
        // the node holding b's subscriber connection
        const lists = yield* Effect.forEach(
          cluster.ports,
          (port) =>
            Effect.promise(() => RedisCluster.command(port, "CLIENT", "LIST", "TYPE", "pubsub")).pipe(
              Effect.map((list) => ({ port, list: String(list) }))
            )
        )
        const listening = lists.find(({ list }) => list.includes("name=bus-b"))!
        const killedAt = performance.now()
        yield* cluster.kill(listening.port)
        yield* hears("after")
        const heardAfter = performance.now() - killedAt
        const events = heard.filter((h) => h.at > killedAt).map((h) => h.event)
        const resubscribed = heard.find((h) => h.at > killedAt && h.event === "Resubscribed")!
        log(
          `bus on a cluster, its node killed: flushed (Disconnected) at once, subscribed on another node after ` +
            `${(resubscribed.at - killedAt).toFixed(0)} ms, heard the next message ${
              heardAfter.toFixed(0)
            } ms after the kill`
        )
        assert.deepStrictEqual(events.slice(0, 2), ["Disconnected", "Resubscribed"])
        assert.include(events, "after")
      }))
  }
)
