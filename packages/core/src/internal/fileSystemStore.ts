/** @internal */
import type * as PlatformError from "@effect/platform/Error"
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import { sha256 } from "@noble/hashes/sha2.js"
import * as Effect from "effect/Effect"
import * as Encoding from "effect/Encoding"
import * as Option from "effect/Option"
import type * as Schema from "effect/Schema"
import type { CacheEntry } from "../CacheEntry.js"
import * as CacheMetrics from "../CacheMetrics.js"
import * as CacheStore from "../CacheStore.js"
import * as Diagnostics from "../Diagnostics.js"
import * as EntryCodec from "../EntryCodec.js"
import { leaseMillis, makeToken } from "./lease.js"

const backend = "file-system"

// File names: the key, percent-encoded; a key too long for a file name is named by its digest.
// Every file starts with its key on a line of its own, so a listing can always recover the key.
const maxNameLength = 200

// (`~` is escaped too: a leading `~` marks a digest name)
const fileName = (key: string): string => {
  const encoded = encodeURIComponent(key).replace(/~/g, "%7E")
  return encoded.length <= maxNameLength && encoded !== "." && encoded !== ".."
    ? encoded
    : `~${Encoding.encodeBase64Url(sha256(new TextEncoder().encode(key)))}`
}

const withKey = (key: string, body: string): string => `${JSON.stringify(key)}\n${body}`

// The body of a file written for `key`, or None when the file is not one (another key, corrupt).
const bodyOf = (key: string, content: string): Option.Option<string> => {
  const newline = content.indexOf("\n")
  return newline !== -1 && content.slice(0, newline) === JSON.stringify(key)
    ? Option.some(content.slice(newline + 1))
    : Option.none()
}

const keyOf = (content: string): Option.Option<string> => {
  const newline = content.indexOf("\n")
  if (newline === -1) return Option.none()
  try {
    const key: unknown = JSON.parse(content.slice(0, newline))
    return typeof key === "string" ? Option.some(key) : Option.none()
  } catch {
    return Option.none()
  }
}

const isNotFound = (error: PlatformError.PlatformError) => error._tag === "SystemError" && error.reason === "NotFound"
const isAlreadyExists = (error: PlatformError.PlatformError) =>
  error._tag === "SystemError" && error.reason === "AlreadyExists"

/** @internal */
export const make = (
  options: CacheStore.FileSystemOptions
): Effect.Effect<CacheStore.CacheStore.Service, CacheStore.CacheStoreError, FileSystem.FileSystem | Path.Path> =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const counters = CacheMetrics.makeStoreCounters(backend)
    const warnings = Diagnostics.makeWarnings()
    const entries = path.join(options.directory, "v")
    const leases = path.join(options.directory, "l")
    const temporary = path.join(options.directory, "t")

    const unavailable = (method: string) => (cause: unknown) =>
      new CacheStore.CacheStoreError({ reason: "Unavailable", backend, method, cause })
    const counted = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
      Effect.tapError(effect, () => Effect.sync(counters.error))

    yield* Effect.forEach(
      [entries, leases, temporary],
      (directory) => fs.makeDirectory(directory, { recursive: true }),
      { discard: true }
    ).pipe(Effect.mapError(unavailable("open")))

    const entryPath = (key: string) => path.join(entries, fileName(key))
    const leasePath = (key: string) => path.join(leases, fileName(key))
    const temporaryPath = () => path.join(temporary, `${makeToken()}.tmp`)

    const readOption = (file: string) =>
      fs.readFileString(file).pipe(
        Effect.map(Option.some),
        Effect.catchIf(isNotFound, () => Effect.succeedNone)
      )
    const removeQuietly = (file: string) => fs.remove(file).pipe(Effect.catchIf(isNotFound, () => Effect.void))

    // Atomic: readers see the old file or the new one, never half of one.
    const writeAtomically = (file: string, content: string) => {
      const staging = temporaryPath()
      return fs.writeFileString(staging, content).pipe(
        Effect.zipRight(fs.rename(staging, file)),
        Effect.tapError(() => Effect.ignore(fs.remove(staging)))
      )
    }

    // Removes `file` only if it still holds `content`: it is taken out of place atomically, checked,
    // and put back (without overwriting anything written since) if it changed in between.
    const removeIfUnchanged = (file: string, content: string) => {
      const taken = temporaryPath()
      return fs.rename(file, taken).pipe(
        Effect.zipRight(
          Effect.flatMap(readOption(taken), (held) =>
            Option.isSome(held) && held.value === content
              ? Effect.as(removeQuietly(taken), true)
              : fs.link(taken, file).pipe(
                Effect.catchIf(isAlreadyExists, () => Effect.void),
                Effect.zipRight(removeQuietly(taken)),
                Effect.as(false)
              ))
        ),
        Effect.catchIf(isNotFound, () => Effect.succeed(false))
      )
    }

    const now = Effect.clockWith((clock) => clock.currentTimeMillis)

    const store: CacheStore.CacheStore.Service = {
      [CacheStore.TypeId]: CacheStore.TypeId,
      backend,
      get: <A, I>(key: string, schema?: Schema.Schema<A, I>) =>
        Effect.gen(function*() {
          const file = entryPath(key)
          const content = yield* readOption(file)
          if (Option.isNone(content)) {
            counters.miss()
            return Option.none<CacheEntry<A>>()
          }
          const entry = Option.flatMap(bodyOf(key, content.value), (body) => EntryCodec.decode(body, schema))
          if (Option.isNone(entry)) {
            counters.decodeFailure()
            counters.miss()
            yield* warnings.warn("undecodable", "stalewise: dropped a stored entry that failed to decode", {
              backend,
              key
            })
            yield* removeIfUnchanged(file, content.value)
            return Option.none<CacheEntry<A>>()
          }
          if (entry.value.expiresAt <= (yield* now)) {
            counters.miss()
            yield* removeIfUnchanged(file, content.value)
            return Option.none<CacheEntry<A>>()
          }
          counters.hit()
          return entry
        }).pipe(Effect.mapError(unavailable("get")), counted),
      set: (key, entry, schema) =>
        Effect.gen(function*() {
          if (entry.expiresAt <= (yield* now)) {
            return yield* Effect.mapError(removeQuietly(entryPath(key)), unavailable("set"))
          }
          const json = yield* EntryCodec.encode(entry, schema, { backend, method: "set" })
          yield* Effect.mapError(writeAtomically(entryPath(key), withKey(key, json)), unavailable("set"))
        }).pipe(counted),
      delete: (key) => removeQuietly(entryPath(key)).pipe(Effect.mapError(unavailable("delete")), counted),
      // The directory is the index: every instance on it sees every entry, so nothing under the
      // prefix stays readable, whichever instance wrote it.
      deletePrefix: (prefix) =>
        Effect.gen(function*() {
          const names = yield* fs.readDirectory(entries)
          let removed = 0
          yield* Effect.forEach(names, (name) =>
            Effect.gen(function*() {
              const file = path.join(entries, name)
              let key: string | undefined
              if (!name.startsWith("~")) {
                try {
                  key = decodeURIComponent(name)
                } catch {
                  key = undefined
                }
              } else {
                key = Option.getOrUndefined(Option.flatMap(yield* readOption(file), keyOf))
              }
              if (key === undefined || !key.startsWith(prefix)) return
              const existed = yield* fs.remove(file).pipe(
                Effect.as(true),
                Effect.catchIf(isNotFound, () => Effect.succeed(false))
              )
              if (existed) removed++
            }), { concurrency: 16, discard: true })
          return removed
        }).pipe(Effect.mapError(unavailable("deletePrefix")), counted),
      acquireLease: (key, duration) =>
        Effect.gen(function*() {
          const millis = yield* leaseMillis(duration)
          const file = leasePath(key)
          const at = yield* now
          const lease = { key, token: makeToken(), expiresAt: at + millis }
          const staging = temporaryPath()
          yield* Effect.mapError(
            fs.writeFileString(staging, `${lease.token}|${lease.expiresAt}`),
            unavailable("acquireLease")
          )
          // `link` creates the lease file only if there is none: of concurrent callers, one wins.
          const take = fs.link(staging, file).pipe(
            Effect.as(true),
            Effect.catchIf(isAlreadyExists, () => Effect.succeed(false))
          )
          const attempt = (tries: number): Effect.Effect<boolean, PlatformError.PlatformError> =>
            Effect.flatMap(take, (won) => {
              if (won || tries === 0) return Effect.succeed(won)
              return Effect.flatMap(readOption(file), (held) => {
                if (Option.isNone(held)) return attempt(tries - 1)
                const expiresAt = Number(held.value.slice(held.value.lastIndexOf("|") + 1))
                if (Number.isFinite(expiresAt) && expiresAt > at) return Effect.succeed(false)
                // run out: take it away (if it is still that one) and try again
                return Effect.zipRight(removeIfUnchanged(file, held.value), attempt(tries - 1))
              })
            })
          const won = yield* attempt(3).pipe(
            Effect.ensuring(Effect.ignore(fs.remove(staging))),
            Effect.mapError(unavailable("acquireLease"))
          )
          return won ? Option.some(lease) : Option.none()
        }).pipe(counted),
      releaseLease: (lease) =>
        Effect.gen(function*() {
          const file = leasePath(lease.key)
          const held = yield* readOption(file)
          if (Option.isNone(held) || held.value !== `${lease.token}|${lease.expiresAt}`) return false
          const released = yield* removeIfUnchanged(file, held.value)
          return released && lease.expiresAt > (yield* now)
        }).pipe(Effect.mapError(unavailable("releaseLease")), counted)
    }
    return store
  })
