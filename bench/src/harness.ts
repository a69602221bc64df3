/**
 * The benchmark harness. A scenario pits several contenders against one baseline (the floor: the
 * cheapest honest way to do the same work) and reports every contender as a ratio to it, because
 * absolute numbers move with the machine while ratios measured side by side mostly do not.
 *
 * Contenders run interleaved: after warm-up rounds, each round runs every contender once, so
 * drift (thermal, background load, JIT and GC state) hits all of them alike. The starting
 * contender rotates from round to round so none always runs right after the same neighbour and
 * pays for its garbage. Each run is a fresh `Effect.runPromise` timed with `performance.now()`.
 * The heap is not collected between runs: a forced full collection slowed the next run of
 * 100,000 Effect reads from 6 ms to 22 ms on Node 20 (it penalises fast contenders most), while
 * rotation already spreads ordinary garbage fairly.
 *
 * Two kinds of scenario:
 * - `throughput`: a run performs `size` operations; reported as operations per second.
 * - `latency`: a run returns one latency in milliseconds per call; reported as p50/p95/p99 over
 *   every call of every measured round, compared on p50.
 *
 * The harness itself is plain async code on purpose: an Effect driver would put its own fiber
 * and scheduler work around every measured run.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"

/**
 * One way of doing the scenario's work. `setup` builds everything outside the timing (stores,
 * loaded keys, connections; finalizers go to the scenario's scope) and returns the program for
 * one measured run of `size` operations or calls. The program is run once per round, so it must
 * be re-runnable: keep per-run state inside it (see `repeat`).
 *
 * @since 0.1.0
 * @category models
 */
export interface Contender<Out> {
  readonly name: string
  /** The floor every other contender is compared with; exactly one per scenario. */
  readonly baseline?: boolean | undefined
  /**
   * The ratio to the baseline this contender should reach: a minimum for throughput (ops/s
   * ratio), a maximum for latency (p50 ratio).
   */
  readonly target?: number | undefined
  readonly setup: (size: number) => Effect.Effect<Effect.Effect<Out, unknown>, unknown, Scope.Scope>
}

/**
 * @since 0.1.0
 * @category models
 */
export interface ScenarioOptions<Out> {
  /** Short, filterable: `hot-hit`. */
  readonly name: string
  /** One sentence: what is measured. */
  readonly description: string
  /** What one operation is, plural: `reads`, `calls`. */
  readonly unit: string
  /** Operations (throughput) or calls (latency) per run. */
  readonly size: number
  /** `size` under `--quick`; defaults to a tenth of `size`. */
  readonly quickSize?: number | undefined
  readonly contenders: ReadonlyArray<Contender<Out>>
}

/**
 * @since 0.1.0
 * @category models
 */
export interface ThroughputScenario extends ScenarioOptions<unknown> {
  readonly kind: "throughput"
}

/**
 * @since 0.1.0
 * @category models
 */
export interface LatencyScenario extends ScenarioOptions<ReadonlyArray<number>> {
  readonly kind: "latency"
}

/**
 * @since 0.1.0
 * @category models
 */
export type Scenario = ThroughputScenario | LatencyScenario

/**
 * A scenario whose runs each perform `size` operations, reported in operations per second.
 *
 * @since 0.1.0
 * @category constructors
 */
export const throughput = (options: ScenarioOptions<unknown>): ThroughputScenario => ({
  ...options,
  kind: "throughput"
})

/**
 * A scenario whose runs each return `size` per-call latencies in milliseconds.
 *
 * @since 0.1.0
 * @category constructors
 */
export const latency = (options: ScenarioOptions<ReadonlyArray<number>>): LatencyScenario => ({
  ...options,
  kind: "latency"
})

// Where `repeat` puts each result, so no engine can prove a read unused.
const sink: { value: unknown } = { value: undefined }

/**
 * Runs `body` `times` times, one after the other in the current fiber, with the cheapest loop
 * Effect has: `Effect.whileLoop` is a primitive of the fiber runtime (no generator, no
 * `flatMap` chain). The counter lives inside the program, so every run starts again from zero.
 * Use it for every contender of a scenario so that only the body differs.
 *
 * @since 0.1.0
 * @category combinators
 */
export const repeat = <A, E>(times: number, body: () => Effect.Effect<A, E>): Effect.Effect<void, E> =>
  Effect.suspend(() => {
    let i = 0
    return Effect.whileLoop({
      while: () => i++ < times,
      body,
      step: (a) => {
        sink.value = a
      }
    })
  })

/**
 * Starts `calls` fibers at once, each calling `call(i)`, and returns every call's latency in
 * milliseconds, measured from the moment that fiber starts the call to its result.
 *
 * @since 0.1.0
 * @category combinators
 */
export const concurrentLatencies = <A, E>(
  calls: number,
  call: (i: number) => Effect.Effect<A, E>
): Effect.Effect<Array<number>, E> =>
  Effect.forEach(
    Array.from({ length: calls }, (_, i) => i),
    (i) =>
      Effect.suspend(() => {
        const start = performance.now()
        return Effect.map(call(i), () => performance.now() - start)
      }),
    { concurrency: "unbounded" }
  )

/**
 * @since 0.1.0
 * @category models
 */
export interface RunOptions {
  /** Fewer rounds and `quickSize` operations: a smoke run. */
  readonly quick: boolean
  /** Overrides the number of measured rounds. */
  readonly rounds?: number | undefined
  /** Progress lines. */
  readonly log: (line: string) => void
}

/**
 * p25, median and p75 of a set of per-round numbers, with its extremes.
 *
 * @since 0.1.0
 * @category models
 */
export interface Spread {
  readonly median: number
  readonly p25: number
  readonly p75: number
  readonly min: number
  readonly max: number
}

/**
 * @since 0.1.0
 * @category models
 */
export interface ContenderResult {
  readonly name: string
  readonly baseline: boolean
  /** Throughput: ops/s of each measured round. Latency: p50 (ms) of each measured round. */
  readonly rounds: ReadonlyArray<number>
  readonly spread: Spread
  /** Latency only: percentiles (ms) over every call of every measured round. */
  readonly latency?: { readonly p50: number; readonly p95: number; readonly p99: number; readonly calls: number }
  /** Throughput: median ops/s ÷ baseline's. Latency: p50 ÷ baseline's p50. */
  readonly ratio: number
  /** The same ratio within each round (against the baseline's run of that round). */
  readonly pairedRatio: Spread
  readonly target?: number
  /** PASS when `ratio` meets `target` (≥ for throughput, ≤ for latency). */
  readonly verdict?: "PASS" | "BELOW"
  /** The per-round ratios' p25–p75 straddles the target: the verdict could flip on another run. */
  readonly marginal?: boolean
}

/**
 * @since 0.1.0
 * @category models
 */
export interface ScenarioResult {
  readonly name: string
  readonly kind: Scenario["kind"]
  readonly description: string
  readonly unit: string
  readonly size: number
  readonly warmup: number
  readonly rounds: number
  readonly durationMs: number
  readonly contenders: ReadonlyArray<ContenderResult>
}

/** Percentile `p` (0–1) of sorted numbers, interpolated between neighbours. */
const percentileSorted = (sorted: ReadonlyArray<number>, p: number): number => {
  if (sorted.length === 0) return NaN
  const at = (sorted.length - 1) * p
  const lo = Math.floor(at)
  const hi = Math.ceil(at)
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (at - lo)
}

const sortNumbers = (values: ReadonlyArray<number>): Array<number> => [...values].sort((a, b) => a - b)

/**
 * @since 0.1.0
 * @category combinators
 */
export const spreadOf = (values: ReadonlyArray<number>): Spread => {
  const sorted = sortNumbers(values)
  return {
    median: percentileSorted(sorted, 0.5),
    p25: percentileSorted(sorted, 0.25),
    p75: percentileSorted(sorted, 0.75),
    min: sorted[0] ?? NaN,
    max: sorted[sorted.length - 1] ?? NaN
  }
}

/**
 * Runs a scenario: builds every contender, runs warm-up rounds, then the measured rounds, all
 * interleaved; then computes ratios to the baseline. Rejects when a setup or a run fails.
 *
 * @since 0.1.0
 * @category running
 */
export const runScenario = async (scenario: Scenario, options: RunOptions): Promise<ScenarioResult> => {
  const baselines = scenario.contenders.filter((c) => c.baseline === true)
  if (baselines.length !== 1) {
    throw new Error(`scenario ${scenario.name}: expected exactly one baseline contender, found ${baselines.length}`)
  }
  const size = options.quick ? (scenario.quickSize ?? Math.max(1, Math.round(scenario.size / 10))) : scenario.size
  const warmup = options.quick ? 1 : 2
  const rounds = options.rounds ?? (options.quick ? 3 : 15)
  const started = performance.now()
  const scope = Effect.runSync(Scope.make())
  try {
    const programs: Array<Effect.Effect<unknown, unknown>> = []
    for (const contender of scenario.contenders) {
      programs.push(await Effect.runPromise(Scope.extend(contender.setup(size), scope)))
    }
    const count = programs.length
    // throughput: elapsed ms per run; latency: the run's per-call latencies
    const samples: Array<Array<number | ReadonlyArray<number>>> = programs.map(() => [])
    for (let round = 0; round < warmup + rounds; round++) {
      const measured = round >= warmup
      options.log(`  ${scenario.name}: ${measured ? `round ${round - warmup + 1}/${rounds}` : "warm-up"}`)
      for (let k = 0; k < count; k++) {
        const index = (round + k) % count
        const start = performance.now()
        const out = await Effect.runPromise(programs[index]!)
        const elapsed = performance.now() - start
        if (!measured) continue
        if (scenario.kind === "latency") {
          if (!Array.isArray(out)) {
            throw new Error(`${scenario.contenders[index]!.name}: a latency run must return ms[]`)
          }
          samples[index]!.push(out as ReadonlyArray<number>)
        } else {
          samples[index]!.push(elapsed)
        }
      }
    }
    const contenders = summarize(scenario, size, samples)
    return {
      name: scenario.name,
      kind: scenario.kind,
      description: scenario.description,
      unit: scenario.unit,
      size,
      warmup,
      rounds,
      durationMs: performance.now() - started,
      contenders
    }
  } finally {
    await Effect.runPromise(Scope.close(scope, Exit.void))
  }
}

const summarize = (
  scenario: Scenario,
  size: number,
  samples: ReadonlyArray<ReadonlyArray<number | ReadonlyArray<number>>>
): Array<ContenderResult> => {
  const baselineIndex = scenario.contenders.findIndex((c) => c.baseline === true)
  const higherIsBetter = scenario.kind === "throughput"
  // One number per round: ops/s, or that round's p50
  const perRound = samples.map((runs) =>
    runs.map((run) => typeof run === "number" ? size / (run / 1000) : percentileSorted(sortNumbers(run), 0.5))
  )
  const pooled = samples.map((runs) =>
    scenario.kind === "latency" ? sortNumbers(runs.flatMap((run) => run as ReadonlyArray<number>)) : []
  )
  const headline = (index: number): number =>
    scenario.kind === "latency" ? percentileSorted(pooled[index]!, 0.5) : spreadOf(perRound[index]!).median
  const baselineRounds = perRound[baselineIndex]!
  return scenario.contenders.map((contender, index) => {
    const rounds = perRound[index]!
    const ratio = headline(index) / headline(baselineIndex)
    const pairedRatio = spreadOf(rounds.map((value, round) => value / baselineRounds[round]!))
    const base = {
      name: contender.name,
      baseline: index === baselineIndex,
      rounds,
      spread: spreadOf(rounds),
      ratio,
      pairedRatio
    }
    const withLatency = scenario.kind === "latency"
      ? {
        ...base,
        latency: {
          p50: percentileSorted(pooled[index]!, 0.5),
          p95: percentileSorted(pooled[index]!, 0.95),
          p99: percentileSorted(pooled[index]!, 0.99),
          calls: pooled[index]!.length
        }
      }
      : base
    if (contender.target === undefined) return withLatency
    const target = contender.target
    const meets = (r: number) => higherIsBetter ? r >= target : r <= target
    return {
      ...withLatency,
      target,
      verdict: meets(ratio) ? "PASS" : "BELOW",
      marginal: meets(pairedRatio.p25) !== meets(pairedRatio.p75)
    }
  })
}

const formatRate = (opsPerSecond: number): string =>
  opsPerSecond >= 1e6
    ? `${(opsPerSecond / 1e6).toFixed(2)}M`
    : opsPerSecond >= 1e3
    ? `${(opsPerSecond / 1e3).toFixed(1)}k`
    : opsPerSecond.toFixed(0)

const formatMillis = (ms: number): string =>
  ms < 1 ? `${(ms * 1000).toFixed(1)}µs` : ms < 1000 ? `${ms.toFixed(2)}ms` : `${(ms / 1000).toFixed(2)}s`

const formatRatio = (ratio: number): string => `${ratio >= 100 ? ratio.toFixed(0) : ratio.toFixed(2)}×`

const formatTarget = (result: ContenderResult, kind: Scenario["kind"]): string =>
  result.target === undefined ? "" : `${kind === "throughput" ? "≥" : "≤"} ${formatRatio(result.target)}`

const formatVerdict = (result: ContenderResult): string =>
  result.verdict === undefined ? "" : `${result.verdict}${result.marginal === true ? "~" : ""}`

/** Pads every column to its widest cell: text left-aligned, numbers right-aligned. */
const table = (header: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>): string => {
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((row) => row[c]!.length)))
  const line = (cells: ReadonlyArray<string>) =>
    cells.map((cell, c) => c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!)).join("  ").trimEnd()
  return [line(header), widths.map((w) => "─".repeat(w)).join("  "), ...rows.map(line)].join("\n")
}

/**
 * The scenario as a fixed-width table, with a header line and a legend.
 *
 * @since 0.1.0
 * @category formatting
 */
export const formatResult = (result: ScenarioResult): string => {
  const title = `${result.name} — ${result.description}`
  const setting = `${result.kind}, ${
    result.size.toLocaleString("en-US")
  } ${result.unit} per run, ${result.warmup} warm-up + ${result.rounds} measured rounds interleaved, ${
    (result.durationMs / 1000).toFixed(1)
  }s`
  const baseline = result.contenders.find((c) => c.baseline)!
  const rows = result.contenders.map((c) => {
    const name = c.baseline ? `${c.name} (floor)` : c.name
    const paired = c.baseline ? "" : `${formatRatio(c.pairedRatio.p25)}–${formatRatio(c.pairedRatio.p75)}`
    const mark = [formatTarget(c, result.kind), formatVerdict(c)]
    if (result.kind === "throughput") {
      return [
        name,
        formatRate(c.spread.median),
        `${formatRate(c.spread.p25)}–${formatRate(c.spread.p75)}`,
        `${formatRate(c.spread.min)}–${formatRate(c.spread.max)}`,
        formatRatio(c.ratio),
        paired,
        ...mark
      ]
    }
    return [
      name,
      formatMillis(c.latency!.p50),
      formatMillis(c.latency!.p95),
      formatMillis(c.latency!.p99),
      `${formatMillis(c.spread.min)}–${formatMillis(c.spread.max)}`,
      formatRatio(c.ratio),
      paired,
      ...mark
    ]
  })
  const header = result.kind === "throughput"
    ? [
      "contender",
      `${result.unit}/s median`,
      "p25–p75",
      "min–max",
      "× floor",
      "per-round ×",
      "target",
      "verdict"
    ]
    : ["contender", "p50", "p95", "p99", "p50 min–max", "p50 × floor", "per-round ×", "target", "verdict"]
  // Target and verdict columns only when some contender has a target
  const columns = result.contenders.some((c) => c.target !== undefined) ? header.length : header.length - 2
  const legend = result.kind === "throughput"
    ? `× floor: median ÷ ${baseline.name}'s median (higher is better); per-round ×: p25–p75 of the same ratio within each round`
    : `× floor: p50 ÷ ${baseline.name}'s p50 (lower is better); per-round ×: p25–p75 of the same ratio within each round`
  const marginal = result.contenders.some((c) => c.marginal === true)
    ? "\n~: the per-round ratios straddle the target, the verdict is within noise"
    : ""
  const shown = table(header.slice(0, columns), rows.map((row) => row.slice(0, columns)))
  return `${title}\n${setting}\n\n${shown}\n\n${legend}${marginal}`
}

/**
 * One line: every contender's ratio to the floor, with verdicts.
 *
 * @since 0.1.0
 * @category formatting
 */
export const formatSummary = (result: ScenarioResult): string => {
  const baseline = result.contenders.find((c) => c.baseline)!
  const parts = result.contenders.filter((c) => !c.baseline).map((c) => {
    const verdict = c.verdict === undefined ? "" : ` (target ${formatTarget(c, result.kind)}: ${formatVerdict(c)})`
    return `${c.name} ${formatRatio(c.ratio)}${verdict}`
  })
  const floor = result.kind === "throughput"
    ? `${formatRate(baseline.spread.median)} ${result.unit}/s`
    : `p50 ${formatMillis(baseline.latency!.p50)}`
  return `${result.name}: ${parts.join(", ")} — vs ${baseline.name} at ${floor}`
}
