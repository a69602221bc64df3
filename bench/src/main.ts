/**
 * Runs the registered benchmark scenarios and prints a table and a one-line summary for each.
 *
 * ```
 * pnpm bench                    all scenarios
 * pnpm bench -- --quick         fewer rounds, smaller runs: a smoke run
 * pnpm bench -- hot             scenarios whose name contains "hot"
 * pnpm bench -- --json          results as JSON on stdout (tables go to stderr)
 * pnpm bench -- --rounds 30     more measured rounds
 * ```
 *
 * Exits with 1 when a scenario fails to run; a contender below its target is reported, not fatal,
 * and a scenario that cannot run here (no `redis-server`) is skipped with one line saying why.
 *
 * @since 0.1.0
 */
import * as os from "node:os"
import { parseArgs } from "node:util"
import * as Harness from "./harness.js"
import { cacheFirstHit } from "./scenarios/cacheFirstHit.js"
import { facadeHit } from "./scenarios/facadeHit.js"
import { failoverHungUpstream } from "./scenarios/failoverHungUpstream.js"
import { getMany, getManyRedis } from "./scenarios/getMany.js"
import { hotHit } from "./scenarios/hotHit.js"
import { formatMemory, formatMemorySummary, memoryPerEntry, type MemoryResult } from "./scenarios/memoryPerEntry.js"
import { redisHit, redisHitSequential } from "./scenarios/redisHit.js"
import { staleBurst } from "./scenarios/staleBurst.js"
import { staleRead } from "./scenarios/staleRead.js"
import { stampedeColdKey, stampedeManyKeys } from "./scenarios/stampede.js"
import { tieredHit } from "./scenarios/tieredHit.js"
import {
  workingSetCacheFirst,
  workingSetHit100k,
  workingSetHit10k,
  workingSetJob,
  workingSetLruCache
} from "./scenarios/workingSetHit.js"

const scenarios: ReadonlyArray<Harness.Scenario> = [
  hotHit,
  cacheFirstHit,
  facadeHit,
  failoverHungUpstream,
  stampedeColdKey,
  stampedeManyKeys,
  staleRead,
  staleBurst,
  redisHit,
  redisHitSequential,
  tieredHit,
  getMany,
  getManyRedis,
  workingSetJob,
  workingSetCacheFirst,
  workingSetLruCache,
  workingSetHit10k,
  workingSetHit100k
]

// measured in child processes, outside the harness's rounds
const memoryReports = [memoryPerEntry]

const usage = `usage: pnpm bench -- [--quick] [--json] [--rounds N] [filter...]

  --quick      1 warm-up + 3 rounds with each scenario's small size (smoke run)
  --json       write the results to stdout as JSON; tables and progress go to stderr
  --rounds N   measured rounds (default 15 or the scenario's own, quick 3)
  filter       run only scenarios whose name contains one of these substrings

scenarios: ${[...scenarios, ...memoryReports].map((s) => s.name).join(", ")}`

const main = async (): Promise<number> => {
  const { positionals, values } = parseArgs({
    args: process.argv.slice(2).filter((arg) => arg !== "--"),
    allowPositionals: true,
    options: {
      quick: { type: "boolean", default: false },
      json: { type: "boolean", default: false },
      rounds: { type: "string" },
      help: { type: "boolean", short: "h", default: false }
    }
  })
  if (values.help) {
    process.stdout.write(`${usage}\n`)
    return 0
  }
  const rounds = values.rounds === undefined ? undefined : Number(values.rounds)
  if (rounds !== undefined && !(Number.isSafeInteger(rounds) && rounds > 0)) {
    process.stderr.write(`--rounds must be a positive integer, got ${values.rounds}\n\n${usage}\n`)
    return 2
  }
  const selected = scenarios.filter((s) => positionals.length === 0 || positionals.some((f) => s.name.includes(f)))
  const selectedMemory = memoryReports.filter((s) =>
    positionals.length === 0 || positionals.some((f) => s.name.includes(f))
  )
  if (selected.length === 0 && selectedMemory.length === 0) {
    process.stderr.write(`no scenario matches ${positionals.join(", ")}\n\n${usage}\n`)
    return 2
  }

  // With --json, stdout carries only the JSON document.
  const print = (text: string) => (values.json ? process.stderr : process.stdout).write(`${text}\n`)
  const progress = (line: string) => {
    if (process.stderr.isTTY) process.stderr.write(`\r\x1b[K${line}`)
  }
  const environment = {
    node: process.version,
    effect: await import("effect/package.json", { with: { type: "json" } }).then((m) => m.default.version),
    cpu: os.cpus()[0]?.model ?? "unknown",
    cores: os.availableParallelism(),
    quick: values.quick,
    date: new Date().toISOString()
  }
  print(
    `stalewise bench — node ${environment.node}, effect ${environment.effect}, ${environment.cores} cores, ${environment.cpu}\n`
  )

  const started = performance.now()
  const results: Array<Harness.ScenarioResult> = []
  const failures: Array<{ readonly name: string; readonly error: string }> = []
  const skipped: Array<{ readonly name: string; readonly reason: string }> = []
  for (const scenario of selected) {
    const reason = scenario.skip?.()
    if (reason !== undefined) {
      skipped.push({ name: scenario.name, reason })
      print(`${scenario.name} skipped: ${reason}\n`)
      continue
    }
    try {
      const result = await Harness.runScenario(scenario, { quick: values.quick, rounds, log: progress })
      progress("")
      results.push(result)
      print(`${Harness.formatResult(result)}\n`)
    } catch (error) {
      progress("")
      const message = error instanceof Error ? (error.stack ?? error.message) : String(error)
      failures.push({ name: scenario.name, error: message })
      print(`${scenario.name} FAILED\n${message}\n`)
    }
  }
  const memory: Array<MemoryResult> = []
  for (const report of selectedMemory) {
    try {
      const result = await report.run({ quick: values.quick, rounds, log: progress })
      progress("")
      memory.push(result)
      print(`${formatMemory(result)}\n`)
    } catch (error) {
      progress("")
      const message = error instanceof Error ? (error.stack ?? error.message) : String(error)
      failures.push({ name: report.name, error: message })
      print(`${report.name} FAILED\n${message}\n`)
    }
  }
  const totalSeconds = (performance.now() - started) / 1000

  print("summary")
  for (const result of results) print(`  ${Harness.formatSummary(result)}`)
  for (const result of memory) print(`  ${formatMemorySummary(result)}`)
  for (const failure of failures) print(`  ${failure.name}: FAILED`)
  for (const skip of skipped) print(`  ${skip.name}: skipped (${skip.reason})`)
  print(`total ${totalSeconds.toFixed(1)}s`)

  if (values.json) {
    process.stdout.write(
      `${JSON.stringify({ environment, totalSeconds, results, memory, failures, skipped }, null, 2)}\n`
    )
  }
  return failures.length === 0 ? 0 : 1
}

process.exitCode = await main()
