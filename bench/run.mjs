/**
 * `pnpm bench`: builds the benchmarks into `dist/` with esbuild, then runs them with plain Node.
 *
 * Our packages are bundled from their sources, as a user's bundler or `tsc` would emit them;
 * every third-party package stays external, loaded from `node_modules` by Node as it is for the
 * peers. Not `tsx`: it transforms with esbuild's `keepNames`, which wraps each named closure in a
 * `__name(fn, "…")` call (`Object.defineProperty` on the function) every time it is created — a
 * cost our source paid on every read (about 10 % of a Redis hit) and the peers, loaded as plain
 * JavaScript, did not. Published builds carry no such calls.
 */
import * as esbuild from "esbuild"
import * as path from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"

const here = path.dirname(fileURLToPath(import.meta.url))
const outdir = path.join(here, "dist")
const inner = Symbol("inner")

// A bare import outside the workspace stays external, by the absolute path it resolves to from
// its importer: a dependency of one of our packages (bullmq, @noble/hashes) need not be one of
// the bench's.
const thirdPartyExternal = {
  name: "third-party-external",
  setup(build) {
    build.onResolve({ filter: /^[^./]/ }, async (args) => {
      if (args.path.startsWith("@stalewise/") || args.pluginData === inner) return undefined
      const resolved = await build.resolve(args.path, {
        kind: args.kind,
        resolveDir: args.resolveDir,
        pluginData: inner
      })
      if (resolved.errors.length > 0) return { errors: resolved.errors }
      return { path: resolved.path, external: true }
    })
  }
}

await esbuild.build({
  absWorkingDir: here,
  entryPoints: [
    { in: "src/main.ts", out: "main" },
    { in: "src/scenarios/memoryPerEntryChild.ts", out: "memoryPerEntryChild" }
  ],
  outdir,
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  keepNames: false,
  logLevel: "warning",
  plugins: [thirdPartyExternal]
})

await import(pathToFileURL(path.join(outdir, "main.js")).href)
