import { Error as PlatformError, KeyValueStore } from "@effect/platform"
import { NodeContext } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import { CacheEntry, CacheMetrics, CacheStore } from "@stalewise/core"
import { suite } from "@stalewise/testing/CacheStoreSuite"
import { Effect, Layer, Metric, Option } from "effect"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"

// What a corrupted entry looks like to the store: bytes that are not an entry envelope.
const corrupt = (key: string) =>
  Effect.flatMap(KeyValueStore.KeyValueStore, (kv) => kv.set(`stalewise/v/${key}`, "{not json"))

const memoryBacked = Layer.provideMerge(CacheStore.layerKeyValueStore, KeyValueStore.layerMemory)
suite("KeyValueStore (memory)", memoryBacked, { serializes: true, corrupt })

// The file-system store: every test of the suite builds its own instance on this one directory,
// concurrently — several instances sharing the data, as several processes would.
const directory = Fs.mkdtempSync(Path.join(Os.tmpdir(), "stalewise-fs-"))
const corruptFile = (key: string) =>
  Effect.sync(() => Fs.writeFileSync(Path.join(directory, "v", encodeURIComponent(key)), "{not json"))
suite("file system", CacheStore.layerFileSystem({ directory }).pipe(Layer.provide(NodeContext.layer)), {
  serializes: true,
  corrupt: corruptFile
})

// A KeyValueStore whose backend is gone: every operation fails.
const failingKeyValueStore = KeyValueStore.makeStringOnly({
  get: () => Effect.fail(down("get")),
  set: () => Effect.fail(down("set")),
  remove: () => Effect.fail(down("remove")),
  clear: Effect.fail(down("clear")),
  size: Effect.fail(down("size"))
})
function down(method: string) {
  return new PlatformError.SystemError({ reason: "Unknown", module: "KeyValueStore", method, description: "disk gone" })
}

describe("CacheStore.layerKeyValueStore", () => {
  const entry = <A>(value: A) => CacheEntry.make({ value, createdAt: 0, staleAt: 1_000, expiresAt: 60_000 })

  it.effect("keeps to its own prefix: other keys in the KeyValueStore are never touched", () =>
    Effect.gen(function*() {
      const kv = yield* KeyValueStore.KeyValueStore
      yield* kv.set("app/settings", "keep me")
      const store = yield* CacheStore.makeKeyValueStore({ prefix: "cache-a/" })
      const other = yield* CacheStore.makeKeyValueStore({ prefix: "cache-b/" })
      yield* store.set("ns:fn:1", entry(1))
      yield* other.set("ns:fn:1", entry(2))
      assert.strictEqual(yield* store.deletePrefix("ns:"), 1)
      assert.deepStrictEqual(yield* kv.get("app/settings"), Option.some("keep me"))
      assert.strictEqual(Option.getOrThrow(yield* other.get("ns:fn:1")).value, 2)
    }).pipe(Effect.provide(KeyValueStore.layerMemory)))

  it.effect("a second store over the same KeyValueStore sees the entries and the index", () =>
    Effect.gen(function*() {
      const first = yield* CacheStore.makeKeyValueStore()
      yield* first.set("ns:fn:1", entry("v"))
      const second = yield* CacheStore.makeKeyValueStore()
      assert.strictEqual(Option.getOrThrow(yield* second.get("ns:fn:1")).value, "v")
      assert.strictEqual(yield* second.deletePrefix("ns:"), 1)
      assert.isTrue(Option.isNone(yield* first.get("ns:fn:1")))
    }).pipe(Effect.provide(KeyValueStore.layerMemory)))

  it.effect("a failing KeyValueStore surfaces as CacheStoreError Unavailable", () =>
    Effect.gen(function*() {
      const store = yield* CacheStore.makeKeyValueStore()
      const error = yield* Effect.flip(store.get("ns:fn:1"))
      assert.strictEqual(error._tag, "CacheStoreError")
      assert.strictEqual(error.reason, "Unavailable")
      assert.strictEqual(error.method, "get")
      assert.strictEqual((yield* Effect.flip(store.set("ns:fn:1", entry(1)))).reason, "Unavailable")
    }).pipe(Effect.provide(Layer.succeed(KeyValueStore.KeyValueStore, failingKeyValueStore))))
})

describe("several store instances on the same data", () => {
  const entry = <A>(value: A) => CacheEntry.make({ value, createdAt: 0, staleAt: 1_000, expiresAt: 60_000 })

  it.effect("KeyValueStore: deletePrefix on one instance removes what the others wrote, concurrently", () =>
    Effect.gen(function*() {
      const stores = yield* Effect.all(Array.from({ length: 2 }, () => CacheStore.makeKeyValueStore()))
      yield* Effect.forEach(
        Array.from({ length: 10 }, (_, i) => i),
        (i) => stores[i % 2]!.set(`ns:fn:${i}`, entry(i)),
        { concurrency: "unbounded" }
      )
      assert.strictEqual(yield* stores[0]!.deletePrefix("ns:"), 10)
      for (const store of stores) {
        for (let i = 0; i < 10; i++) assert.isTrue(Option.isNone(yield* store.get(`ns:fn:${i}`)), `${i}`)
      }
    }).pipe(Effect.provide(KeyValueStore.layerMemory)))

  // Two KeyValueStore objects over one backing map: nothing shared in process but the data, as
  // two browser tabs over localStorage or two processes over one directory. Every operation
  // yields first, so concurrent index updates interleave as real I/O would.
  const separateKeyValueStores = (count: number) => {
    const data = new Map<string, string>()
    return Array.from({ length: count }, () =>
      KeyValueStore.makeStringOnly({
        get: (key) => Effect.zipRight(Effect.yieldNow(), Effect.sync(() => Option.fromNullable(data.get(key)))),
        set: (key, value) => Effect.zipRight(Effect.yieldNow(), Effect.sync(() => void data.set(key, value))),
        remove: (key) => Effect.zipRight(Effect.yieldNow(), Effect.sync(() => void data.delete(key))),
        clear: Effect.sync(() => data.clear()),
        size: Effect.sync(() => data.size)
      }))
  }
  const overEach = (kvs: ReadonlyArray<KeyValueStore.KeyValueStore>) =>
    Effect.forEach(
      kvs,
      (kv) => CacheStore.makeKeyValueStore().pipe(Effect.provideService(KeyValueStore.KeyValueStore, kv))
    )

  it.effect("separate KeyValueStores on the same data: 10 concurrent sets, deletePrefix leaves nothing readable", () =>
    Effect.gen(function*() {
      const stores = yield* overEach(separateKeyValueStores(2))
      yield* Effect.forEach(
        Array.from({ length: 10 }, (_, i) => i),
        (i) => stores[i % 2]!.set(`ns:fn:${i}`, entry(i)),
        { concurrency: "unbounded" }
      )
      yield* stores[1]!.set("other:fn:1", entry("kept"))
      yield* stores[0]!.deletePrefix("ns:")
      for (const store of stores) {
        for (let i = 0; i < 10; i++) assert.isTrue(Option.isNone(yield* store.get(`ns:fn:${i}`)), `${i}`)
        assert.strictEqual(Option.getOrThrow(yield* store.get("other:fn:1")).value, "kept")
      }
      // a write after the delete is kept, even within the same millisecond, on either instance
      yield* stores[1]!.set("ns:fn:1", entry("after"))
      assert.strictEqual(Option.getOrThrow(yield* stores[0]!.get("ns:fn:1")).value, "after")
      // and a clear (the empty prefix) reaches it, from the other instance
      yield* stores[0]!.deletePrefix("")
      assert.isTrue(Option.isNone(yield* stores[1]!.get("ns:fn:1")))
      assert.isTrue(Option.isNone(yield* stores[1]!.get("other:fn:1")))
    }))

  it.effect("separate KeyValueStores: concurrent prefix deletes on both instances both hold", () =>
    Effect.gen(function*() {
      const stores = yield* overEach(separateKeyValueStores(2))
      yield* Effect.forEach(["a", "b", "c"], (ns) => stores[0]!.set(`${ns}:fn:1`, entry(ns)), { discard: true })
      yield* Effect.all([stores[0]!.deletePrefix("a:"), stores[1]!.deletePrefix("b:")], { concurrency: 2 })
      for (const store of stores) {
        assert.isTrue(Option.isNone(yield* store.get("a:fn:1")))
        assert.isTrue(Option.isNone(yield* store.get("b:fn:1")))
        assert.strictEqual(Option.getOrThrow(yield* store.get("c:fn:1")).value, "c")
      }
    }))

  it.effect("platform file-system KeyValueStores, two on one directory: deletePrefix leaves nothing readable", () =>
    Effect.gen(function*() {
      const shared = Fs.mkdtempSync(Path.join(Os.tmpdir(), "stalewise-kvfs-two-"))
      const stores = yield* Effect.all(
        Array.from(
          { length: 2 },
          () => CacheStore.makeKeyValueStore().pipe(Effect.provide(KeyValueStore.layerFileSystem(shared)))
        )
      )
      yield* Effect.forEach(
        Array.from({ length: 10 }, (_, i) => i),
        (i) => stores[i % 2]!.set(`ns:fn:${i}`, entry(i)),
        { concurrency: "unbounded" }
      )
      yield* stores[0]!.deletePrefix("ns:")
      for (const store of stores) {
        for (let i = 0; i < 10; i++) assert.isTrue(Option.isNone(yield* store.get(`ns:fn:${i}`)), `${i}`)
      }
    }).pipe(Effect.provide(NodeContext.layer)))

  it.effect("tombstones stay bounded: many prefix deletes merge, and merging only ever deletes more", () =>
    Effect.gen(function*() {
      const kv = yield* KeyValueStore.KeyValueStore
      const store = yield* CacheStore.makeKeyValueStore()
      for (let i = 0; i < 200; i++) {
        yield* store.set(`ns${i}:fn:1`, entry(i))
        yield* store.deletePrefix(`ns${i}:`)
      }
      const tombstones = JSON.parse(Option.getOrThrow(yield* kv.get("stalewise/g"))) as ReadonlyArray<unknown>
      assert.isAtMost(tombstones.length, 64)
      for (let i = 0; i < 200; i++) assert.isTrue(Option.isNone(yield* store.get(`ns${i}:fn:1`)), `${i}`)
      yield* store.set("ns1:fn:1", entry("new"))
      assert.strictEqual(Option.getOrThrow(yield* store.get("ns1:fn:1")).value, "new")
    }).pipe(Effect.provide(KeyValueStore.layerMemory)))

  it.effect("a corrupt tombstone record reads as everything deleted, never as nothing deleted", () =>
    Effect.gen(function*() {
      const kv = yield* KeyValueStore.KeyValueStore
      const store = yield* CacheStore.makeKeyValueStore()
      yield* store.set("ns:fn:1", entry(1))
      yield* kv.set("stalewise/g", "{not json")
      assert.isTrue(Option.isNone(yield* store.get("ns:fn:1")))
      yield* store.deletePrefix("other:")
      yield* store.set("ns:fn:1", entry(2))
      assert.strictEqual(Option.getOrThrow(yield* store.get("ns:fn:1")).value, 2)
    }).pipe(Effect.provide(KeyValueStore.layerMemory)))

  it.effect("file system: two instances on one directory, 10 concurrent sets, deletePrefix leaves nothing readable", () =>
    Effect.gen(function*() {
      const shared = Fs.mkdtempSync(Path.join(Os.tmpdir(), "stalewise-fs-two-"))
      const stores = yield* Effect.all(
        Array.from({ length: 2 }, () => CacheStore.makeFileSystem({ directory: shared }))
      )
      yield* Effect.forEach(
        Array.from({ length: 10 }, (_, i) => i),
        (i) => stores[i % 2]!.set(`ns:fn:${i}`, entry(i)),
        { concurrency: "unbounded" }
      )
      yield* stores[1]!.set("other:fn:1", entry("kept"))
      assert.strictEqual(yield* stores[0]!.deletePrefix("ns:"), 10)
      for (const store of stores) {
        for (let i = 0; i < 10; i++) assert.isTrue(Option.isNone(yield* store.get(`ns:fn:${i}`)), `${i}`)
        assert.strictEqual(Option.getOrThrow(yield* store.get("other:fn:1")).value, "kept")
      }
    }).pipe(Effect.provide(NodeContext.layer)))
})

describe("CacheStore.layerFileSystem", () => {
  const entry = <A>(value: A, createdAt = 0) =>
    CacheEntry.make({ value, createdAt, staleAt: createdAt + 1_000, expiresAt: Infinity })

  it.live("one writer and three readers of one key: every read is a hit, nothing is dropped as corrupt", () =>
    Effect.gen(function*() {
      const shared = Fs.mkdtempSync(Path.join(Os.tmpdir(), "stalewise-fs-rw-"))
      const writer = yield* CacheStore.makeFileSystem({ directory: shared })
      const readers = yield* Effect.all(
        Array.from({ length: 3 }, () => CacheStore.makeFileSystem({ directory: shared }))
      )
      const payload = "x".repeat(256 * 1024)
      yield* writer.set("ns:fn:hot", entry(`0:${payload}`))
      const decodeFailures = Metric.tagged(CacheMetrics.storeDecodeFailures, "backend", "file-system")
      const failuresBefore = (yield* Metric.value(decodeFailures)).count
      let done = false
      let reads = 0
      let misses = 0
      const write = Effect.gen(function*() {
        for (let i = 1; i <= 300; i++) yield* writer.set("ns:fn:hot", entry(`${i}:${payload}`, i))
        done = true
      })
      const read = (store: CacheStore.CacheStore.Service) =>
        Effect.gen(function*() {
          while (!done) {
            const got = yield* store.get<string>("ns:fn:hot")
            reads++
            if (Option.isNone(got) || !got.value.value.endsWith(payload)) misses++
            yield* Effect.yieldNow()
          }
        })
      yield* Effect.all([write, ...readers.map(read)], { concurrency: "unbounded" })
      console.log(`file-system store, 1 writer x 300 writes, 3 readers: ${reads} reads, ${misses} missed`)
      assert.isAtLeast(reads, 3)
      assert.strictEqual(misses, 0)
      assert.strictEqual((yield* Metric.value(decodeFailures)).count - failuresBefore, 0)
    }).pipe(Effect.provide(NodeContext.layer)))

  it.live("a corrupt or foreign file is a miss and is removed; a key too long for a file name works", () =>
    Effect.gen(function*() {
      const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "stalewise-fs-corrupt-"))
      const store = yield* CacheStore.makeFileSystem({ directory: dir })
      const long = `ns:fn:${"k".repeat(1_000)}`
      yield* store.set(long, entry("long"))
      assert.strictEqual(Option.getOrThrow(yield* store.get(long)).value, "long")
      assert.strictEqual(yield* store.deletePrefix("ns:"), 1)
      Fs.writeFileSync(Path.join(dir, "v", encodeURIComponent("ns:fn:1")), "{not json")
      assert.isTrue(Option.isNone(yield* store.get("ns:fn:1")))
      assert.isFalse(Fs.existsSync(Path.join(dir, "v", encodeURIComponent("ns:fn:1"))))
      assert.deepStrictEqual(Fs.readdirSync(Path.join(dir, "t")), [], "no temporary file left behind")
    }).pipe(Effect.provide(NodeContext.layer)))

  it.live(
    "several processes on one directory: one lease winner among 6; deletePrefix removes what every process wrote",
    () =>
      Effect.gen(function*() {
        const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "stalewise-fs-procs-"))
        const fixture = fileURLToPath(new URL("./fixtures/fileSystemProcess.ts", import.meta.url))
        const run = (mode: string, id: number, startAt: number) =>
          Effect.promise(() =>
            new Promise<string>((resolve, reject) =>
              ChildProcess.execFile(
                process.execPath,
                ["--import", "tsx", fixture, dir, String(startAt), mode, String(id)],
                { cwd: fileURLToPath(new URL("..", import.meta.url)) },
                (error, stdout) => error ? reject(error) : resolve(stdout.trim())
              )
            )
          )
        // the processes start their work at the same moment, after all of them have loaded
        const leaseStart = Date.now() + 4_000
        const leases = yield* Effect.all(Array.from({ length: 6 }, (_, i) => run("lease", i, leaseStart)), {
          concurrency: "unbounded"
        })
        assert.strictEqual(leases.filter((answer) => answer === "won").length, 1, leases.join(","))
        const writeStart = Date.now() + 4_000
        const writes = yield* Effect.all(Array.from({ length: 3 }, (_, i) => run("write", i, writeStart)), {
          concurrency: "unbounded"
        })
        assert.deepStrictEqual(writes, ["written", "written", "written"])
        const store = yield* CacheStore.makeFileSystem({ directory: dir })
        assert.strictEqual(yield* store.deletePrefix("ns:"), 150)
        assert.isTrue(Option.isNone(yield* store.get("ns:fn:2-49")))
      }).pipe(Effect.provide(NodeContext.layer)),
    { timeout: 60_000 }
  )
})
