/**
 * Cache keys: `namespace:name:digest`, where the digest covers a canonical, type-tagged encoding
 * of the arguments.
 *
 * The encoding is injective over the values it accepts: object key order never matters, and
 * values that are not deep-equal never share an encoding (`1` vs `"1"`, `["a:b"]` vs `["a", "b"]`,
 * `0` vs `-0`, `null` vs `undefined`, …). A value that cannot be keyed — a function, a symbol, a
 * cycle, an instance of an unknown class — fails with a typed {@link CacheKeyError} before any I/O.
 *
 * @since 0.1.0
 */
import * as Chunk from "effect/Chunk"
import * as Either from "effect/Either"
import * as Encoding from "effect/Encoding"
import * as Equal from "effect/Equal"
import * as HashMap from "effect/HashMap"
import * as HashSet from "effect/HashSet"
import * as Option from "effect/Option"
import * as Predicate from "effect/Predicate"
import * as PrimaryKey from "effect/PrimaryKey"
import * as Schema from "effect/Schema"
import * as KeyMemo from "./internal/keyMemo.js"
import { digest128 } from "./internal/sha256.js"

/**
 * @since 0.1.0
 * @category type ids
 */
export const TypeId: TypeId = "~@stalewise/core/CacheKey"

/**
 * @since 0.1.0
 * @category type ids
 */
export type TypeId = "~@stalewise/core/CacheKey"

/**
 * A derived cache key. `value` is the string every store sees: `namespace:name:digest`.
 *
 * @since 0.1.0
 * @category models
 */
export interface CacheKey {
  readonly [TypeId]: TypeId
  /** The group the key belongs to; `deletePrefix(CacheKey.prefix(namespace))` drops it whole. */
  readonly namespace: string
  /** What is cached, e.g. a function, a job or an RPC method name. */
  readonly name: string
  /** A digest of the canonical encoding of the arguments, or a user supplied id. */
  readonly digest: string
  /** `namespace:name:digest`. */
  readonly value: string
}

/**
 * Raised when a key cannot be derived: an argument that cannot be keyed (`Unkeyable`: a function,
 * a symbol, a cycle, an unknown class, a getter or Proxy that throws, a `key` function that
 * throws), one nested deeper than {@link limits}`.depth` (`TooDeep`), one whose canonical
 * encoding is longer than {@link limits}`.length` (`TooLarge`), or a namespace or name that is
 * empty or contains `:` (`InvalidSegment`). It never carries the argument itself.
 *
 * @since 0.1.0
 * @category errors
 */
export class CacheKeyError extends Schema.TaggedError<CacheKeyError>("@stalewise/core/CacheKeyError")(
  "CacheKeyError",
  {
    reason: Schema.Literal("Unkeyable", "TooDeep", "TooLarge", "InvalidSegment"),
    /** Where in the arguments the problem is, e.g. `$[0].user.callback`. */
    path: Schema.String,
    /** What was found there, e.g. `function`, `symbol`, `cycle`, `class Socket`. */
    found: Schema.String
  }
) {
  /**
   * @since 0.1.0
   */
  override get message(): string {
    return this.reason === "InvalidSegment"
      ? `Invalid key segment at ${this.path}: ${this.found}`
      : `Cannot derive a cache key: ${this.found} at ${this.path}`
  }
}

/**
 * @since 0.1.0
 * @category guards
 */
export const isCacheKey = (u: unknown): u is CacheKey => Predicate.hasProperty(u, TypeId)

const Proto = {
  [TypeId]: TypeId,
  toString(this: CacheKey) {
    return this.value
  },
  toJSON(this: CacheKey) {
    return { _id: "CacheKey", namespace: this.namespace, name: this.name, digest: this.digest }
  }
}

const validateSegment = (segment: string, path: string): Either.Either<string, CacheKeyError> =>
  segment.length === 0 || segment.includes(":")
    ? Either.left(new CacheKeyError({ reason: "InvalidSegment", path, found: JSON.stringify(segment) }))
    : Either.right(segment)

const unsafeAssemble = (namespace: string, name: string, digest: string): CacheKey => {
  const key = Object.create(Proto)
  key.namespace = namespace
  key.name = name
  key.digest = digest
  key.value = `${namespace}:${name}:${digest}`
  return key
}

/**
 * Derives the key of `args` in `namespace` under `name`: the digest covers the canonical
 * encoding of `args` (see {@link encode}). Fails with a `CacheKeyError` if anything in `args`
 * cannot be keyed, or if `namespace` or `name` is empty or contains `:`.
 *
 * An `Either` is an `Effect`, so the result can be `yield*`ed directly.
 *
 * @example
 * ```ts
 * import { CacheKey } from "@stalewise/core"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const key = yield* CacheKey.make("users", "getUser", [{ id: 1, fields: ["name"] }])
 *   console.log(key.value) // users:getUser:<22-character digest>
 * })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (namespace: string, name: string, args: unknown): Either.Either<CacheKey, CacheKeyError> =>
  Either.gen(function*() {
    yield* validateSegment(namespace, "namespace")
    yield* validateSegment(name, "name")
    const canonical = yield* encode(args)
    return unsafeAssemble(namespace, name, digest(canonical))
  })

/**
 * Builds a key from an id the caller computed (the role of a user `key` function): the id is
 * used as the digest verbatim, so two different ids never collide.
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromId = (namespace: string, name: string, id: string): Either.Either<CacheKey, CacheKeyError> =>
  Either.gen(function*() {
    yield* validateSegment(namespace, "namespace")
    yield* validateSegment(name, "name")
    if (id.length === 0) {
      return yield* Either.left(new CacheKeyError({ reason: "InvalidSegment", path: "id", found: "\"\"" }))
    }
    return unsafeAssemble(namespace, name, id)
  })

/**
 * The prefix shared by every key of a namespace, or of one name in a namespace; pass it to
 * `CacheStore.deletePrefix` to drop them all.
 *
 * @since 0.1.0
 * @category utils
 */
export const prefix = (namespace: string, name?: string | undefined): string =>
  name === undefined ? `${namespace}:` : `${namespace}:${name}:`

/**
 * The digest of a canonical encoding: the first 128 bits of its SHA-256, in base64url
 * (22 characters). The runtime's native SHA-256 computes it where there is one (Node, Bun,
 * Deno), a portable implementation elsewhere: the same digest either way.
 *
 * @since 0.1.0
 * @category utils
 */
export const digest = (canonical: string): string => {
  if (canonical.length > maxMemoLength) return digest128(canonical)
  const slot = slotOf(canonical)
  if (memo !== undefined && memo.encodings[slot] === canonical) return memo.digests[slot]!
  const computed = digest128(canonical)
  // Admit one unknown encoding in 8: a hot one is soon remembered, while keys read once (a
  // scan, a bulk load) rarely push a hot one out of its slot.
  if ((++unknown & 7) === 0) remember(slot, canonical, computed)
  return computed
}

// Hot keys are derived over and over (every call of a cached function): remember the digests of
// encodings in a direct-mapped table (an encoding has one slot, by a hash of its characters; a
// newcomer replaces what was there). A lookup allocates nothing and an insert only writes two
// slots, so a working set larger than the table costs a native hash per miss and no churn. Bounded:
// 65,536 slots (1 MiB of references, allocated on first use), encodings of at most 1,024
// characters, 8 MiB of remembered strings; no lru-cache, which would otherwise land in every
// bundle that derives a key.
const memoSlots = 65_536
const maxMemoLength = 1_024
const maxMemoBytes = 8 * 1024 * 1024
let memo: { readonly encodings: Array<string | undefined>; readonly digests: Array<string | undefined> } | undefined
let memoBytes = 0
let unknown = 0

// FNV-1a over the UTF-16 code units, folded to the table's size
const slotOf = (canonical: string): number => {
  let h = 0x811c9dc5
  for (let i = 0; i < canonical.length; i++) h = Math.imul(h ^ canonical.charCodeAt(i), 0x01000193)
  return (h ^ (h >>> 16)) & (memoSlots - 1)
}

// what a remembered encoding and its digest keep alive (UTF-16 at worst, string headers)
const entryBytes = (canonical: string): number => canonical.length * 2 + 96

const remember = (slot: number, canonical: string, computed: string): void => {
  if (memo === undefined) {
    memo = { encodings: new Array(memoSlots).fill(undefined), digests: new Array(memoSlots).fill(undefined) }
  }
  const previous = memo.encodings[slot]
  const bytes = memoBytes + entryBytes(canonical) - (previous === undefined ? 0 : entryBytes(previous))
  if (bytes > maxMemoBytes) return
  memo.encodings[slot] = canonical
  memo.digests[slot] = computed
  memoBytes = bytes
}

/**
 * Validates `namespace` and `name` once and returns a function deriving key strings
 * (`CacheKey.value`) from arguments: the fast path strategies use on every call.
 *
 * @example
 * ```ts
 * import { CacheKey } from "@stalewise/core"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const keyOf = yield* CacheKey.deriver("users", "get")
 *   return yield* keyOf([42]) // "users:get:<digest>"
 * })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const deriver = (
  namespace: string,
  name: string
): Either.Either<Deriver, CacheKeyError> =>
  Either.gen(function*() {
    yield* validateSegment(namespace, "namespace")
    yield* validateSegment(name, "name")
    const keyPrefix = `${namespace}:${name}:`
    const remembered = KeyMemo.make()
    const derive = (args: unknown): Either.Either<string, CacheKeyError> => {
      const known = Array.isArray(args) ? remembered.get(args) : undefined
      return known !== undefined
        ? Either.right(known)
        : Either.map(encode(args), (canonical) => keyPrefix + digest(canonical))
    }
    return Object.assign(derive, {
      remembered: (args: unknown) => Array.isArray(args) ? remembered.get(args) : undefined,
      remember: (args: unknown, key: string) => {
        if (Array.isArray(args)) remembered.remember(args, key)
      }
    })
  })

/**
 * A key deriver ({@link deriver}): derives the key string of an argument list, and remembers the
 * keys of hot single arguments (a string or a number) that its strategy read as cached, so that
 * the next read of `get(42)` finds its key without encoding or digesting `[42]`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Deriver {
  (args: unknown): Either.Either<string, CacheKeyError>
  /**
   * Offers `key`, derived by this deriver from `args`, as a key read as cached: it is remembered
   * when `args` is a single string or number (bounded: between 131,072 and 262,144 of them, the
   * most recently read). Offer only what this deriver derived from these very arguments.
   */
  readonly remember: (args: unknown, key: string) => void
  /** The key remembered for `args`, or `undefined`: what the deriver answers first. */
  readonly remembered: (args: unknown) => string | undefined
}

/**
 * Like {@link deriver}, for ids the caller computes (the role of a user `key` function): an id
 * is used verbatim; an empty one fails with `CacheKeyError` (reason `InvalidSegment`). The key of
 * an id derived twice is remembered (between 32,768 and 65,536 of them, ids of at most 256
 * characters), so that a hot id's key is the string built before, not a new one; the keys are
 * the same either way.
 *
 * @since 0.1.0
 * @category constructors
 */
export const idDeriver = (
  namespace: string,
  name: string
): Either.Either<(id: string) => Either.Either<string, CacheKeyError>, CacheKeyError> =>
  Either.gen(function*() {
    yield* validateSegment(namespace, "namespace")
    yield* validateSegment(name, "name")
    const keyPrefix = `${namespace}:${name}:`
    // The keys of ids derived twice are remembered: a hot id's key is then the very string it was
    // before (built once, its hash cached by the engine), not a new one to build and hash on every
    // read. An id derived once is only noted, so that a scan of distinct ids keeps no keys alive.
    const remembered = KeyMemo.make(idGeneration, idsNoted)
    const keyOf = (id: string): string => {
      const known = remembered.getString(id)
      if (known !== undefined) return known
      const key = keyPrefix + id
      remembered.admitString(id, key)
      return key
    }
    return (id: string) =>
      typeof id !== "string" || id.length === 0
        ? Either.left(
          new CacheKeyError({
            reason: "InvalidSegment",
            path: "id",
            found: typeof id === "string" ? "\"\"" : typeof id
          })
        )
        : Either.right(keyOf(id))
  })

// An id deriver remembers between 32,768 and 65,536 keys (its ids may be misses, whose keys
// nothing else keeps alive), and notes up to 16,384 ids derived once before starting over.
const idGeneration = 32_768
const idsNoted = 16_384

/**
 * Runs a user function that computes a key id or what a key digests (a strategy's `key`, a job's
 * `prepareArgs`): whatever it throws becomes a `CacheKeyError` (reason `Unkeyable`, path
 * `key(...)`), without the thrown value, which may quote the arguments.
 *
 * @example
 * ```ts
 * import { CacheKey } from "@stalewise/core"
 *
 * const id = CacheKey.attempt(() => JSON.parse("{not json").id as string)
 * // Left(CacheKeyError { reason: "Unkeyable", path: "key(...)", found: "a key function that throws" })
 * ```
 *
 * @since 0.1.0
 * @category utils
 */
export const attempt = <A>(f: () => A): Either.Either<A, CacheKeyError> => {
  try {
    return Either.right(f())
  } catch {
    return Either.left(
      new CacheKeyError({ reason: "Unkeyable", path: "key(...)", found: "a key function that throws" })
    )
  }
}

/**
 * The bounds of key derivation: arguments nested deeper than `depth` levels fail with
 * `CacheKeyError` reason `TooDeep`, and arguments whose canonical encoding would be longer than
 * `length` characters fail with reason `TooLarge` — a key is derived in bounded time, memory and
 * stack, whatever the argument.
 *
 * @since 0.1.0
 * @category utils
 */
export const limits: { readonly depth: number; readonly length: number } = {
  depth: 1_000,
  length: 32 * 1024 * 1024
}

/**
 * The canonical, type-tagged encoding of a value. Two values get the same encoding exactly when
 * they are deep-equal (Node's `isDeepStrictEqual`), whatever the order of object keys, `Map`
 * entries or `Set` members. Total: any value gives an encoding or a `CacheKeyError`, never a
 * thrown exception.
 *
 * **Details**
 *
 * Accepted: `undefined`, `null`, booleans, numbers (`NaN`, `-0`, `±Infinity` kept distinct),
 * bigints, strings (any code units, lone surrogates included), `Date`s (by time; invalid dates
 * are equal to each other), `Uint8Array`s, arrays (holes and extra named properties are part of
 * the encoding), plain objects (own enumerable string keys; `{ a: undefined }` differs from `{}`,
 * and a null-prototype object from `{}`), `Map`, `Set`, `Option`, `Either`, `Chunk`, `HashMap`,
 * `HashSet`, `Data` classes and structs (the class name is part of the encoding), and anything
 * implementing `PrimaryKey` (its primary key is used).
 *
 * Fails with `CacheKeyError`: reason `Unkeyable` for anything else (functions, symbols,
 * symbol-keyed properties, cycles, instances of other classes, subclasses of the built-ins,
 * getters or Proxies that throw, revoked Proxies), `TooDeep` past {@link limits}`.depth` levels,
 * `TooLarge` past {@link limits}`.length` characters.
 *
 * @since 0.1.0
 * @category utils
 */
export const encode = (value: unknown): Either.Either<string, CacheKeyError> => {
  const state: State = { ancestors: new Set(), depth: 0, length: 0 }
  try {
    return Either.right(encodeValue(value, "$", state))
  } catch (error) {
    return Either.left(error instanceof CacheKeyError ? error : fromThrown(error, "$"))
  }
}

/** What a walk carries: the objects above the current one (cycles), its depth and output so far. */
interface State {
  readonly ancestors: Set<object>
  depth: number
  length: number
}

const unkeyable = (path: string, found: string): never => {
  throw new CacheKeyError({ reason: "Unkeyable", path, found })
}

// Whatever a getter, a Proxy trap or the engine throws becomes a typed error naming the place;
// the thrown value itself is never kept (it may quote the argument).
const fromThrown = (error: unknown, path: string): CacheKeyError =>
  error instanceof RangeError && /call stack/i.test(error.message)
    ? new CacheKeyError({ reason: "TooDeep", path, found: "nesting deeper than the stack allows" })
    : new CacheKeyError({ reason: "Unkeyable", path, found: "a value that throws when read (a getter or Proxy)" })

const emit = (state: State, part: string, path: string): string => {
  state.length += part.length
  if (state.length > limits.length) {
    throw new CacheKeyError({ reason: "TooLarge", path, found: `an encoding longer than ${limits.length} characters` })
  }
  return part
}

// Lone surrogates would all become U+FFFD in UTF-8 (one digest for "\ud800", "\ud801" and
// "\ufffd"): a string that is not well-formed UTF-16 is encoded by its code units instead.
const loneSurrogate = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/

const encodeString = (s: string): string => {
  if (!loneSurrogate.test(s)) return `s${s.length}:${s}`
  let units = ""
  for (let i = 0; i < s.length; i++) units += s.charCodeAt(i).toString(16).padStart(4, "0")
  return `w${s.length}:${units}`
}

const encodeNumber = (n: number): string => Object.is(n, -0) ? "n-0;" : `n${n};`

const hex = (bytes: Uint8Array): string => Encoding.encodeHex(bytes)

const encodeSorted = (tag: string, parts: Array<string>): string => {
  parts.sort()
  return `${tag}${parts.length}{${parts.join("")}}`
}

const encodeEntries = (
  tag: string,
  entries: Iterable<readonly [unknown, unknown]>,
  path: string,
  state: State
): string => {
  const parts: Array<string> = []
  let i = 0
  for (const [k, v] of entries) {
    const encodedKey = encodeValue(k, `${path}.<key ${i}>`, state)
    parts.push(`${encodedKey}${encodeValue(v, `${path}.<value ${i}>`, state)}`)
    i++
  }
  return encodeSorted(tag, parts)
}

const encodeMembers = (tag: string, members: Iterable<unknown>, path: string, state: State): string => {
  const parts: Array<string> = []
  let i = 0
  for (const member of members) {
    parts.push(encodeValue(member, `${path}.<member ${i++}>`, state))
  }
  return encodeSorted(tag, parts)
}

const rejectSymbolKeys = (object: object, path: string): void => {
  if (Object.getOwnPropertySymbols(object).some((s) => Object.prototype.propertyIsEnumerable.call(object, s))) {
    unkeyable(path, "symbol-keyed property")
  }
}

const encodeFields = (tag: string, object: object, keys: Array<string>, path: string, state: State): string => {
  keys.sort()
  let out = `${tag}${keys.length}{`
  for (const key of keys) {
    out += encodeString(key) + encodeValue((object as Record<string, unknown>)[key], `${path}.${key}`, state)
  }
  return out + "}"
}

const isIndex = (key: string, length: number): boolean => {
  const n = Number(key)
  return Number.isInteger(n) && n >= 0 && n < length && String(n) === key
}

// Arrays: holes differ from `undefined` and named properties are part of the value, as in
// `isDeepStrictEqual`. The common dense array pays one `Object.keys` for the check.
const encodeArray = (u: ReadonlyArray<unknown>, path: string, state: State): string => {
  rejectSymbolKeys(u, path)
  const keys = Object.keys(u)
  const plain = keys.length === u.length
  let out = `a${u.length}[`
  for (let i = 0; i < u.length; i++) {
    out += plain || i in u ? encodeValue(u[i], `${path}[${i}]`, state) : "h"
  }
  out += "]"
  if (plain) return out
  const named = keys.filter((key) => !isIndex(key, u.length))
  return named.length === 0 ? out : encodeFields(`${out}x`, u, named, path, state)
}

const ownKeysOf = (u: object, path: string): Array<string> => {
  rejectSymbolKeys(u, path)
  return Object.keys(u)
}

// Built-ins with extra own properties or another prototype are not what they look like.
// (`indexed`: a typed array's elements are own keys)
const exactly = (u: object, proto: object, path: string, what: string, indexed = 0): void => {
  if (Object.getPrototypeOf(u) !== proto) unkeyable(path, `class ${constructorName(u)}`)
  if (ownKeysOf(u, path).length > indexed) unkeyable(path, `${what} with own properties`)
}

const constructorName = (u: object): string => {
  const ctor = (u as { constructor?: { name?: unknown } }).constructor
  return typeof ctor?.name === "string" && ctor.name.length > 0 ? ctor.name : "anonymous"
}

const encodeValue = (u: unknown, path: string, state: State): string => {
  switch (typeof u) {
    case "undefined":
      return emit(state, "u", path)
    case "boolean":
      return emit(state, u ? "T" : "F", path)
    case "number":
      return emit(state, encodeNumber(u), path)
    case "bigint":
      return emit(state, `i${u};`, path)
    case "string":
      return emit(state, encodeString(u), path)
    case "symbol":
      return unkeyable(path, "symbol")
    case "function":
      return unkeyable(path, "function")
  }
  if (u === null) return emit(state, "N", path)
  const object = u as object
  if (state.ancestors.has(object)) return unkeyable(path, "cycle")
  if (state.depth >= limits.depth) {
    throw new CacheKeyError({ reason: "TooDeep", path, found: `nesting deeper than ${limits.depth} levels` })
  }
  state.ancestors.add(object)
  state.depth++
  try {
    return encodeObject(object, path, state)
  } catch (error) {
    throw error instanceof CacheKeyError ? error : fromThrown(error, path)
  } finally {
    state.depth--
    state.ancestors.delete(object)
  }
}

const encodeObject = (u: object, path: string, state: State): string => {
  if (PrimaryKey.symbol in u) {
    const id: unknown = (u as PrimaryKey.PrimaryKey)[PrimaryKey.symbol]()
    return typeof id === "string"
      ? emit(state, `k${encodeString(id)}`, path)
      : unkeyable(path, "a non-string PrimaryKey")
  }
  if (Array.isArray(u)) {
    if (Object.getPrototypeOf(u) !== Array.prototype) unkeyable(path, `class ${constructorName(u)}`)
    return encodeArray(u, path, state)
  }
  if (u instanceof Date) {
    exactly(u, Date.prototype, path, "Date")
    return emit(state, `D${u.getTime()};`, path)
  }
  if (u instanceof Uint8Array && u.constructor === Uint8Array) {
    exactly(u, Uint8Array.prototype, path, "Uint8Array", u.length)
    return emit(state, `b${u.length}:${hex(u)}`, path)
  }
  if (u instanceof Map) {
    exactly(u, Map.prototype, path, "Map")
    return encodeEntries("M", u, path, state)
  }
  if (u instanceof Set) {
    exactly(u, Set.prototype, path, "Set")
    return encodeMembers("S", u, path, state)
  }
  const proto = Object.getPrototypeOf(u)
  if (proto === Object.prototype) return encodeFields("o", u, ownKeysOf(u, path), path, state)
  if (proto === null) return encodeFields("p", u, ownKeysOf(u, path), path, state)
  if (Option.isOption(u)) return Option.isSome(u) ? `O1${encodeValue(u.value, `${path}.value`, state)}` : "O0"
  if (Either.isEither(u)) {
    return Either.isRight(u)
      ? `ER${encodeValue(u.right, `${path}.right`, state)}`
      : `EL${encodeValue(u.left, `${path}.left`, state)}`
  }
  if (Chunk.isChunk(u)) return `C${encodeValue(Chunk.toReadonlyArray(u), path, state)}`
  if (HashMap.isHashMap(u)) return encodeEntries("HM", u, path, state)
  if (HashSet.isHashSet(u)) return encodeMembers("HS", u, path, state)
  // `Data` classes and structs: structural by definition; the class name keeps two classes
  // with the same fields apart.
  if (Equal.isEqual(u)) {
    return encodeFields(`c${encodeString(constructorName(u))}`, u, ownKeysOf(u, path), path, state)
  }
  return unkeyable(path, `class ${constructorName(u)}`)
}
