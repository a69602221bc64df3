import type { Reporter, TestModule } from "vitest/node"

/**
 * Prints one plain closing line, `tests: N passed, N failed, N skipped`, after vitest's own
 * summary, for tools that read a run's result from its last line.
 */
export class SummaryLineReporter implements Reporter {
  async onTestRunEnd(testModules: ReadonlyArray<TestModule>) {
    let passed = 0
    let failed = 0
    let skipped = 0
    for (const module of testModules) {
      for (const test of module.children.allTests()) {
        const state = test.result().state
        if (state === "passed") passed++
        else if (state === "failed") failed++
        else skipped++
      }
    }
    // after the default reporter's summary, which it prints once the run's hooks have settled
    await new Promise((resolve) => setTimeout(resolve, 0))
    process.stdout.write(`\ntests: ${passed} passed, ${failed} failed, ${skipped} skipped\n`)
  }
}
