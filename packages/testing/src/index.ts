/**
 * The conformance suite every `CacheStore` backend runs: `suite(name, layer, features)`.
 * Each test builds its own store from `layer` inside the test (so the store sees the test's
 * `TestClock`) and uses its own namespace, so tests can run concurrently against a shared backend.
 *
 * @since 0.1.0
 */
export * as CacheStoreSuite from "./CacheStoreSuite.js"

/**
 * A chaos `CacheStore`: wraps a real store and, per operation, fails it, slows it down or hangs it,
 * with probabilities you choose — the store misbehaving the way Redis does on a bad day, in a
 * unit test. Draws come from a generator seeded with `seed`, so a run is repeatable; delays run on
 * Effect's `Clock`, so `TestClock` drives them; a hang never completes but stays interruptible,
 * so callers' timeouts fire as they would in production.
 *
 * @since 0.1.0
 */
export * as ChaosStore from "./ChaosStore.js"

/**
 * Records the spans a program starts, for asserting on traces (which calls were traced, with
 * which attributes) without an exporter: it wraps the tracer in context, so spans still behave
 * as they would, and keeps every span it creates.
 *
 * @since 0.1.0
 */
export * as SpanRecorder from "./SpanRecorder.js"

/**
 * A controllable upstream for tests: a `lookup` to hand to a strategy (`Failover`, `CacheFirst`, a
 * refresh `Job`), whose behaviour the test switches on cue — answer, answer after a delay, fail,
 * hang, die — and which counts its calls, the calls in flight and the calls interrupted. Delays
 * run on Effect's `Clock`, so `TestClock.adjust` drives them.
 *
 * @since 0.1.0
 */
export * as TestUpstream from "./TestUpstream.js"
