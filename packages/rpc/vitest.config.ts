import { defineProject, mergeConfig } from "vitest/config"
import shared from "../../vitest.shared.js"

export default mergeConfig(
  shared,
  defineProject({
    test: {
      // The throwaway redis-server of the redis project, for the HTTP cache's deployment test
      // (several processes sharing one Redis store): started once per run, required in CI.
      globalSetup: ["../redis/test/globalSetup.ts"]
    }
  })
)
