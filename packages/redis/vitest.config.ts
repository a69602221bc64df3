import { defineProject, mergeConfig } from "vitest/config"
import shared from "../../vitest.shared.js"

export default mergeConfig(
  shared,
  defineProject({
    test: {
      // Starts the throwaway redis-server the Redis-backed tests run against (see the file).
      globalSetup: ["./test/globalSetup.ts"]
    }
  })
)
