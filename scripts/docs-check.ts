/**
 * Checks that the docs hold: every ```ts block in the Markdown under `docs/` and every `@example`
 * block in the packages' JSDoc type-checks against the workspace sources (through
 * `docs/tsconfig.json`), and every public export carries `@since` and `@category`. A block whose
 * info string contains `no-check` is skipped. Exits 1 on any problem.
 *
 * `@effect/docgen` (`pnpm docgen`, run in CI) also type-checks and runs the JSDoc examples, yet this
 * check stays: docgen skips the examples on classes (every tag and error), does not require
 * `@category`, and takes about 90 s where this takes seconds inside `pnpm check`.
 */
import * as Fs from "node:fs"
import * as Path from "node:path"
import ts from "typescript"

const root = Path.resolve(import.meta.dirname, "..")
const outDir = Path.join(root, "docs", ".docs-check")
const tsconfigPath = Path.join(root, "docs", "tsconfig.json")
const problems: Array<string> = []

const rel = (file: string) => Path.relative(root, file).split(Path.sep).join("/")

const walk = (dir: string, accept: (file: string) => boolean): Array<string> => {
  if (!Fs.existsSync(dir)) return []
  return Fs.readdirSync(dir, { withFileTypes: true })
    .sort((a, b) => a.name.localeCompare(b.name))
    .flatMap((entry) => {
      const full = Path.join(dir, entry.name)
      if (entry.isDirectory()) return entry.name === "node_modules" ? [] : walk(full, accept)
      return accept(full) ? [full] : []
    })
}

const packageSources = (): Array<string> =>
  walk(Path.join(root, "packages"), (file) => file.endsWith(".ts") && !file.endsWith(".d.ts"))
    .filter((file) => /^packages\/[^/]+\/src\//.test(rel(file)))

// --- Extraction -------------------------------------------------------------------------------

/** A line of source text, with where it sits in the original file (1-based line, 0-based column). */
interface SourceLine {
  readonly text: string
  readonly line: number
  readonly column: number
}

interface Block {
  readonly info: string
  readonly fenceLine: number
  readonly lines: ReadonlyArray<SourceLine>
}

/** A generated module and the original location of each of its lines. */
interface Snippet {
  readonly fileName: string
  readonly origin: string
  readonly fenceLine: number
  readonly lines: ReadonlyArray<SourceLine>
}

// Every fence is tracked, whatever its language, so that a ts fence shown inside a ```md block
// is not taken for a real one.
const fencedBlocks = (lines: ReadonlyArray<SourceLine>): Array<Block> => {
  const blocks: Array<Block> = []
  let open: { marker: string; indent: number; info: string; fenceLine: number; body: Array<SourceLine> } | undefined
  for (const line of lines) {
    if (open === undefined) {
      const match = /^( *)(`{3,}|~{3,})\s*([^`]*)$/.exec(line.text)
      if (match) {
        open = { marker: match[2]!, indent: match[1]!.length, info: match[3]!.trim(), fenceLine: line.line, body: [] }
      }
      continue
    }
    const close = /^ *(`{3,}|~{3,})\s*$/.exec(line.text)
    if (close && close[1]![0] === open.marker[0] && close[1]!.length >= open.marker.length) {
      blocks.push({ info: open.info, fenceLine: open.fenceLine, lines: open.body })
      open = undefined
      continue
    }
    // Content of a fence indented in a list item loses up to that much indentation.
    const strip = Math.min(open.indent, /^ */.exec(line.text)![0].length)
    open.body.push({ text: line.text.slice(strip), line: line.line, column: line.column + strip })
  }
  return blocks
}

const words = (info: string) => info.split(/[\s,{}]+/).filter((word) => word.length > 0)

const isTs = (info: string) => ["ts", "typescript"].includes(words(info)[0] ?? "")

const isChecked = (info: string) => isTs(info) && !words(info).includes("no-check")

const safe = (name: string) => name.replace(/[^A-Za-z0-9]+/g, "_")

// The guides, the README and each package's README (the page npm shows). The generated API
// reference (docs/api) is checked by docgen itself.
const markdownFiles = (): Array<string> => [
  Path.join(root, "README.md"),
  ...walk(Path.join(root, "packages"), (file) => /^packages\/[^/]+\/README\.md$/.test(rel(file))),
  ...walk(Path.join(root, "docs"), (file) => file.endsWith(".md") && !rel(file).startsWith("docs/api/"))
]

const markdownSnippets = (): Array<Snippet> =>
  markdownFiles().flatMap((file) => {
    const lines = Fs.readFileSync(file, "utf8").split(/\r?\n/).map((text, i) => ({ text, line: i + 1, column: 0 }))
    const base = rel(file).split("/").map(safe).join("__")
    // Numbered among all ts blocks, skipped ones included, so names stay put when one is skipped.
    return fencedBlocks(lines).filter((block) => isTs(block.info)).flatMap((block, i) =>
      isChecked(block.info)
        ? [{ fileName: `${base}__${i + 1}.ts`, origin: rel(file), fenceLine: block.fenceLine, lines: block.lines }]
        : []
    )
  })

/** The name of the declaration a doc comment belongs to, qualified by its enclosing namespaces. */
const declarationName = (node: ts.Node): string | undefined => {
  if (ts.isVariableStatement(node)) {
    return node.declarationList.declarations.map((d) => d.name.getText()).join(", ")
  }
  if (ts.isExportAssignment(node)) return "default"
  if (ts.isExportDeclaration(node)) {
    return node.exportClause && ts.isNamedExports(node.exportClause)
      ? node.exportClause.elements.map((e) => e.name.text).join(", ")
      : node.exportClause
      ? node.exportClause.name.getText()
      : "*"
  }
  const name = (node as ts.NamedDeclaration).name
  return name !== undefined && !ts.isImportDeclaration(node) ? name.getText() : undefined
}

const jsdocSnippets = (): Array<Snippet> =>
  packageSources().filter((file) => Path.basename(file) !== "index.ts").flatMap((file) => {
    const text = Fs.readFileSync(file, "utf8")
    const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true)
    const [, pkg, modulePath] = /^packages\/([^/]+)\/src\/(.+)$/.exec(rel(file))!
    const base = `${pkg}__${modulePath!.split("/").map(safe).join("__")}`
    const seen = new Set<number>()
    const counts = new Map<string, number>()
    const snippets: Array<Snippet> = []

    const visit = (node: ts.Node, scope: ReadonlyArray<string>) => {
      const comments = (ts.getLeadingCommentRanges(text, node.pos) ?? [])
        .filter((c) => text.startsWith("/**", c.pos) && !seen.has(c.pos))
      const name = declarationName(node)
      comments.forEach((comment, i) => {
        seen.add(comment.pos)
        // Only the closest comment belongs to the node; one above it is the module's doc.
        const owner = i === comments.length - 1 && name !== undefined ? [...scope, name].join(".") : "module"
        for (const block of exampleBlocks(source, comment).filter((block) => isTs(block.info))) {
          const n = (counts.get(owner) ?? 0) + 1
          counts.set(owner, n)
          if (!isChecked(block.info)) continue
          snippets.push({
            fileName: `${base}__${safe(owner)}__${n}.ts`,
            origin: rel(file),
            fenceLine: block.fenceLine,
            lines: block.lines
          })
        }
      })
      const inner = (ts.isModuleDeclaration(node) || ts.isClassDeclaration(node) || ts.isInterfaceDeclaration(node)) &&
          node.name !== undefined
        ? [...scope, node.name.getText()]
        : scope
      ts.forEachChild(node, (child) => visit(child, inner))
    }
    ts.forEachChild(source, (child) => visit(child, []))
    return snippets
  })

/** The fenced blocks of a doc comment's `@example` sections, with the ` * ` margin removed. */
const exampleBlocks = (source: ts.SourceFile, comment: ts.CommentRange): Array<Block> => {
  const startLine = source.getLineAndCharacterOfPosition(comment.pos).line + 1
  const raw = source.text.slice(comment.pos + 3, comment.end - 2).split(/\r?\n/)
  const lines = raw.map((text, i) => {
    const margin = i === 0 ? 0 : (/^\s*\*? ?/.exec(text)?.[0].length ?? 0)
    return { text: text.slice(margin), line: startLine + i, column: margin + (i === 0 ? 3 : 0) }
  })
  const sections: Array<Array<SourceLine>> = []
  let section: Array<SourceLine> | undefined
  let fence: string | undefined
  for (const line of lines) {
    const marker = /^ *(`{3,}|~{3,})/.exec(line.text)?.[1]
    if (marker !== undefined) fence = fence === undefined ? marker : undefined
    // A tag line outside a fence ends the current section; only @example opens one.
    if (fence === undefined && marker === undefined && /^\s*@\w/.test(line.text)) {
      section = /^\s*@example\b/.test(line.text) ? [] : undefined
      if (section !== undefined) sections.push(section)
      continue
    }
    section?.push(line)
  }
  return sections.flatMap((lines) => fencedBlocks(lines))
}

// --- Type-check -------------------------------------------------------------------------------

const writeSnippets = (snippets: ReadonlyArray<Snippet>) => {
  // Start clean so a deleted example does not linger as a stale module.
  Fs.rmSync(outDir, { recursive: true, force: true })
  Fs.mkdirSync(outDir, { recursive: true })
  for (const snippet of snippets) {
    // Appended, not prepended, so generated line N is line N of the block.
    const body = snippet.lines.map((line) => line.text).join("\n")
    Fs.writeFileSync(Path.join(outDir, snippet.fileName), `${body}\n\nexport {}\n`)
  }
}

const formatDiagnostic = (diagnostic: ts.Diagnostic, snippets: ReadonlyMap<string, Snippet>): string => {
  const message = ts.flattenDiagnosticMessageText(diagnostic.messageText, "\n  ")
  const code = `TS${diagnostic.code}`
  if (diagnostic.file === undefined || diagnostic.start === undefined) return `error ${code}: ${message}`
  const { character, line } = diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start)
  const snippet = snippets.get(Path.resolve(diagnostic.file.fileName))
  if (snippet === undefined) {
    return `${rel(diagnostic.file.fileName)}:${line + 1}:${character + 1} error ${code}: ${message}`
  }
  const at = snippet.lines[line]
  const where = at === undefined
    ? `${snippet.origin}:${snippet.fenceLine}`
    : `${snippet.origin}:${at.line}:${at.column + character + 1}`
  return `${where} error ${code}: ${message} (docs/.docs-check/${snippet.fileName})`
}

const typeCheck = (snippets: ReadonlyArray<Snippet>) => {
  writeSnippets(snippets)
  if (snippets.length === 0) return
  const parsed = ts.getParsedCommandLineOfConfigFile(tsconfigPath, {}, {
    ...ts.sys,
    onUnRecoverableConfigFileDiagnostic: (diagnostic) => {
      throw new Error(ts.flattenDiagnosticMessageText(diagnostic.messageText, "\n"))
    }
  })!
  const byPath = new Map(snippets.map((snippet) => [Path.join(outDir, snippet.fileName), snippet]))
  const program = ts.createProgram({ rootNames: parsed.fileNames, options: parsed.options })
  // Only the snippets' own diagnostics: the packages' sources are `tsc -b`'s business.
  const diagnostics = [
    ...parsed.errors,
    ...program.getOptionsDiagnostics(),
    ...program.getGlobalDiagnostics(),
    ...program.getSourceFiles()
      .filter((file) => byPath.has(Path.resolve(file.fileName)))
      .flatMap((file) => [...program.getSyntacticDiagnostics(file), ...program.getSemanticDiagnostics(file)])
  ]
  for (const diagnostic of diagnostics) {
    if (diagnostic.category === ts.DiagnosticCategory.Error) problems.push(formatDiagnostic(diagnostic, byPath))
  }
}

// --- Export docs ------------------------------------------------------------------------------

const hasModifier = (node: ts.Node, kind: ts.SyntaxKind) =>
  ts.canHaveModifiers(node) && (ts.getModifiers(node) ?? []).some((modifier) => modifier.kind === kind)

const isDeclaration = (node: ts.Node) =>
  ts.isVariableStatement(node) || ts.isFunctionDeclaration(node) || ts.isClassDeclaration(node) ||
  ts.isInterfaceDeclaration(node) || ts.isTypeAliasDeclaration(node) || ts.isEnumDeclaration(node) ||
  ts.isModuleDeclaration(node)

/** The tags of the doc comment closest to a node. */
const ownTags = (node: ts.Node): Set<string> | undefined => {
  const host = ts.isVariableStatement(node) ? node.declarationList.declarations[0]! : node
  const docs = ts.getJSDocCommentsAndTags(host).filter(ts.isJSDoc)
  const doc = docs.at(-1)
  return doc && new Set((doc.tags ?? []).map((tag) => tag.tagName.text))
}

const checkExports = (): number => {
  let documented = 0
  const files = packageSources().filter((file) => !/\/src\/internal\//.test(file) && Path.basename(file) !== "index.ts")
  for (const file of files) {
    const text = Fs.readFileSync(file, "utf8")
    const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true)

    const expectTags = (node: ts.Node, name: string, tags: ReadonlyArray<string>) => {
      const line = source.getLineAndCharacterOfPosition(node.getStart(source)).line + 1
      const found = ownTags(node)
      const missing = found === undefined
        ? ["a doc comment"]
        : tags.filter((tag) => !found.has(tag)).map((tag) => `@${tag}`)
      if (missing.length === 0) documented++
      else problems.push(`${rel(file)}:${line} ${name}: missing ${missing.join(", ")}`)
    }

    // The barrel copies the module doc into the package index; it needs its @since.
    const moduleDoc = (ts.getLeadingCommentRanges(text, 0) ?? []).find((c) => text.startsWith("/**", c.pos))
    if (moduleDoc === undefined || !/@since\b/.test(text.slice(moduleDoc.pos, moduleDoc.end))) {
      problems.push(`${rel(file)}:1 (module): missing ${moduleDoc === undefined ? "a doc comment" : "@since"}`)
    }

    // Inside `declare namespace` every declaration is exported, `export` keyword or not.
    const visit = (statements: ReadonlyArray<ts.Statement>, scope: ReadonlyArray<string>, ambient: boolean) => {
      const inNamespace = scope.length > 0
      statements.forEach((node, i) => {
        const exported = hasModifier(node, ts.SyntaxKind.ExportKeyword) || ts.isExportDeclaration(node) ||
          ts.isExportAssignment(node) || (ambient && isDeclaration(node))
        if (!exported) return
        const name = [...scope, declarationName(node) ?? "?"].join(".")
        // An overloaded function is documented on its signatures, not on the implementation.
        const previous = statements[i - 1]
        const isImplementation = ts.isFunctionDeclaration(node) && node.body !== undefined && previous !== undefined &&
          ts.isFunctionDeclaration(previous) && previous.body === undefined && previous.name?.text === node.name?.text
        if (!isImplementation) expectTags(node, name, inNamespace ? ["since"] : ["since", "category"])
        if (ts.isModuleDeclaration(node) && node.body !== undefined) {
          let body: ts.ModuleBody | undefined = node.body
          const path = [...scope, node.name.getText()]
          // `namespace A.B {}` nests a declaration per dotted segment.
          while (body !== undefined && ts.isModuleDeclaration(body)) {
            path.push(body.name.getText())
            body = body.body
          }
          const inner = ambient || hasModifier(node, ts.SyntaxKind.DeclareKeyword)
          if (body !== undefined && ts.isModuleBlock(body)) visit(body.statements, path, inner)
        }
      })
    }
    visit(source.statements, [], false)
  }
  return documented
}

// --- Main -------------------------------------------------------------------------------------

const snippets = [...markdownSnippets(), ...jsdocSnippets()]
typeCheck(snippets)
const documented = checkExports()
for (const problem of problems) console.error(problem)
console.log(
  `docs-check: ${snippets.length} examples type-checked, ${documented} exports documented, ${problems.length} problems`
)
if (problems.length > 0) process.exit(1)
