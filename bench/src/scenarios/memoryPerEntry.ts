/**
 * Memory per entry: the heap a cache holds per entry, with 100,000 small objects (user records)
 * inserted through its user-facing API, each contender measured in a fresh Node process
 * (`--expose-gc`): `heapUsed` after full collections, before the cache is built and after the
 * inserts, divided by the count. Values, keys, the cache's own slots (capacity 100,000) and
 * whatever the library keeps around an entry are all counted; the values are the same objects
 * for everyone, so the differences are what each cache adds.
 *
 * Rounds run every contender once each, in a rotating order; the table gives the median bytes
 * per entry, its min–max, and the ratio to lru-cache (overall and per round).
 *
 * @since 0.1.0
 */
import { execFile } from "node:child_process"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import type * as Harness from "../harness.js"

// Run from the sources (`tsx src/main.ts`) or from the bundle `run.mjs` builds (`dist/main.js`,
// the child beside it as `dist/memoryPerEntryChild.js`).
const self = fileURLToPath(import.meta.url)
const bundled = self.endsWith(".js")
const child = path.join(path.dirname(self), bundled ? "memoryPerEntryChild.js" : "memoryPerEntryChild.ts")
const childArgs = bundled ? ["--expose-gc", child] : ["--expose-gc", "--import", "tsx", child]

/**
 * @since 0.1.0
 * @category models
 */
export interface MemoryContender {
  readonly name: string
  /** A maximum ratio to the floor's bytes per entry. */
  readonly target?: number | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface MemoryResult {
  readonly name: string
  readonly description: string
  readonly entries: number
  readonly rounds: number
  readonly floor: string
  readonly contenders: ReadonlyArray<{
    readonly name: string
    readonly bytes: Harness.Spread
    readonly ratio: number
    readonly pairedRatio: Harness.Spread
    readonly target?: number
    readonly verdict?: "PASS" | "BELOW"
  }>
}

const contenders: ReadonlyArray<MemoryContender> = [
  { name: "lru-cache" },
  { name: "effect Cache" },
  { name: "cachified (lru-cache)" },
  { name: "stalewise Job.get", target: 1.3 },
  { name: "stalewise CacheFirst.get", target: 1.5 }
]

const measure = (name: string, entries: number): Promise<number> =>
  new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [...childArgs, name, String(entries)],
      { cwd: path.dirname(child), maxBuffer: 1 << 20 },
      (error, stdout, stderr) => {
        if (error) return reject(new Error(`${name}: ${stderr || error.message}`))
        const bytes = (JSON.parse(stdout) as { bytes: number }).bytes
        return Number.isFinite(bytes) ? resolve(bytes) : reject(new Error(`${name}: no measurement`))
      }
    )
  })

const quantile = (sorted: ReadonlyArray<number>, q: number): number => {
  const at = (sorted.length - 1) * q
  const lo = Math.floor(at)
  const hi = Math.ceil(at)
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (at - lo)
}

const spread = (values: ReadonlyArray<number>): Harness.Spread => {
  const sorted = [...values].sort((a, b) => a - b)
  return {
    median: quantile(sorted, 0.5),
    p25: quantile(sorted, 0.25),
    p75: quantile(sorted, 0.75),
    min: sorted[0]!,
    max: sorted[sorted.length - 1]!
  }
}

/**
 * @since 0.1.0
 * @category scenarios
 */
export const memoryPerEntry = {
  name: "memory-per-entry",
  description: "heap per entry, 100,000 small objects through each cache's user-facing API, a fresh process each",
  run: async (
    options: { readonly quick: boolean; readonly rounds?: number | undefined; readonly log: (line: string) => void }
  ): Promise<MemoryResult> => {
    const entries = 100_000
    const rounds = options.rounds ?? (options.quick ? 1 : 3)
    const bytes = contenders.map(() => [] as Array<number>)
    for (let round = 0; round < rounds; round++) {
      for (let k = 0; k < contenders.length; k++) {
        const index = (k + round) % contenders.length
        options.log(`memory-per-entry: round ${round + 1}/${rounds}, ${contenders[index]!.name}`)
        bytes[index]!.push(await measure(contenders[index]!.name, entries))
      }
    }
    const floor = bytes[0]!
    const floorMedian = spread(floor).median
    return {
      name: "memory-per-entry",
      description: memoryPerEntry.description,
      entries,
      rounds,
      floor: contenders[0]!.name,
      contenders: contenders.map((contender, index) => {
        const own = spread(bytes[index]!)
        const ratio = own.median / floorMedian
        return {
          name: contender.name,
          bytes: own,
          ratio,
          pairedRatio: spread(bytes[index]!.map((b, round) => b / floor[round]!)),
          ...(contender.target === undefined
            ? {}
            : { target: contender.target, verdict: ratio <= contender.target ? "PASS" as const : "BELOW" as const })
        }
      })
    }
  }
}

/**
 * The table of a memory result, in the harness's style.
 *
 * @since 0.1.0
 * @category formatting
 */
export const formatMemory = (result: MemoryResult): string => {
  const header = ["contender", "bytes/entry median", "min–max", "× floor", "per-round ×", "target", "verdict"]
  const rows = result.contenders.map((c, index) => [
    index === 0 ? `${c.name} (floor)` : c.name,
    c.bytes.median.toFixed(0),
    `${c.bytes.min.toFixed(0)}–${c.bytes.max.toFixed(0)}`,
    `${c.ratio.toFixed(2)}×`,
    `${c.pairedRatio.min.toFixed(2)}×–${c.pairedRatio.max.toFixed(2)}×`,
    c.target === undefined ? "" : `≤ ${c.target.toFixed(2)}×`,
    c.verdict ?? ""
  ])
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)))
  const line = (cells: ReadonlyArray<string>) => cells.map((cell, i) => cell.padEnd(widths[i]!)).join("  ").trimEnd()
  return [
    `${result.name}: ${result.description} (${
      result.entries.toLocaleString("en-US")
    } entries, ${result.rounds} rounds)`,
    line(header),
    ...rows.map(line)
  ].join("\n")
}

/**
 * One line: every contender's ratio to the floor.
 *
 * @since 0.1.0
 * @category formatting
 */
export const formatMemorySummary = (result: MemoryResult): string =>
  `${result.name}: ${
    result.contenders.slice(1).map((c) =>
      `${c.name} ${c.ratio.toFixed(2)}×${c.verdict === undefined ? "" : ` ${c.verdict}`}`
    )
      .join(", ")
  }`
