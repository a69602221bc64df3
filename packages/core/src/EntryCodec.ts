/**
 * `EntryCodec`: the stored form of a `CacheEntry` for backends that cross a process boundary
 * (`KeyValueStore`, Redis). An entry becomes one JSON string, an envelope
 * `{ "$": 1, "v": value, "c": createdAt, "s": staleAt, "e": expiresAt | null }`: the value is
 * Schema-encoded when a schema is given (JSON as is otherwise, and the envelope then has no
 * `"t": 1`), `$` is the format version and `e` is `null` for "never expires" (JSON has no
 * `Infinity`). Backends share it, so every
 * serialising backend stores the same bytes for the same entry.
 *
 * @since 0.1.0
 */
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type { CacheEntry } from "./CacheEntry.js"
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
  readonly v: unknown
  readonly c: number
  readonly s: number
  readonly e: number | null
  /** `1` when `v` was encoded by a schema: it is then never handed back without one. */
  readonly t?: 1
}

/**
 * The envelope of an entry whose value is already encoded (`schemaEncoded`: by a schema).
 *
 * @since 0.1.0
 * @category constructors
 */
export const toEnvelope = (entry: CacheEntry<unknown>, encoded: unknown, schemaEncoded = false): Envelope => {
  const envelope = {
    $: 1 as const,
    v: encoded,
    c: entry.createdAt,
    s: entry.staleAt,
    e: entry.expiresAt === Infinity ? null : entry.expiresAt
  }
  return schemaEncoded ? { ...envelope, t: 1 } : envelope
}

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
  const { $, c, e, s, t } = u as Record<string, unknown>
  if (keys.length !== (t === undefined ? 5 : 6) || (t !== undefined && t !== 1) || !("v" in u)) return Option.none()
  return $ === 1 && isTime(c) && isTime(s) && c <= s && (e === null || (isTime(e) && s <= e))
    ? Option.some(u as Envelope)
    : Option.none()
}

const envelopeKeys = new Set(["$", "v", "c", "s", "e", "t"])

const isTime = (u: unknown): u is number => typeof u === "number" && Number.isFinite(u)

/**
 * Encodes an entry into its envelope string: the value through `schema` (as is without one),
 * then JSON. Fails with `CacheStoreError` reason `Encode`, named after `backend` and `method`,
 * when the schema rejects the value or the result is not JSON-serialisable (a `bigint` without
 * a schema, a cycle).
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
  entry: CacheEntry<A>,
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
    return Either.right(JSON.stringify(toEnvelope(entry, encoded.right, schema !== undefined)))
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
): Option.Option<CacheEntry<A>> =>
  Option.flatMap(parseEnvelope(json), (envelope) => {
    // a schema-encoded value read without a schema would be its encoded form posing as A
    if (schema === undefined && envelope.t === 1) return Option.none()
    const value = schema === undefined
      ? Either.right(envelope.v as A)
      : safely(() => Schema.decodeUnknownEither(schema)(envelope.v))
    return value === undefined || Either.isLeft(value) ? Option.none() : Option.some({
      value: value.right,
      createdAt: envelope.c,
      staleAt: envelope.s,
      expiresAt: envelope.e ?? Infinity
    })
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
