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
import { sha256 } from "@noble/hashes/sha2.js"
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
import { LRUCache } from "lru-cache"

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
 * Raised when a key cannot be derived: an argument that cannot be keyed (`Unkeyable`), or a
 * namespace or name that is empty or contains `:` (`InvalidSegment`).
 *
 * @since 0.1.0
 * @category errors
 */
export class CacheKeyError extends Schema.TaggedError<CacheKeyError>("@stalewise/core/CacheKeyError")(
  "CacheKeyError",
  {
    reason: Schema.Literal("Unkeyable", "InvalidSegment"),
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
    return this.reason === "Unkeyable"
      ? `Cannot derive a cache key: ${this.found} at ${this.path}`
      : `Invalid key segment at ${this.path}: ${this.found}`
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
 * (22 characters).
 *
 * @since 0.1.0
 * @category utils
 */
export const digest = (canonical: string): string => {
  let cached = recentDigests.get(canonical)
  if (cached === undefined) {
    cached = Encoding.encodeBase64Url(sha256(textEncoder.encode(canonical)).subarray(0, 16))
    recentDigests.set(canonical, cached)
  }
  return cached
}

const textEncoder = new TextEncoder()

// Hashing costs microseconds and hot keys are derived over and over (every call of a cached
// function): remember the digests of recent encodings. Bounded, so memory stays small.
const recentDigests = new LRUCache<string, string>({ max: 4_096 })

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
): Either.Either<(args: unknown) => Either.Either<string, CacheKeyError>, CacheKeyError> =>
  Either.gen(function*() {
    yield* validateSegment(namespace, "namespace")
    yield* validateSegment(name, "name")
    const keyPrefix = `${namespace}:${name}:`
    return (args: unknown) => Either.map(encode(args), (canonical) => keyPrefix + digest(canonical))
  })

/**
 * Like {@link deriver}, for ids the caller computes (the role of a user `key` function): an id
 * is used verbatim; an empty one fails with `CacheKeyError` (reason `InvalidSegment`).
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
    return (id: string) =>
      id.length === 0
        ? Either.left(new CacheKeyError({ reason: "InvalidSegment", path: "id", found: "\"\"" }))
        : Either.right(keyPrefix + id)
  })

/**
 * The canonical, type-tagged encoding of a value. Two values get the same encoding exactly when
 * they are deep-equal (Node's `isDeepStrictEqual` on plain data), whatever the order of object
 * keys, `Map` entries or `Set` members.
 *
 * **Details**
 *
 * Accepted: `undefined`, `null`, booleans, numbers (`NaN`, `-0`, `±Infinity` kept distinct),
 * bigints, strings, `Date`s (by time; invalid dates are equal to each other), `Uint8Array`s,
 * arrays, plain objects (own enumerable string keys; `{ a: undefined }` differs from `{}`),
 * `Map`, `Set`, `Option`, `Either`, `Chunk`, `HashMap`, `HashSet`, `Data` classes and structs
 * (the class name is part of the encoding), and anything implementing `PrimaryKey` (its primary
 * key is used). Everything else fails with `CacheKeyError` (reason `Unkeyable`).
 *
 * @since 0.1.0
 * @category utils
 */
export const encode = (value: unknown): Either.Either<string, CacheKeyError> => {
  try {
    return Either.right(encodeValue(value, "$", []))
  } catch (error) {
    if (error instanceof CacheKeyError) return Either.left(error)
    throw error
  }
}

const unkeyable = (path: string, found: string): never => {
  throw new CacheKeyError({ reason: "Unkeyable", path, found })
}

const encodeString = (s: string): string => `s${s.length}:${s}`

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
  stack: Array<unknown>
): string => {
  const parts: Array<string> = []
  let i = 0
  for (const [k, v] of entries) {
    const encodedKey = encodeValue(k, `${path}.<key ${i}>`, stack)
    parts.push(`${encodedKey}${encodeValue(v, `${path}.<value ${i}>`, stack)}`)
    i++
  }
  return encodeSorted(tag, parts)
}

const encodeMembers = (tag: string, members: Iterable<unknown>, path: string, stack: Array<unknown>): string => {
  const parts: Array<string> = []
  let i = 0
  for (const member of members) {
    parts.push(encodeValue(member, `${path}.<member ${i++}>`, stack))
  }
  return encodeSorted(tag, parts)
}

const encodeFields = (tag: string, object: object, path: string, stack: Array<unknown>): string => {
  if (Object.getOwnPropertySymbols(object).some((s) => Object.prototype.propertyIsEnumerable.call(object, s))) {
    unkeyable(path, "symbol-keyed property")
  }
  const keys = Object.keys(object).sort()
  let out = `${tag}${keys.length}{`
  for (const key of keys) {
    out += encodeString(key) + encodeValue((object as Record<string, unknown>)[key], `${path}.${key}`, stack)
  }
  return out + "}"
}

const isPlainObject = (u: object): boolean => {
  const proto = Object.getPrototypeOf(u)
  return proto === null || proto === Object.prototype
}

const constructorName = (u: object): string => {
  const ctor = (u as { constructor?: { name?: unknown } }).constructor
  return typeof ctor?.name === "string" && ctor.name.length > 0 ? ctor.name : "anonymous"
}

const encodeValue = (u: unknown, path: string, stack: Array<unknown>): string => {
  switch (typeof u) {
    case "undefined":
      return "u"
    case "boolean":
      return u ? "T" : "F"
    case "number":
      return encodeNumber(u)
    case "bigint":
      return `i${u};`
    case "string":
      return encodeString(u)
    case "symbol":
      return unkeyable(path, "symbol")
    case "function":
      return unkeyable(path, "function")
  }
  if (u === null) return "N"
  const object = u as object
  if (stack.includes(object)) return unkeyable(path, "cycle")
  stack.push(object)
  try {
    return encodeObject(object, path, stack)
  } finally {
    stack.pop()
  }
}

const encodeObject = (u: object, path: string, stack: Array<unknown>): string => {
  if (PrimaryKey.symbol in u) {
    return `k${encodeString((u as PrimaryKey.PrimaryKey)[PrimaryKey.symbol]())}`
  }
  if (Array.isArray(u)) {
    let out = `a${u.length}[`
    for (let i = 0; i < u.length; i++) out += encodeValue(u[i], `${path}[${i}]`, stack)
    return out + "]"
  }
  if (u instanceof Date) return `D${u.getTime()};`
  if (u instanceof Uint8Array && u.constructor === Uint8Array) return `b${u.length}:${hex(u)}`
  if (u instanceof Map) return encodeEntries("M", u, path, stack)
  if (u instanceof Set) return encodeMembers("S", u, path, stack)
  if (isPlainObject(u)) return encodeFields("o", u, path, stack)
  if (Option.isOption(u)) return Option.isSome(u) ? `O1${encodeValue(u.value, `${path}.value`, stack)}` : "O0"
  if (Either.isEither(u)) {
    return Either.isRight(u)
      ? `ER${encodeValue(u.right, `${path}.right`, stack)}`
      : `EL${encodeValue(u.left, `${path}.left`, stack)}`
  }
  if (Chunk.isChunk(u)) return `C${encodeValue(Chunk.toReadonlyArray(u), path, stack)}`
  if (HashMap.isHashMap(u)) return encodeEntries("HM", u, path, stack)
  if (HashSet.isHashSet(u)) return encodeMembers("HS", u, path, stack)
  // `Data` classes and structs: structural by definition; the class name keeps two classes
  // with the same fields apart.
  if (Equal.isEqual(u)) return encodeFields(`c${encodeString(constructorName(u))}`, u, path, stack)
  return unkeyable(path, `class ${constructorName(u)}`)
}
