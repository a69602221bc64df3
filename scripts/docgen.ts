/**
 * Generates the API reference with `@effect/docgen`: runs docgen in every package that has a
 * `docgen.json` (it type-checks and runs each JSDoc `@example`, and requires `@since` on every
 * export), then moves the Markdown it writes to `packages/<name>/docs/modules` into
 * `docs/api/<name>`. docgen writes next to the package because its examples import the package
 * through `../../src`. Exits 1 when docgen fails for any package.
 */
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"

const root = Path.resolve(import.meta.dirname, "..")
const docgen = Path.join(root, "node_modules", ".bin", "docgen")
const packages = Fs.readdirSync(Path.join(root, "packages"))
  .filter((name) => Fs.existsSync(Path.join(root, "packages", name, "docgen.json")))
  .sort()

let failed = false
for (const name of packages) {
  const dir = Path.join(root, "packages", name)
  const generated = Path.join(dir, "docs")
  const target = Path.join(root, "docs", "api", name)
  console.log(`docgen: ${name}`)
  const result = ChildProcess.spawnSync(docgen, [], { cwd: dir, stdio: "inherit" })
  if (result.status !== 0) {
    failed = true
    continue
  }
  Fs.rmSync(target, { recursive: true, force: true })
  Fs.mkdirSync(Path.dirname(target), { recursive: true })
  Fs.renameSync(Path.join(generated, "modules"), target)
  Fs.rmSync(generated, { recursive: true, force: true })
}
if (failed) process.exit(1)
console.log(`docgen: API reference of ${packages.join(", ")} in docs/api/`)
