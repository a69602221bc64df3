/**
 * `EntryCodec`: the stored form of a `CacheEntry` for backends that cross a process boundary
 * (`KeyValueStore`, Redis). An entry becomes one JSON string, an envelope
 * `{ "$": 1, "v": value, "c": createdAt, "s": staleAt, "e": expiresAt | null }`: the value is
 * Schema-encoded when a schema is given (JSON as is otherwise, and the envelope then has no
 * `"t": 1`), `$` is the format version and `e` is `null` for "never expires" (JSON has no
 * `Infinity`), and `g` lists the entry's tags when it has some. Backends share it, so every
 * serialising backend stores the same bytes for the same entry.
 *
 * **Values JSON cannot say.** `undefined` (the value itself, an array element or an object
 * property), `NaN`, `±Infinity`, `-0` and the holes of sparse arrays would come back as
 * something else (or, for an `undefined` value, not at all). The envelope lists them in `p`, as
 * `[path, kind]` pairs beside the JSON, and decoding puts them back, so every value round-trips
 * exactly. Values JSON would drop or flatten silently — functions, symbols, `Map`, `Set` — are
 * refused at write with `CacheStoreError` reason `Encode`: give the strategy a schema for them.
 *
 * @since 0.1.0
 */
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as CacheEntry from "./CacheEntry.js"
import { CacheStoreError } from "./CacheStore.js"
import * as Diagnostics from "./Diagnostics.js"

/**
 * The stored form of an entry. `$` is the format version; `e` is `null` for "never expires".
 *
 * @since 0.1.0
 * @category models
 */
export interface Envelope {
  readonly $: 1
  /** The (encoded) value; absent when the value is `undefined`. */
  readonly v?: unknown
  readonly c: number
  readonly s: number
  readonly e: number | null
  /** The entry's tags; absent when it has none (entries written before tags decode as untagged). */
  readonly g?: ReadonlyArray<string> | undefined
  /** `1` when `v` was encoded by a schema: it is then never handed back without one. */
  readonly t?: 1
  /** Where the value holds what JSON cannot say; absent when nothing. */
  readonly p?: ReadonlyArray<Patch> | undefined
}

/**
 * What JSON cannot say, at a path of the value (object keys and array indices): `u` undefined,
 * `n` NaN, `i` Infinity, `-i` -Infinity, `-0` negative zero, `h` a hole of a sparse array.
 *
 * @since 0.1.0
 * @category models
 */
export type Patch = readonly [path: ReadonlyArray<string | number>, kind: "u" | "n" | "i" | "-i" | "-0" | "h"]

/** The path to a node, built only when a patch needs it. */
interface Path {
  readonly parent: Path | undefined
  readonly key: string | number
}

const pathOf = (path: Path | undefined): Array<string | number> => {
  const keys: Array<string | number> = []
  for (let at = path; at !== undefined; at = at.parent) keys.push(at.key)
  return keys.reverse()
}

const refuse = (what: string, path: Path | undefined): never => {
  const where = path === undefined ? "the value" : `the value at ${JSON.stringify(pathOf(path))}`
  throw new TypeError(`${where} is a ${what}, which JSON cannot store: give the strategy a schema for it`)
}

/**
 * Walks what `JSON.stringify` would write and lists the patches that make it exact; throws for
 * what JSON would drop or flatten silently, and for cycles.
 */
const collect = (value: unknown, path: Path | undefined, patches: Array<Patch>, stack: Set<object>): void => {
  switch (typeof value) {
    case "undefined":
      patches.push([pathOf(path), "u"])
      return
    case "number":
      if (Number.isNaN(value)) patches.push([pathOf(path), "n"])
      else if (value === Infinity) patches.push([pathOf(path), "i"])
      else if (value === -Infinity) patches.push([pathOf(path), "-i"])
      else if (value === 0 && 1 / value < 0) patches.push([pathOf(path), "-0"])
      return
    case "function":
    case "symbol":
    case "bigint":
      return refuse(typeof value, path)
    case "object": {
      if (value === null) return
      const toJSON = (value as { toJSON?: unknown }).toJSON
      if (typeof toJSON === "function") {
        return collect(toJSON.call(value, path === undefined ? "" : String(path.key)), path, patches, stack)
      }
      if (value instanceof Map || value instanceof Set) return refuse(value.constructor.name, path)
      if (stack.has(value)) return refuse("cycle", path)
      stack.add(value)
      if (Array.isArray(value)) {
        for (let i = 0; i < value.length; i++) {
          if (i in value) collect(value[i], { parent: path, key: i }, patches, stack)
          else patches.push([pathOf({ parent: path, key: i }), "h"])
        }
      } else {
        for (const key of Object.keys(value)) {
          collect((value as Record<string, unknown>)[key], { parent: path, key }, patches, stack)
        }
      }
      stack.delete(value)
      return
    }
    default:
      return
  }
}

const special = { u: undefined, n: NaN, i: Infinity, "-i": -Infinity, "-0": -0 } as const

const isContainer = (u: unknown): u is Record<string | number, unknown> => typeof u === "object" && u !== null

/**
 * Puts back what the patches say; `Option.none()` when a patch does not fit the value (stored
 * data that is not ours): a path through something that is not an own object or array, or a
 * key that would reach a prototype.
 */
const applyPatches = (root: unknown, patches: ReadonlyArray<Patch>): Option.Option<unknown> => {
  for (const [path, kind] of patches) {
    if (path.length === 0) {
      root = kind === "h" ? undefined : special[kind]
      continue
    }
    let parent: unknown = root
    for (let i = 0; i < path.length - 1; i++) {
      if (!isContainer(parent) || !Object.hasOwn(parent, path[i]!)) return Option.none()
      parent = parent[path[i]!]
    }
    const last = path[path.length - 1]!
    if (!isContainer(parent) || last === "__proto__") return Option.none()
    if (kind === "h") delete parent[last]
    else parent[last] = special[kind]
  }
  return Option.some(root)
}

const kinds = new Set(["u", "n", "i", "-i", "-0", "h"])

const isPatches = (u: unknown): u is ReadonlyArray<Patch> =>
  Array.isArray(u) &&
  u.every((patch) =>
    Array.isArray(patch) && patch.length === 2 && Array.isArray(patch[0]) && kinds.has(patch[1]) &&
    (patch[0] as Array<unknown>).every((key) => typeof key === "string" || typeof key === "number")
  )

/**
 * The envelope of an entry whose value is already encoded (`schemaEncoded`: by a schema;
 * `patches`: what JSON cannot say about it).
 *
 * @since 0.1.0
 * @category constructors
 */
export const toEnvelope = (
  entry: CacheEntry.CacheEntry<unknown>,
  encoded: unknown,
  options?: {
    readonly schemaEncoded?: boolean | undefined
    readonly patches?: ReadonlyArray<Patch> | undefined
  }
): Envelope => ({
  $: 1,
  v: encoded,
  c: entry.createdAt,
  s: entry.staleAt,
  e: entry.expiresAt === Infinity ? null : entry.expiresAt,
  ...(entry.tags !== undefined && entry.tags.length > 0 ? { g: entry.tags } : {}),
  ...(options?.schemaEncoded === true ? { t: 1 as const } : {}),
  ...(options?.patches !== undefined && options.patches.length > 0 ? { p: options.patches } : {})
})

/**
 * Parses a stored envelope; `None` for anything that is not exactly one: corrupt data, another
 * format, extra fields, timestamps that are not finite numbers or out of order
 * (`c ≤ s`, `s ≤ e`). Without a schema, what a store hands back is the `v` of an envelope that
 * passed this check, as JSON decoded it: give a schema to check the value itself.
 *
 * @since 0.1.0
 * @category decoding
 */
export const parseEnvelope = (json: string): Option.Option<Envelope> => {
  let u: unknown
  try {
    u = JSON.parse(json)
  } catch {
    return Option.none()
  }
  if (typeof u !== "object" || u === null || Array.isArray(u)) return Option.none()
  const keys = Object.keys(u)
  if (!keys.every((key) => envelopeKeys.has(key))) return Option.none()
  const { $, c, e, g, p, s, t } = u as Record<string, unknown>
  if (t !== undefined && t !== 1) return Option.none()
  if (g !== undefined && !(Array.isArray(g) && g.every((tag) => typeof tag === "string"))) return Option.none()
  if (p !== undefined && !isPatches(p)) return Option.none()
  // the value is absent only when it is `undefined`, and then a patch says so
  if (!("v" in u) && !(p !== undefined && p.some(([path, kind]) => path.length === 0 && kind === "u"))) {
    return Option.none()
  }
  return $ === 1 && isTime(c) && isTime(s) && c <= s && (e === null || (isTime(e) && s <= e))
    ? Option.some(u as Envelope)
    : Option.none()
}

const envelopeKeys = new Set(["$", "v", "c", "s", "e", "g", "t", "p"])

const isTime = (u: unknown): u is number => typeof u === "number" && Number.isFinite(u)

/**
 * Encodes an entry into its envelope string: the value through `schema` (as is without one),
 * then JSON, with the patches that keep `undefined`, `NaN`, `±Infinity`, `-0` and holes exact.
 * Fails with `CacheStoreError` reason `Encode`, named after `backend` and `method`, when the
 * schema rejects the value or the result is not JSON-serialisable (a `bigint`, function, symbol,
 * `Map` or `Set` without a schema, a cycle).
 *
 * @example
 * ```ts
 * import { CacheEntry, EntryCodec } from "@stalewise/core"
 * import { Either, Schema } from "effect"
 *
 * const entry = CacheEntry.make({ value: new Date(0), createdAt: 0, staleAt: 1_000, expiresAt: Infinity })
 * const json = EntryCodec.encode(entry, Schema.Date, { backend: "my-backend", method: "set" })
 * // Right('{"$":1,"v":"1970-01-01T00:00:00.000Z","c":0,"s":1000,"e":null,"t":1}')
 * const back = Either.map(json, (s) => EntryCodec.decode(s, Schema.Date))
 * ```
 *
 * @since 0.1.0
 * @category encoding
 */
export const encode = <A, I>(
  entry: CacheEntry.CacheEntry<A>,
  schema: Schema.Schema<A, I> | undefined,
  context: { readonly backend: string; readonly method: string }
): Either.Either<string, CacheStoreError> => {
  const fail = (cause: unknown) =>
    new CacheStoreError({ reason: "Encode", backend: context.backend, method: context.method, cause })
  const encoded = schema === undefined
    ? Either.right<unknown>(entry.value)
    : safely(() => Schema.encodeEither(schema)(entry.value))
  if (encoded === undefined) return Either.left(fail(new Error("the schema could not walk the value (too deep?)")))
  // the ParseError quotes the value: only its summary (paths and reasons) travels on
  if (Either.isLeft(encoded)) return Either.left(fail(Diagnostics.redactParseError(encoded.left)))
  try {
    const patches: Array<Patch> = []
    collect(encoded.right, undefined, patches, new Set())
    return Either.right(
      JSON.stringify(toEnvelope(entry, encoded.right, { schemaEncoded: schema !== undefined, patches }))
    )
  } catch (cause) {
    return Either.left(fail(notJson(cause)))
  }
}

/**
 * Decodes an envelope string back into an entry; `None` when it is corrupt, its value does not
 * match `schema`, or it was written through a schema and is read without one (its encoded form
 * is not the value). A backend treats `None` as a decode failure: a miss, deleted and counted.
 *
 * @since 0.1.0
 * @category decoding
 */
export const decode = <A, I>(
  json: string,
  schema: Schema.Schema<A, I> | undefined
): Option.Option<CacheEntry.CacheEntry<A>> =>
  Option.flatMap(parseEnvelope(json), (envelope) => {
    // a schema-encoded value read without a schema would be its encoded form posing as A
    if (schema === undefined && envelope.t === 1) return Option.none()
    const patched = envelope.p === undefined ? Option.some(envelope.v) : applyPatches(envelope.v, envelope.p)
    if (Option.isNone(patched)) return Option.none()
    const raw = patched.value
    const value = schema === undefined
      ? Either.right(raw as A)
      : safely(() => Schema.decodeUnknownEither(schema)(raw))
    return value === undefined || Either.isLeft(value) ? Option.none() : Option.some(CacheEntry.make({
      value: value.right,
      createdAt: envelope.c,
      staleAt: envelope.s,
      expiresAt: envelope.e ?? Infinity,
      tags: envelope.g
    }))
  })

// JSON.stringify's own messages name a bigint or a cycle's property names; anything else (a
// throwing `toJSON`) may quote the value and is not kept.
const notJson = (cause: unknown): Error => {
  const first = cause instanceof Error ? cause.message.split("\n")[0]! : ""
  return new Error(
    /BigInt|circular/i.test(first)
      ? first
      : `the value is not JSON-serialisable (${(cause as Error)?.name ?? typeof cause})`
  )
}

// A recursive schema walks a value recursively: stored data nested deep enough overflows the
// stack, which must be a decode failure, not a defect.
const safely = <A>(f: () => A): A | undefined => {
  try {
    return f()
  } catch {
    return undefined
  }
}
