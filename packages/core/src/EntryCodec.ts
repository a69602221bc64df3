/**
 * `EntryCodec`: the stored form of a `CacheEntry` for backends that cross a process boundary
 * (`KeyValueStore`, Redis). An entry becomes one JSON string, an envelope
 * `{ "$": 1, "v": value, "c": createdAt, "s": staleAt, "e": expiresAt | null }`: the value is
 * Schema-encoded when a schema is given (JSON as is otherwise), `$` is the format version and
 * `e` is `null` for "never expires" (JSON has no `Infinity`). Backends share it, so every
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
import type { CacheEntry } from "./CacheEntry.js"
import { CacheStoreError } from "./CacheStore.js"

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

const applyPatches = (root: unknown, patches: ReadonlyArray<Patch>): unknown => {
  for (const [path, kind] of patches) {
    if (path.length === 0) {
      root = kind === "h" ? undefined : special[kind]
      continue
    }
    let parent = root as Record<string | number, unknown>
    for (let i = 0; i < path.length - 1; i++) parent = parent[path[i]!] as Record<string | number, unknown>
    const last = path[path.length - 1]!
    if (kind === "h") delete parent[last]
    else parent[last] = special[kind]
  }
  return root
}

const kinds = new Set(["u", "n", "i", "-i", "-0", "h"])

const isPatches = (u: unknown): u is ReadonlyArray<Patch> =>
  Array.isArray(u) &&
  u.every((patch) =>
    Array.isArray(patch) && patch.length === 2 && Array.isArray(patch[0]) && kinds.has(patch[1]) &&
    (patch[0] as Array<unknown>).every((key) => typeof key === "string" || typeof key === "number")
  )

/**
 * The envelope of an entry whose value is already encoded.
 *
 * @since 0.1.0
 * @category constructors
 */
export const toEnvelope = (
  entry: CacheEntry<unknown>,
  encoded: unknown,
  patches?: ReadonlyArray<Patch> | undefined
): Envelope => ({
  $: 1,
  v: encoded,
  c: entry.createdAt,
  s: entry.staleAt,
  e: entry.expiresAt === Infinity ? null : entry.expiresAt,
  ...(patches !== undefined && patches.length > 0 ? { p: patches } : {})
})

/**
 * Parses a stored envelope; `None` for anything that is not one (corrupt data, another format).
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
  if (typeof u !== "object" || u === null) return Option.none()
  const { $, c, e, p, s } = u as Record<string, unknown>
  if (p !== undefined && !isPatches(p)) return Option.none()
  // the value is absent only when it is `undefined`, and then a patch says so
  if (!("v" in u) && !(p !== undefined && p.some(([path, kind]) => path.length === 0 && kind === "u"))) {
    return Option.none()
  }
  return $ === 1 && typeof c === "number" && typeof s === "number" && (e === null || typeof e === "number")
    ? Option.some(u as Envelope)
    : Option.none()
}

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
 * // Right('{"$":1,"v":"1970-01-01T00:00:00.000Z","c":0,"s":1000,"e":null}')
 * const back = Either.map(json, (s) => EntryCodec.decode(s, Schema.Date))
 * ```
 *
 * @since 0.1.0
 * @category encoding
 */
export const encode = <A, I>(
  entry: CacheEntry<A>,
  schema: Schema.Schema<A, I> | undefined,
  context: { readonly backend: string; readonly method: string }
): Either.Either<string, CacheStoreError> => {
  const fail = (cause: unknown) =>
    new CacheStoreError({ reason: "Encode", backend: context.backend, method: context.method, cause })
  const encoded = schema === undefined ? Either.right<unknown>(entry.value) : Schema.encodeEither(schema)(entry.value)
  if (Either.isLeft(encoded)) return Either.left(fail(encoded.left))
  try {
    const patches: Array<Patch> = []
    collect(encoded.right, undefined, patches, new Set())
    return Either.right(JSON.stringify(toEnvelope(entry, encoded.right, patches)))
  } catch (cause) {
    return Either.left(fail(cause))
  }
}

/**
 * Decodes an envelope string back into an entry; `None` when it is corrupt or its value does not
 * match `schema`. A backend treats `None` as a decode failure: a miss, deleted and counted.
 *
 * @since 0.1.0
 * @category decoding
 */
export const decode = <A, I>(
  json: string,
  schema: Schema.Schema<A, I> | undefined
): Option.Option<CacheEntry<A>> =>
  Option.flatMap(parseEnvelope(json), (envelope) => {
    const raw = envelope.p === undefined ? envelope.v : applyPatches(envelope.v, envelope.p)
    const value = schema === undefined
      ? Either.right(raw as A)
      : Schema.decodeUnknownEither(schema)(raw)
    return Either.isLeft(value) ? Option.none() : Option.some({
      value: value.right,
      createdAt: envelope.c,
      staleAt: envelope.s,
      expiresAt: envelope.e ?? Infinity
    })
  })
