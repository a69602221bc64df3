import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    sequence: { concurrent: true },
    fakeTimers: { toFake: undefined },
    testTimeout: 30_000,
    hookTimeout: 60_000
  }
})
