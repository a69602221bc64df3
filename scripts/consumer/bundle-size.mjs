// Bundles what a user writes (minified ESM, esbuild, the installed packages) and checks that
// importing a strategy does not pull in the backends it does not use: lru-cache (the memory
// store) and the KeyValueStore backend stay out of a bundle that imports only Failover or
// CacheFirst. Prints each bundle's size and its largest parts.
import * as esbuild from "esbuild"

const entries = {
  "Failover": { code: `import { Failover } from "@stalewise/core"\nconsole.log(Failover.make)`, without: ["lru-cache", "keyValueStore", "memoryStore"] },
  "CacheFirst": { code: `import { CacheFirst } from "@stalewise/core"\nconsole.log(CacheFirst.make)`, without: ["lru-cache", "keyValueStore", "memoryStore"] },
  // esbuild keeps a whole `export * as` namespace of the barrel once it is touched, so the
  // KeyValueStore backend comes along with CacheStore.layerMemory here (2.5 KB)...
  "Failover + CacheStore.layerMemory": {
    code: `import { CacheStore, Failover } from "@stalewise/core"\nconsole.log(Failover.make, CacheStore.layerMemory)`,
    with: ["lru-cache", "memoryStore"]
  },
  // ...and not when CacheStore is imported from its own module
  "Failover + CacheStore.layerMemory (deep import)": {
    code: `import { Failover } from "@stalewise/core"\nimport * as CacheStore from "@stalewise/core/CacheStore"\n` +
      `console.log(Failover.make, CacheStore.layerMemory)`,
    without: ["keyValueStore"],
    with: ["lru-cache", "memoryStore"]
  }
}

const problems = []
for (const [name, entry] of Object.entries(entries)) {
  const result = await esbuild.build({
    stdin: { contents: entry.code, resolveDir: process.cwd(), loader: "js" },
    bundle: true,
    minify: true,
    format: "esm",
    platform: "node",
    write: false,
    metafile: true,
    logLevel: "error"
  })
  const size = result.outputFiles[0].contents.byteLength
  const inputs = Object.entries(Object.values(result.metafile.outputs)[0].inputs)
  const parts = {}
  for (const [path, { bytesInOutput }] of inputs) {
    const part = /node_modules\/((?:@[^/]+\/)?[^/]+)\/(?:.*\/)?([^/]+)$/.exec(path)
    const key = part === null ? path : part[1] === "@stalewise/core" ? `core/${part[2]}` : part[1]
    parts[key] = (parts[key] ?? 0) + bytesInOutput
  }
  const top = Object.entries(parts).filter(([, b]) => b > 0).sort((a, b) => b[1] - a[1]).slice(0, 6)
  console.log(`${name}: ${(size / 1024).toFixed(1)} KB minified (${top.map(([k, b]) => `${k} ${(b / 1024).toFixed(1)}`).join(", ")})`)
  const included = (needle) => inputs.some(([path, { bytesInOutput }]) => path.includes(needle) && bytesInOutput > 0)
  for (const needle of entry.without ?? []) if (included(needle)) problems.push(`${name}: the bundle holds ${needle}`)
  for (const needle of entry.with ?? []) if (!included(needle)) problems.push(`${name}: the bundle lacks ${needle}`)
}
if (problems.length > 0) {
  for (const problem of problems) console.error(problem)
  process.exit(1)
}
