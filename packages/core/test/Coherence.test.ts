/**
 * Coherence under faults, as a property: two CacheFirst instances over one shared store and one
 * bus, random interleavings of reads, upstream calls landing, writes (the source changes, then
 * the writer invalidates), and a bus that delays, reorders and loses messages (a loss is a lost
 * subscription: every message in flight to that instance is gone and it gets a `Flush`).
 *
 * The staleness bound checked (docs/failure-modes.md, "Coherence"): a read that starts once
 * every instance has heard an invalidation — it made it, the message was delivered, or it
 * flushed since — and every repair of a late write published since has arrived, never returns a
 * value older than that invalidation (two bus delays). And once the bus has
 * delivered everything, every instance serves the latest value.
 */
import { assert, describe, it } from "@effect/vitest"
import { CacheFirst, CacheStore, Coherence, InvalidationBus } from "@stalewise/core"
import { Deferred, Effect, Exit, FastCheck as fc, Fiber, FiberId, Layer, TestClock } from "effect"

type Op =
  | { readonly _tag: "read"; readonly instance: number }
  | { readonly _tag: "land"; readonly index: number }
  | { readonly _tag: "write"; readonly instance: number; readonly all: boolean }
  | { readonly _tag: "deliver"; readonly index: number }
  | { readonly _tag: "lose"; readonly instance: number }

const instance = fc.integer({ min: 0, max: 1 })
const op: fc.Arbitrary<Op> = fc.oneof(
  { arbitrary: fc.record({ _tag: fc.constant("read" as const), instance }), weight: 4 },
  { arbitrary: fc.record({ _tag: fc.constant("land" as const), index: fc.nat(7) }), weight: 3 },
  { arbitrary: fc.record({ _tag: fc.constant("write" as const), instance, all: fc.boolean() }), weight: 2 },
  { arbitrary: fc.record({ _tag: fc.constant("deliver" as const), index: fc.nat(7) }), weight: 3 },
  { arbitrary: fc.record({ _tag: fc.constant("lose" as const), instance }), weight: 1 }
)

/** Lets every fiber that can run (loads, repairs) run. */
const settle = Effect.repeatN(Effect.yieldNow(), 30)

interface Read {
  readonly fiber: Fiber.RuntimeFiber<number, unknown>
  /** The newest version every instance had heard of when the read started. */
  readonly floor: number
  readonly label: string
}

const scenario = (ops: ReadonlyArray<Op>, options: { readonly guard: boolean }) =>
  Effect.gen(function*() {
    const controlled = yield* InvalidationBus.makeControlled
    const shared = Layer.merge(
      Layer.succeed(CacheStore.CacheStore, yield* CacheStore.makeMemory()),
      Layer.succeed(InvalidationBus.InvalidationBus, controlled.bus)
    )
    // the source of truth: a version, bumped by every write; each upstream call answers the
    // version it saw when it started, once the test lets it land
    let source = 0
    const pending: Array<Deferred.Deferred<void>> = []
    const lookup = () =>
      Effect.suspend(() => {
        const seen = source
        const landed = Deferred.unsafeMake<void>(FiberId.none)
        pending.push(landed)
        return Effect.as(Deferred.await(landed), seen)
      })
    const instances = yield* Effect.forEach([0, 1], () =>
      CacheFirst.makePersisted({
        name: "user",
        timeToLive: "1 hour",
        lookup: (_id: number) => lookup()
      }).pipe(
        Effect.provide(shared)
      ))

    // which versions each instance has heard of; the version each message in flight carries
    const heard = [new Set<number>([0]), new Set<number>([0])]
    const versionOf = new Map<InvalidationBus.Event, number>()
    const published = new Set<number>([0])
    // the order messages were published in (repairs of late writes are published by the bus's
    // listeners, so they are numbered when first seen)
    let sequence = 0
    const sequenceOf = new Map<InvalidationBus.Event, number>()
    const number = () => {
      for (const message of controlled.inFlight()) {
        if (!sequenceOf.has(message.event)) sequenceOf.set(message.event, ++sequence)
      }
    }
    const publishedAt = new Map<number, number>([[0, 0]])
    // A version is settled once every instance has heard it and every repair published since
    // (a late write undone by the instance that made it) has reached the instances it was for:
    // the bound is two bus delays, one for the invalidation and one for the repair.
    const floor = () => {
      number()
      let newest = 0
      for (const v of published) {
        if (v <= newest || !heard.every((h) => h.has(v))) continue
        const since = publishedAt.get(v)!
        const repairsOnTheirWay = controlled.inFlight().some((message) =>
          !versionOf.has(message.event) && sequenceOf.get(message.event)! > since
        )
        if (!repairsOnTheirWay) newest = v
      }
      return newest
    }

    const reads: Array<Read> = []
    for (const [step, next] of ops.entries()) {
      switch (next._tag) {
        case "read": {
          const fiber = yield* Effect.fork(instances[next.instance]!.get(1))
          reads.push({ fiber, floor: floor(), label: `step ${step}: read on ${next.instance}` })
          break
        }
        case "land": {
          if (pending.length === 0) break
          const [landed] = pending.splice(next.index % pending.length, 1)
          Deferred.unsafeDone(landed!, Exit.void)
          break
        }
        case "write": {
          const version = ++source
          const before = new Set(controlled.inFlight().map((m) => m.event))
          const writer = instances[next.instance]!
          yield* next.all ? writer.invalidateAll : writer.invalidate(1)
          number()
          for (const message of controlled.inFlight()) {
            if (!before.has(message.event)) versionOf.set(message.event, version)
          }
          published.add(version)
          publishedAt.set(version, sequence)
          heard[next.instance]!.add(version)
          break
        }
        case "deliver": {
          const inFlight = controlled.inFlight()
          if (inFlight.length === 0) break
          const index = next.index % inFlight.length
          const message = inFlight[index]!
          controlled.deliver(index)
          // subscribers 0 and 1 are the instances' tiers; later ones are waits on a lease
          const version = versionOf.get(message.event)
          if (version !== undefined && message.subscriber < 2) heard[message.subscriber]!.add(version)
          break
        }
        case "lose": {
          // the subscription is lost: what was on its way is gone, and the instance flushes
          const inFlight = controlled.inFlight()
          for (let i = inFlight.length - 1; i >= 0; i--) {
            if (inFlight[i]!.subscriber === next.instance) controlled.drop(i)
          }
          controlled.flush(next.instance)
          for (const v of published) heard[next.instance]!.add(v)
          break
        }
      }
      yield* settle
    }

    // the bus catches up and every upstream call lands
    // (a wait on another instance's lease whose wake-up was lost polls: the clock moves on)
    const catchUp = (fibers: ReadonlyArray<Fiber.RuntimeFiber<unknown, unknown>>) =>
      Effect.gen(function*() {
        while (
          pending.length > 0 || controlled.inFlight().length > 0 || fibers.some((f) => f.unsafePoll() === null)
        ) {
          for (const landed of pending.splice(0)) Deferred.unsafeDone(landed, Exit.void)
          yield* settle
          controlled.deliverAll()
          yield* settle
          yield* TestClock.adjust("1 second")
        }
      })
    yield* catchUp(reads.map((read) => read.fiber))
    for (const read of reads) {
      const value = yield* Fiber.join(read.fiber)
      if (options.guard) {
        assert.isAtLeast(value, read.floor, `${read.label} served version ${value}, older than ${read.floor}`)
      }
    }
    // eventually coherent: every instance serves the latest version
    const finals = yield* Effect.forEach(instances, (cached) => Effect.fork(cached.get(1)))
    yield* settle
    yield* catchUp(finals)
    const latest = yield* Effect.forEach(finals, Fiber.join)
    return { latest, source, reads: reads.length }
  })

describe("Coherence", () => {
  it.effect.prop(
    "no read that starts after every instance heard an invalidation returns an older value",
    [fc.array(op, { minLength: 1, maxLength: 40 })],
    ([ops]) =>
      Effect.gen(function*() {
        const { latest, source } = yield* scenario(ops, { guard: true })
        assert.deepStrictEqual(latest, [source, source], "once the bus caught up, both serve the latest version")
      }).pipe(Effect.scoped),
    { fastCheck: { numRuns: 300 } }
  )

  it.effect("the classic race: a load that started before an invalidation does not re-store the old value", () =>
    Effect.gen(function*() {
      // A starts loading v0; B's write (v1) and invalidation land; A's load lands after them
      const { latest, source } = yield* scenario([
        { _tag: "read", instance: 0 },
        { _tag: "write", instance: 1, all: false },
        { _tag: "deliver", index: 0 },
        { _tag: "land", index: 0 },
        { _tag: "read", instance: 1 }
      ], { guard: true })
      assert.strictEqual(source, 1)
      assert.deepStrictEqual(latest, [1, 1])
    }).pipe(Effect.scoped))

  it.effect("a late write landing before the invalidation reaches its instance is repaired when it does", () =>
    Effect.gen(function*() {
      // A's load (v0) lands and writes after B's invalidation, before A hears of it
      const { latest } = yield* scenario([
        { _tag: "read", instance: 0 },
        { _tag: "write", instance: 1, all: false },
        { _tag: "land", index: 0 },
        { _tag: "deliver", index: 0 },
        { _tag: "read", instance: 1 }
      ], { guard: true })
      assert.deepStrictEqual(latest, [1, 1])
    }).pipe(Effect.scoped))

  it.scoped("layerLocal: invalidate and invalidateAll on one instance drop the other's in-process copies", () =>
    Effect.gen(function*() {
      let version = 0
      const make = CacheFirst.makePersisted({
        name: "user",
        timeToLive: "1 hour",
        lookup: (id: number) => Effect.sync(() => `${id} v${version}`)
      })
      const a = yield* make
      const b = yield* make
      assert.strictEqual(yield* b.get(1), "1 v0")
      assert.strictEqual(yield* b.get(2), "2 v0")
      assert.strictEqual((yield* b.getWithOutcome(1)).status, "hit")
      version++
      yield* a.invalidate(1)
      const one = yield* b.getWithOutcome(1)
      assert.deepStrictEqual([one.status, one.value], ["miss", "1 v1"])
      assert.strictEqual((yield* b.getWithOutcome(2)).value, "2 v0", "other keys are kept")
      version++
      yield* a.invalidateAll
      assert.deepStrictEqual([yield* b.get(1), yield* b.get(2)], ["1 v2", "2 v2"])
    }).pipe(Effect.provide(Layer.merge(CacheStore.layerMemory, InvalidationBus.layerLocal))))

  it.scoped("a read during a slow invalidate does not keep the value the store still held", () =>
    Effect.gen(function*() {
      const memory = yield* CacheStore.makeMemory()
      const deleting = yield* Deferred.make<void>()
      // a store whose deletes wait until the test lets them through (a slow Redis)
      const slow: CacheStore.CacheStore.Service = {
        ...memory,
        delete: (key) => Effect.zipRight(Deferred.await(deleting), memory.delete(key))
      }
      let version = 0
      const cached = yield* CacheFirst.makePersisted({
        name: "user",
        timeToLive: "1 hour",
        lookup: (id: number) => Effect.sync(() => `${id} v${version}`)
      }).pipe(Effect.provideService(CacheStore.CacheStore, slow))
      assert.strictEqual(yield* cached.get(1), "1 v0")
      version++
      const invalidating = yield* Effect.fork(cached.invalidate(1))
      yield* settle
      // the store still holds v0: this read gets it (it cannot know better yet)…
      assert.strictEqual(yield* cached.get(1), "1 v0")
      yield* Deferred.succeed(deleting, undefined)
      yield* Fiber.join(invalidating)
      // …but once the invalidation is done, nothing keeps it
      assert.strictEqual(yield* cached.get(1), "1 v1")
    }))

  it.scoped("Coherence guards loads against this instance's own invalidations without any bus", () =>
    Effect.gen(function*() {
      const dropped: Array<InvalidationBus.Target> = []
      const coherence = yield* Coherence.make({ drop: (target) => dropped.push(target) })
      assert.isFalse(coherence.connected)
      const load = coherence.begin("ns:fn:1")
      const other = coherence.begin("ns:gn:1")
      yield* coherence.invalidate({ _tag: "Prefix", prefix: "ns:fn:" })
      assert.isFalse(coherence.mayWrite(load))
      assert.isTrue(coherence.mayWrite(other))
      coherence.end(load)
      coherence.end(other)
      assert.deepStrictEqual(dropped, [], "its own invalidations are the caller's to apply")
    }))
})
