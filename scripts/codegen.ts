/**
 * Writes each package's `src/index.ts` barrel: one `export * as Module from "./Module.js"` per
 * public module, headed by that module's doc comment. `--check` fails instead of writing when a
 * barrel is out of date (CI runs it through `pnpm check`).
 */
import * as Fs from "node:fs"
import * as Path from "node:path"

const check = process.argv.includes("--check")
const root = Path.resolve(import.meta.dirname, "..")
const packagesDir = Path.join(root, "packages")
let stale = 0

for (const pkg of Fs.readdirSync(packagesDir).sort()) {
  const srcDir = Path.join(packagesDir, pkg, "src")
  if (!Fs.existsSync(srcDir)) continue
  const modules = Fs.readdirSync(srcDir)
    .filter((file) => file.endsWith(".ts") && file !== "index.ts" && /^[A-Z]/.test(file))
    .sort()
  const body = modules.map((file) => {
    const name = file.slice(0, -3)
    const source = Fs.readFileSync(Path.join(srcDir, file), "utf8")
    const doc = /^\/\*\*[\s\S]*?\*\//.exec(source)?.[0]
    return `${doc ? `${doc}\n` : ""}export * as ${name} from "./${name}.js"\n`
  })
  const content = body.length === 0 ? "export {}\n" : body.join("\n")
  const indexPath = Path.join(srcDir, "index.ts")
  const current = Fs.existsSync(indexPath) ? Fs.readFileSync(indexPath, "utf8") : ""
  if (current === content) continue
  if (check) {
    console.error(`codegen: packages/${pkg}/src/index.ts is out of date (run pnpm codegen)`)
    stale++
  } else {
    Fs.writeFileSync(indexPath, content)
    console.log(`codegen: wrote packages/${pkg}/src/index.ts`)
  }
}
if (stale > 0) process.exit(1)
