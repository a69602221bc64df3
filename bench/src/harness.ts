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
 *   every call of every measured round, compared on p50. A latency scenario may declare
 *   `phases` (say, two waves of calls): a run then returns the latencies of each phase, and each
 *   phase is reported and compared on its own. A latency run may also return `counts` (say,
 *   upstream calls), reported per contender over the rounds.
 *
 * A contender's target is a ratio to the baseline, or for latency an absolute p50 bound or a bound
 * on the ratio of a phase to the same contender's `ownPhase` (a stale read against its own hit);
 * one contender may be marked `reference` to get a second ratio column next to the baseline's.
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
 * A bound a contender should meet. A number is a ratio to the baseline: a minimum for throughput
 * (ops/s ratio), a maximum for latency (p50 ratio). `{ p50Millis }` is an absolute maximum p50 in
 * milliseconds, for latency scenarios where the floor is too close to zero for a ratio to mean
 * much. `{ ownRatio }` (latency scenarios with `ownPhase`, in `phaseTargets` of another phase) is a
 * maximum of the contender's p50 in that phase over its own p50 in `ownPhase`: a stale read
 * against its own hit.
 *
 * @since 0.1.0
 * @category models
 */
export type Target = number | { readonly p50Millis: number } | { readonly ownRatio: number }

const isOwnTarget = (target: Target): target is { readonly ownRatio: number } =>
  typeof target === "object" && "ownRatio" in target

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
   * A second point of comparison: every contender also gets its ratio to this one (column
   * `× ref`). At most one per scenario.
   */
  readonly reference?: boolean | undefined
  /** The bound this contender should meet (in a scenario with phases: in every phase). */
  readonly target?: Target | undefined
  /** Latency scenarios with phases: the bound of each phase, by phase name (overrides `target`). */
  readonly phaseTargets?: { readonly [phase: string]: Target } | undefined
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
  /**
   * Measured rounds when neither `--rounds` nor `--quick` says otherwise; default 15. For
   * scenarios whose runs are long (a second each), to keep a full bench run within minutes.
   */
  readonly rounds?: number | undefined
  /**
   * Why the scenario cannot run on this machine (say, no `redis-server`), asked before it runs;
   * `undefined` when it can. A skipped scenario is reported in one line, not as a failure.
   */
  readonly skip?: (() => string | undefined) | undefined
  readonly contenders: ReadonlyArray<Contender<Out>>
}

/**
 * What a latency run returns: every call's latency in milliseconds (a plain array is the same as
 * `{ latencies }`), by phase name in a scenario with `phases`; and optionally what the run
 * counted, by name (e.g. `upstream calls`).
 *
 * @since 0.1.0
 * @category models
 */
export type LatencyRun = ReadonlyArray<number> | {
  readonly latencies: ReadonlyArray<number> | { readonly [phase: string]: ReadonlyArray<number> }
  readonly counts?: { readonly [name: string]: number } | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface LatencyOptions extends ScenarioOptions<LatencyRun> {
  /**
   * Named phases of one run, in order (e.g. `wave 1`, `wave 2`): each run returns the latencies
   * of every phase, and each phase is reported and compared with the baseline's same phase.
   */
  readonly phases?: ReadonlyArray<string> | undefined
  /**
   * One of `phases`: every other phase's p50 is also reported as a ratio to the same contender's
   * p50 in this phase (column `× own <phase>`), the bound of `{ ownRatio }` targets. For a
   * cost that only makes sense against the contender's own, e.g. a stale read against its hit.
   */
  readonly ownPhase?: string | undefined
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
export interface LatencyScenario extends LatencyOptions {
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
 * A scenario whose runs each return `size` per-call latencies in milliseconds (per phase, with
 * `phases`).
 *
 * @since 0.1.0
 * @category constructors
 */
export const latency = (options: LatencyOptions): LatencyScenario => ({
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
 * Starts `callers` fibers at once, each running `body(caller)` `times` times one after the other
 * (with `repeat`): `callers × times` operations with `callers` of them in flight, for throughput
 * scenarios about concurrent callers (round trips to a server). Use it for every contender of a
 * scenario so that only the body differs.
 *
 * @since 0.1.0
 * @category combinators
 */
export const concurrentRepeat = <A, E>(
  callers: number,
  times: number,
  body: (caller: number) => Effect.Effect<A, E>
): Effect.Effect<void, E> =>
  Effect.suspend(() =>
    Effect.forEach(
      Array.from({ length: callers }, (_, caller) => caller),
      (caller) => repeat(times, () => body(caller)),
      { concurrency: "unbounded", discard: true }
    )
  )

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
  Effect.suspend(() => {
    const latencies = new Array<number>(calls)
    // `discard`: no per-fiber result collection, so the wave's own overhead stays small
    return Effect.as(
      Effect.forEach(
        Array.from({ length: calls }, (_, i) => i),
        (i) =>
          Effect.suspend(() => {
            const start = performance.now()
            return Effect.map(call(i), () => {
              latencies[i] = performance.now() - start
            })
          }),
        { concurrency: "unbounded", discard: true }
      ),
      latencies
    )
  })

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
  /** Latency scenarios with phases: the phase this result is about (one result per contender and phase). */
  readonly phase?: string
  readonly baseline: boolean
  /** Throughput: ops/s of each measured round. Latency: p50 (ms) of each measured round. */
  readonly rounds: ReadonlyArray<number>
  readonly spread: Spread
  /** Latency only: percentiles (ms) over every call of every measured round. */
  readonly latency?: { readonly p50: number; readonly p95: number; readonly p99: number; readonly calls: number }
  /** Throughput: median ops/s ÷ baseline's. Latency: p50 ÷ baseline's p50 (same phase). */
  readonly ratio: number
  /** The same ratio within each round (against the baseline's run of that round). */
  readonly pairedRatio: Spread
  /** The same two ratios against the scenario's reference contender, when it has one. */
  readonly reference?: { readonly ratio: number; readonly pairedRatio: Spread }
  /**
   * Latency scenarios with `ownPhase`, in the other phases: p50 ÷ the same contender's p50 in
   * `ownPhase`, and the same ratio within each round.
   */
  readonly own?: { readonly ratio: number; readonly pairedRatio: Spread }
  /** Latency only: what each measured run counted, by name, in round order. */
  readonly counts?: { readonly [name: string]: ReadonlyArray<number> }
  readonly target?: Target
  /**
   * PASS when the target is met: a ratio target by `ratio` (≥ for throughput, ≤ for latency), a
   * `p50Millis` target by `latency.p50`, an `ownRatio` target by `own.ratio`.
   */
  readonly verdict?: "PASS" | "BELOW"
  /** The per-round ratios (or per-round p50s) straddle the target: the verdict could flip on another run. */
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
  /** Latency scenarios with phases: their names, in order. */
  readonly phases?: ReadonlyArray<string>
  /** Latency scenarios with an own phase: the phase the `own` ratios are taken against. */
  readonly ownPhase?: string
  /** The name of the reference contender, when the scenario has one. */
  readonly reference?: string
  /** One result per contender (per contender and phase, in a scenario with phases). */
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

/** One measured latency run: the latencies of each phase, in the scenario's phase order, and its counts. */
interface LatencySample {
  readonly phases: ReadonlyArray<ReadonlyArray<number>>
  readonly counts: { readonly [name: string]: number }
}

const isNumbers = (u: unknown): u is ReadonlyArray<number> => Array.isArray(u)

const toLatencySample = (
  contender: string,
  out: unknown,
  phases: ReadonlyArray<string> | undefined
): LatencySample => {
  const invalid = (why: string) => new Error(`${contender}: ${why}`)
  if (isNumbers(out)) {
    if (phases !== undefined) {
      throw invalid("a run of a scenario with phases must return { latencies: { [phase]: ms[] } }")
    }
    return { phases: [out], counts: {} }
  }
  if (typeof out !== "object" || out === null || !("latencies" in out)) {
    throw invalid("a latency run must return ms[] or { latencies, counts? }")
  }
  const run = out as Exclude<LatencyRun, ReadonlyArray<number>>
  const counts = run.counts ?? {}
  if (phases === undefined) {
    if (!isNumbers(run.latencies)) throw invalid("a scenario without phases takes { latencies: ms[] }")
    return { phases: [run.latencies], counts }
  }
  if (isNumbers(run.latencies)) throw invalid("a scenario with phases takes { latencies: { [phase]: ms[] } }")
  const byPhase = run.latencies
  return {
    phases: phases.map((phase) => {
      const latencies = byPhase[phase]
      if (!isNumbers(latencies)) throw invalid(`the run returned no latencies for phase "${phase}"`)
      return latencies
    }),
    counts
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
  if (scenario.contenders.filter((c) => c.reference === true).length > 1) {
    throw new Error(`scenario ${scenario.name}: at most one reference contender`)
  }
  if (
    scenario.kind === "throughput" &&
    scenario.contenders.some((c) => c.phaseTargets !== undefined || typeof (c.target ?? 0) !== "number")
  ) {
    throw new Error(`scenario ${scenario.name}: throughput targets are ratios, without phases`)
  }
  const phases = scenario.kind === "latency" ? scenario.phases : undefined
  const ownPhase = scenario.kind === "latency" ? scenario.ownPhase : undefined
  if (ownPhase !== undefined && !(phases ?? []).includes(ownPhase)) {
    throw new Error(`scenario ${scenario.name}: ownPhase "${ownPhase}" is not one of its phases`)
  }
  for (const contender of scenario.contenders) {
    const targets = [
      ...(contender.target === undefined ? [] : [[undefined, contender.target] as const]),
      ...Object.entries(contender.phaseTargets ?? {})
    ]
    for (const [phase, target] of targets) {
      // judged against `own`, which only the other phases have
      if (isOwnTarget(target) && (ownPhase === undefined || phase === undefined || phase === ownPhase)) {
        throw new Error(
          `scenario ${scenario.name}: ${contender.name}: an ownRatio target goes in phaseTargets, in a phase ` +
            `other than the scenario's ownPhase (${ownPhase ?? "none"})`
        )
      }
    }
  }
  const size = options.quick ? (scenario.quickSize ?? Math.max(1, Math.round(scenario.size / 10))) : scenario.size
  const warmup = options.quick ? 1 : 2
  const rounds = options.rounds ?? (options.quick ? 3 : scenario.rounds ?? 15)
  const started = performance.now()
  const scope = Effect.runSync(Scope.make())
  // A run may wait on nothing but unref'd timers (`AbortSignal.timeout`), which alone would let
  // Node exit in the middle of it.
  const keepAlive = setInterval(() => {}, 60_000)
  try {
    const programs: Array<Effect.Effect<unknown, unknown>> = []
    for (const contender of scenario.contenders) {
      programs.push(await Effect.runPromise(Scope.extend(contender.setup(size), scope)))
    }
    const count = programs.length
    // throughput: elapsed ms per run; latency: the run's per-call latencies and counts
    const elapsed: Array<Array<number>> = programs.map(() => [])
    const latencies: Array<Array<LatencySample>> = programs.map(() => [])
    for (let round = 0; round < warmup + rounds; round++) {
      const measured = round >= warmup
      options.log(`  ${scenario.name}: ${measured ? `round ${round - warmup + 1}/${rounds}` : "warm-up"}`)
      for (let k = 0; k < count; k++) {
        const index = (round + k) % count
        const start = performance.now()
        const out = await Effect.runPromise(programs[index]!)
        const took = performance.now() - start
        // validated in warm-up rounds too, so a malformed run fails fast
        const sample = scenario.kind === "latency"
          ? toLatencySample(scenario.contenders[index]!.name, out, phases)
          : undefined
        if (!measured) continue
        if (sample === undefined) elapsed[index]!.push(took)
        else latencies[index]!.push(sample)
      }
    }
    const contenders = scenario.kind === "latency"
      ? summarizeLatency(scenario, latencies)
      : summarizeThroughput(scenario, size, elapsed)
    const reference = scenario.contenders.find((c) => c.reference === true)?.name
    return {
      name: scenario.name,
      kind: scenario.kind,
      description: scenario.description,
      unit: scenario.unit,
      size,
      warmup,
      rounds,
      durationMs: performance.now() - started,
      ...(phases === undefined ? {} : { phases }),
      ...(ownPhase === undefined ? {} : { ownPhase }),
      ...(reference === undefined ? {} : { reference }),
      contenders
    }
  } finally {
    clearInterval(keepAlive)
    await Effect.runPromise(Scope.close(scope, Exit.void))
  }
}

/** The ratio of a headline to another and the same ratio within each round. */
const compare = (
  headline: number,
  rounds: ReadonlyArray<number>,
  otherHeadline: number,
  otherRounds: ReadonlyArray<number>
): { readonly ratio: number; readonly pairedRatio: Spread } => ({
  ratio: headline / otherHeadline,
  pairedRatio: spreadOf(rounds.map((value, round) => value / otherRounds[round]!))
})

const judge = (
  target: Target,
  higherIsBetter: boolean,
  result: Pick<ContenderResult, "ratio" | "pairedRatio" | "spread" | "latency" | "own">
): Pick<ContenderResult, "target" | "verdict" | "marginal"> => {
  if (typeof target === "number" || isOwnTarget(target)) {
    const bound = typeof target === "number" ? target : target.ownRatio
    // validated in runScenario: an ownRatio target only applies where there is an own ratio
    const { pairedRatio, ratio } = typeof target === "number" ? result : result.own!
    const meets = (r: number) => higherIsBetter ? r >= bound : r <= bound
    return {
      target,
      verdict: meets(ratio) ? "PASS" : "BELOW",
      marginal: meets(pairedRatio.p25) !== meets(pairedRatio.p75)
    }
  }
  const meets = (p50: number) => p50 <= target.p50Millis
  return {
    target,
    verdict: meets(result.latency!.p50) ? "PASS" : "BELOW",
    marginal: meets(result.spread.p25) !== meets(result.spread.p75)
  }
}

const summarizeThroughput = (
  scenario: ThroughputScenario,
  size: number,
  elapsed: ReadonlyArray<ReadonlyArray<number>>
): Array<ContenderResult> => {
  const perRound = elapsed.map((runs) => runs.map((ms) => size / (ms / 1000)))
  const headline = perRound.map((rounds) => spreadOf(rounds).median)
  const baselineIndex = scenario.contenders.findIndex((c) => c.baseline === true)
  const referenceIndex = scenario.contenders.findIndex((c) => c.reference === true)
  return scenario.contenders.map((contender, index) => {
    const rounds = perRound[index]!
    const base = {
      name: contender.name,
      baseline: index === baselineIndex,
      rounds,
      spread: spreadOf(rounds),
      ...compare(headline[index]!, rounds, headline[baselineIndex]!, perRound[baselineIndex]!),
      ...(referenceIndex < 0
        ? {}
        : { reference: compare(headline[index]!, rounds, headline[referenceIndex]!, perRound[referenceIndex]!) })
    }
    return contender.target === undefined ? base : { ...base, ...judge(contender.target, true, base) }
  })
}

const summarizeLatency = (
  scenario: LatencyScenario,
  samples: ReadonlyArray<ReadonlyArray<LatencySample>>
): Array<ContenderResult> => {
  const baselineIndex = scenario.contenders.findIndex((c) => c.baseline === true)
  const referenceIndex = scenario.contenders.findIndex((c) => c.reference === true)
  const phases: ReadonlyArray<string | undefined> = scenario.phases ?? [undefined]
  // One number per round: that round's p50 in the phase
  const perRoundOf = (phaseIndex: number) =>
    samples.map((runs) => runs.map((run) => percentileSorted(sortNumbers(run.phases[phaseIndex]!), 0.5)))
  const ownIndex = scenario.ownPhase === undefined ? -1 : phases.indexOf(scenario.ownPhase)
  const ownPerRound = ownIndex < 0 ? undefined : perRoundOf(ownIndex)
  const ownHeadline = ownIndex < 0 ?
    undefined :
    samples.map((runs) => percentileSorted(sortNumbers(runs.flatMap((run) => run.phases[ownIndex]!)), 0.5))
  return phases.flatMap((phase, phaseIndex) => {
    const perRound = perRoundOf(phaseIndex)
    const pooled = samples.map((runs) => sortNumbers(runs.flatMap((run) => run.phases[phaseIndex]!)))
    const headline = pooled.map((sorted) => percentileSorted(sorted, 0.5))
    return scenario.contenders.map((contender, index): ContenderResult => {
      const rounds = perRound[index]!
      const countNames = [...new Set(samples[index]!.flatMap((run) => Object.keys(run.counts)))]
      const base = {
        name: contender.name,
        ...(phase === undefined ? {} : { phase }),
        baseline: index === baselineIndex,
        rounds,
        spread: spreadOf(rounds),
        latency: {
          p50: headline[index]!,
          p95: percentileSorted(pooled[index]!, 0.95),
          p99: percentileSorted(pooled[index]!, 0.99),
          calls: pooled[index]!.length
        },
        ...compare(headline[index]!, rounds, headline[baselineIndex]!, perRound[baselineIndex]!),
        ...(referenceIndex < 0
          ? {}
          : { reference: compare(headline[index]!, rounds, headline[referenceIndex]!, perRound[referenceIndex]!) }),
        ...(ownPerRound === undefined || ownHeadline === undefined || phaseIndex === ownIndex
          ? {}
          : { own: compare(headline[index]!, rounds, ownHeadline[index]!, ownPerRound[index]!) }),
        ...(countNames.length === 0 ? {} : {
          counts: Object.fromEntries(
            countNames.map((name) => [name, samples[index]!.map((run) => run.counts[name] ?? NaN)])
          )
        })
      }
      const target = (phase === undefined ? undefined : contender.phaseTargets?.[phase]) ?? contender.target
      return target === undefined ? base : { ...base, ...judge(target, false, base) }
    })
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

const formatRatio = (ratio: number): string =>
  `${ratio >= 100 ? ratio.toFixed(0) : ratio >= 0.01 || ratio === 0 ? ratio.toFixed(2) : ratio.toPrecision(1)}×`

const formatPaired = (paired: Spread): string => `${formatRatio(paired.p25)}–${formatRatio(paired.p75)}`

const formatTarget = (target: Target | undefined, kind: Scenario["kind"], ownPhase?: string): string =>
  target === undefined
    ? ""
    : typeof target === "number"
    ? `${kind === "throughput" ? "≥" : "≤"} ${formatRatio(target)}`
    : isOwnTarget(target)
    ? `≤ ${formatRatio(target.ownRatio)} own ${ownPhase ?? "?"}`
    : `p50 ≤ ${formatMillis(target.p50Millis)}`

const formatVerdict = (result: ContenderResult): string =>
  result.verdict === undefined ? "" : `${result.verdict}${result.marginal === true ? "~" : ""}`

/** A run's counts over the measured rounds: the value when it never changed, else min–max. */
const formatCount = (values: ReadonlyArray<number> | undefined): string => {
  if (values === undefined || values.length === 0) return ""
  const { max, min } = spreadOf(values)
  const format = (n: number) => n.toLocaleString("en-US")
  return min === max ? format(min) : `${format(min)}–${format(max)}`
}

/** Pads every column to its widest cell: text left-aligned, numbers right-aligned. */
const table = (header: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>): string => {
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((row) => row[c]!.length)))
  const line = (cells: ReadonlyArray<string>) =>
    cells.map((cell, c) => c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!)).join("  ").trimEnd()
  return [line(header), widths.map((w) => "─".repeat(w)).join("  "), ...rows.map(line)].join("\n")
}

interface Column {
  readonly header: string
  /** `first`: the first row of its contender (the only one without phases). */
  readonly cell: (result: ContenderResult, first: boolean) => string
}

/**
 * The scenario as a fixed-width table, with a header line and a legend.
 *
 * @since 0.1.0
 * @category formatting
 */
export const formatResult = (result: ScenarioResult): string => {
  const title = `${result.name} — ${result.description}`
  const phased = result.phases === undefined ? "" : ` (phases: ${result.phases.join(", ")})`
  const setting = `${result.kind}, ${
    result.size.toLocaleString("en-US")
  } ${result.unit} per run${phased}, ${result.warmup} warm-up + ${result.rounds} measured rounds interleaved, ${
    (result.durationMs / 1000).toFixed(1)
  }s`
  const baseline = result.contenders.find((c) => c.baseline)!
  const counts = [...new Set(result.contenders.flatMap((c) => Object.keys(c.counts ?? {})))]
  const name: Column = {
    header: "contender",
    cell: (c, first) => first ? (c.baseline ? `${c.name} (floor)` : c.name) : ""
  }
  const ratios: ReadonlyArray<Column> = [
    { header: result.kind === "throughput" ? "× floor" : "p50 × floor", cell: (c) => formatRatio(c.ratio) },
    { header: "per-round ×", cell: (c) => c.baseline ? "" : formatPaired(c.pairedRatio) },
    ...(result.reference === undefined ? [] : [
      {
        header: "× ref",
        cell: (c: ContenderResult) => c.name === result.reference ? "(ref)" : formatRatio(c.reference!.ratio)
      },
      {
        header: "per-round × ref",
        cell: (c: ContenderResult) => c.name === result.reference ? "" : formatPaired(c.reference!.pairedRatio)
      }
    ]),
    ...(result.ownPhase === undefined ? [] : [
      {
        header: `× own ${result.ownPhase}`,
        cell: (c: ContenderResult) => c.own === undefined ? "" : formatRatio(c.own.ratio)
      },
      {
        header: "per-round × own",
        cell: (c: ContenderResult) => c.own === undefined ? "" : formatPaired(c.own.pairedRatio)
      }
    ])
  ]
  const verdict: ReadonlyArray<Column> = result.contenders.some((c) => c.target !== undefined)
    ? [
      { header: "target", cell: (c) => formatTarget(c.target, result.kind, result.ownPhase) },
      { header: "verdict", cell: formatVerdict }
    ]
    : []
  const columns: ReadonlyArray<Column> = result.kind === "throughput"
    ? [
      name,
      { header: `${result.unit}/s median`, cell: (c) => formatRate(c.spread.median) },
      { header: "p25–p75", cell: (c) => `${formatRate(c.spread.p25)}–${formatRate(c.spread.p75)}` },
      { header: "min–max", cell: (c) => `${formatRate(c.spread.min)}–${formatRate(c.spread.max)}` },
      ...ratios,
      ...verdict
    ]
    : [
      name,
      ...(result.phases === undefined ? [] : [{ header: "phase", cell: (c: ContenderResult) => c.phase ?? "" }]),
      { header: "p50", cell: (c) => formatMillis(c.latency!.p50) },
      { header: "p95", cell: (c) => formatMillis(c.latency!.p95) },
      { header: "p99", cell: (c) => formatMillis(c.latency!.p99) },
      { header: "p50 min–max", cell: (c) => `${formatMillis(c.spread.min)}–${formatMillis(c.spread.max)}` },
      ...ratios,
      ...counts.map((count): Column => ({
        header: count,
        cell: (c, first) => first ? formatCount(c.counts?.[count]) : ""
      })),
      ...verdict
    ]
  // Without phases every result is its contender's first row; with phases, results come phase by
  // phase and are shown contender by contender.
  const ordered = result.phases === undefined
    ? result.contenders.map((c) => ({ c, first: true }))
    : [...new Set(result.contenders.map((c) => c.name))].flatMap((contender) =>
      result.contenders.filter((c) => c.name === contender).map((c, i) => ({ c, first: i === 0 }))
    )
  const shown = table(
    columns.map((column) => column.header),
    ordered.map(({ c, first }) => columns.map((column) => column.cell(c, first)))
  )
  const legend = [
    result.kind === "throughput"
      ? `× floor: median ÷ ${baseline.name}'s median (higher is better); per-round ×: p25–p75 of the same ratio within each round`
      : `× floor: p50 ÷ ${baseline.name}'s p50${
        result.phases === undefined ? "" : " in the same phase"
      } (lower is better); per-round ×: p25–p75 of the same ratio within each round`,
    ...(result.reference === undefined ? [] : [`× ref: the same ratios against ${result.reference}`]),
    ...(result.ownPhase === undefined ? [] : [
      `× own ${result.ownPhase}: p50 ÷ the same contender's p50 in phase ${result.ownPhase}; per-round × own: p25–p75 of the same ratio within each round`
    ]),
    ...(counts.length === 0
      ? []
      : [`${counts.join(", ")}: per run, over the measured rounds (min–max when it varied)`]),
    ...(result.contenders.some((c) => c.marginal === true)
      ? ["~: the per-round ratios (or p50s) straddle the target, the verdict is within noise"]
      : [])
  ]
  return `${title}\n${setting}\n\n${shown}\n\n${legend.join("\n")}`
}

/**
 * One line: every contender's ratio to the floor, with verdicts.
 *
 * @since 0.1.0
 * @category formatting
 */
export const formatSummary = (result: ScenarioResult): string => {
  const label = (c: ContenderResult) => c.phase === undefined ? c.name : `${c.name} ${c.phase}`
  const parts = result.contenders.filter((c) => !c.baseline).map((c) => {
    const reference = c.reference === undefined || c.name === result.reference
      ? ""
      : ` (${formatRatio(c.reference.ratio)} ref)`
    const own = c.own === undefined ? "" : ` (${formatRatio(c.own.ratio)} own ${result.ownPhase})`
    const p50 = c.target !== undefined && typeof c.target !== "number" && !isOwnTarget(c.target)
      ? ` p50 ${formatMillis(c.latency!.p50)}`
      : ""
    const verdict = c.verdict === undefined
      ? ""
      : ` (target ${formatTarget(c.target, result.kind, result.ownPhase)}: ${formatVerdict(c)})`
    return `${label(c)} ${formatRatio(c.ratio)}${reference}${own}${p50}${verdict}`
  })
  const baselines = result.contenders.filter((c) => c.baseline)
  const floor = result.kind === "throughput"
    ? `${formatRate(baselines[0]!.spread.median)} ${result.unit}/s`
    : baselines.map((c) => `${c.phase === undefined ? "" : `${c.phase} `}p50 ${formatMillis(c.latency!.p50)}`).join(
      ", "
    )
  return `${result.name}: ${parts.join(", ")} — vs ${baselines[0]!.name} at ${floor}`
}
