// Checks each packed tarball holds what a user needs: built ESM with source maps, declarations
// with declaration maps, LICENSE, README, metadata, exports into dist and no workspace: ranges.
import { execFileSync } from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"

const dir = process.argv[2]
const problems = []
for (const tarball of Fs.readdirSync(dir).filter((file) => file.endsWith(".tgz")).sort()) {
  const file = Path.join(dir, tarball)
  const entries = new Set(execFileSync("tar", ["tzf", file], { encoding: "utf8" }).split("\n").filter(Boolean))
  const pkg = JSON.parse(execFileSync("tar", ["xzf", file, "-O", "package/package.json"], { encoding: "utf8" }))
  const problem = (text) => problems.push(`${tarball}: ${text}`)
  for (
    const required of [
      "package/LICENSE",
      "package/README.md",
      "package/dist/esm/index.js",
      "package/dist/esm/index.js.map",
      "package/dist/dts/index.d.ts",
      "package/dist/dts/index.d.ts.map"
    ]
  ) {
    if (!entries.has(required)) problem(`missing ${required.slice("package/".length)}`)
  }
  for (const entry of entries) {
    if (/\.tsbuildinfo$|\/test\//.test(entry)) problem(`ships ${entry}`)
  }
  for (const field of ["repository", "homepage", "keywords", "engines", "license"]) {
    if (pkg[field] === undefined) problem(`package.json has no ${field}`)
  }
  const ranges = { ...pkg.dependencies, ...pkg.peerDependencies, ...pkg.optionalDependencies }
  for (const [name, range] of Object.entries(ranges)) {
    if (String(range).startsWith("workspace:")) problem(`${name} is ${range}`)
  }
  for (const [name, range] of Object.entries(pkg.peerDependencies ?? {})) {
    if ((name === "effect" || name.startsWith("@effect/")) && !/^[\^>~]/.test(range)) {
      problem(`peer ${name} is pinned (${range}), not a range`)
    }
  }
  const main = pkg.exports?.["."]
  if (typeof main !== "object" || !String(main.default).startsWith("./dist/") || !String(main.types).startsWith("./dist/")) {
    problem(`exports["."] does not point into dist: ${JSON.stringify(main)}`)
  }
  const size = Fs.statSync(file).size
  console.log(`${tarball}: ${entries.size} files, ${(size / 1024).toFixed(1)} KB packed`)
}
if (problems.length > 0) {
  for (const problem of problems) console.error(problem)
  process.exit(1)
}
