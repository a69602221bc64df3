import { defineConfig } from "vitest/config"
import { SummaryLineReporter } from "./vitest.summary.js"
import projects from "./vitest.workspace.js"

export default defineConfig({
  test: {
    projects,
    reporters: ["default", new SummaryLineReporter()]
  }
})
