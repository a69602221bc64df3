/**
 * Test fixtures run as real child processes (`node --import tsx test/fixtures/<name>.ts`): an app
 * or a worker with connections of its own, talking to the test through its standard output (one
 * line per event). SIGKILLed when the scope closes if still alive.
 */
import { assert } from "@effect/vitest"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as ChildProcess from "node:child_process"
import * as Readline from "node:readline"
import { fileURLToPath } from "node:url"

/** A running fixture process. */
export interface Fixture {
  /** Every line it printed so far, in order. */
  readonly lines: ReadonlyArray<string>
  /** Waits until it has printed `expected` (a whole line), failing after `timeout`. */
  readonly line: (expected: string, timeout: Duration.DurationInput) => Effect.Effect<void, Error>
  /** What it wrote to stderr. */
  readonly errors: () => ReadonlyArray<string>
  /** SIGKILLs it and waits for it to exit. */
  readonly kill: Effect.Effect<void>
}

/** Spawns `test/fixtures/<name>.ts` with `env` added to this process's environment. */
export const spawn = (name: string, env: Record<string, string>): Effect.Effect<Fixture, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const fixture = fileURLToPath(new URL(`../fixtures/${name}.ts`, import.meta.url))
      const child = ChildProcess.spawn(process.execPath, ["--import", "tsx", fixture], {
        cwd: fileURLToPath(new URL("../..", import.meta.url)),
        env: { ...process.env, ...env },
        stdio: ["ignore", "pipe", "pipe"]
      })
      const lines: Array<string> = []
      const waiting = new Set<() => void>()
      Readline.createInterface({ input: child.stdout }).on("line", (line) => {
        lines.push(line)
        for (const wake of waiting) wake()
      })
      const errors: Array<string> = []
      child.stderr.on("data", (chunk: Buffer) => errors.push(chunk.toString("utf8")))
      const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once("exit", (_, signal) => resolve(signal)))
      return { child, lines, waiting, errors, exited }
    }),
    ({ child, exited }) =>
      Effect.promise(async () => {
        if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
        await exited
      })
  ).pipe(Effect.map(({ child, errors, exited, lines, waiting }): Fixture => ({
    lines,
    line: (expected, timeout) =>
      Effect.async<void>((resume) => {
        const check = () => {
          if (lines.includes(expected)) {
            waiting.delete(check)
            resume(Effect.void)
          }
        }
        waiting.add(check)
        check()
        return Effect.sync(() => waiting.delete(check))
      }).pipe(
        Effect.timeoutFail({
          duration: timeout,
          onTimeout: () =>
            new Error(`the ${name} fixture did not print ${expected}: ${lines.join(" | ")} ${errors.join("")}`)
        })
      ),
    kill: Effect.promise(async () => {
      child.kill("SIGKILL")
      assert.strictEqual(await exited, "SIGKILL")
    }),
    errors: () => errors
  })))
