/** @internal */
import { sha256 } from "@noble/hashes/sha2.js"
import * as Encoding from "effect/Encoding"

const textEncoder = new TextEncoder()

/**
 * The first 128 bits of the SHA-256 of `text`'s UTF-8 bytes, in base64url (22 characters), by
 * the portable implementation.
 *
 * @internal
 */
export const portableDigest128 = (text: string): string =>
  Encoding.encodeBase64Url(sha256(textEncoder.encode(text)).subarray(0, 16))

type NativeHash = (algorithm: string, data: string, outputEncoding: "base64url") => string

// The 22nd base64url character of 128 bits carries their last 2 bits and 4 zero bits; that of a
// longer digest carries 6 bits: keep the first 2.
const lastChar: Record<string, string> = {}
{
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
  for (let i = 0; i < 64; i++) lastChar[alphabet[i]!] = alphabet[i & 0b110000]!
}

const fromNative = (hash: NativeHash, text: string): string => {
  const full = hash("sha256", text, "base64url")
  return full.slice(0, 21) + lastChar[full[21]!]!
}

// Node ≥ 20.16 (and Bun, Deno) hand out `node:crypto` without an import, so bundles for other
// platforms stay free of it; its one-shot `hash` is several times faster than hashing in JS.
const nativeHash = ((): NativeHash | undefined => {
  try {
    const process = (globalThis as {
      readonly process?: { readonly getBuiltinModule?: (id: string) => unknown }
    }).process
    const crypto = process?.getBuiltinModule?.("node:crypto") as { readonly hash?: unknown } | undefined
    const hash = crypto?.hash
    if (typeof hash !== "function") return undefined
    const native = hash as NativeHash
    // trust it only if it answers what the portable one does
    return fromNative(native, "stalewise") === portableDigest128("stalewise") ? native : undefined
  } catch {
    return undefined
  }
})()

/**
 * The first 128 bits of the SHA-256 of `text`'s UTF-8 bytes, in base64url (22 characters): the
 * runtime's native SHA-256 when it has one, the portable implementation otherwise (same result).
 *
 * @internal
 */
export const digest128: (text: string) => string = nativeHash === undefined
  ? portableDigest128
  : (text) => fromNative(nativeHash, text)

/**
 * Whether {@link digest128} uses the runtime's native SHA-256.
 *
 * @internal
 */
export const isNative: boolean = nativeHash !== undefined
