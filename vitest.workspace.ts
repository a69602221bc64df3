/**
 * The list of test projects. The root `vitest.config.ts` feeds it to `test.projects`; vitest 3.2
 * warns about a workspace file only when it loads one by itself.
 */
export default [
  "packages/core/vitest.config.ts",
  "packages/rpc/vitest.config.ts",
  "packages/refresh/vitest.config.ts",
  "packages/redis/vitest.config.ts",
  "packages/testing/vitest.config.ts"
]
