/** @internal */
import * as Crypto from "node:crypto"
import type { Connection } from "../RedisClient.js"

/**
 * A Lua script and its SHA1, run with `EVALSHA`.
 *
 * @internal
 */
export interface Script {
  readonly source: string
  readonly sha: string
}

/** @internal */
export const make = (source: string): Script => ({
  source,
  sha: Crypto.createHash("sha1").update(source).digest("hex")
})

/**
 * Runs a script by its SHA1; when the server does not know it (`NOSCRIPT`: first use, a restart,
 * `SCRIPT FLUSH`) it is sent once with `EVAL`, which also loads it for the next `EVALSHA`. This
 * is what ioredis's `defineCommand` does, without adding a command to a client we may not own.
 *
 * @internal
 */
export const run = (
  client: Connection,
  script: Script,
  keys: ReadonlyArray<string>,
  args: ReadonlyArray<string | number>
): Promise<unknown> =>
  client.evalsha(script.sha, keys.length, ...keys, ...args).catch((error: unknown) =>
    error instanceof Error && error.message.startsWith("NOSCRIPT")
      ? client.eval(script.source, keys.length, ...keys, ...args)
      : Promise.reject(error)
  )

/**
 * Takes a lease if it is free. KEYS[1]: the lease key. ARGV: token, now, expiresAt, safety TTL
 * (ms). The value is `token|expiresAt`; a lease whose `expiresAt` is not after `now` (the caller's
 * `Clock`) is free, and the key's own PX removes it in real time if nobody takes it over.
 *
 * @internal
 */
export const acquireLease = make(`local held = redis.call('GET', KEYS[1])
if held then
  local expiresAt = tonumber(string.match(held, '|([^|]*)$'))
  if expiresAt ~= nil and expiresAt > tonumber(ARGV[2]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. ARGV[3], 'PX', ARGV[4])
return 1`)

/**
 * Frees a lease only if it holds `token`. KEYS[1]: the lease key. ARGV: token, now. Returns 1
 * when the lease was held and had not run out, 0 otherwise (a run-out lease of the same token is
 * deleted all the same).
 *
 * @internal
 */
export const releaseLease = make(`local held = redis.call('GET', KEYS[1])
if not held then return 0 end
local token, expiresAt = string.match(held, '^(.*)|([^|]*)$')
if token ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
local e = tonumber(expiresAt)
if e ~= nil and e > tonumber(ARGV[2]) then return 1 end
return 0`)

/**
 * Deletes a key only if it still holds the value read, compared by SHA1 so that the value never
 * travels back to Redis: dropping an undecodable entry must not drop a good one written in
 * between. KEYS[1]: the key. ARGV[1]: the SHA1 (hex) of the bytes read. Returns 1 when deleted,
 * 0 when the key is gone, -1 when it holds other bytes.
 *
 * @internal
 */
export const deleteIfDigest = make(`local held = redis.call('GET', KEYS[1])
if not held then return 0 end
if redis.sha1hex(held) ~= ARGV[1] then return -1 end
return redis.call('DEL', KEYS[1])`)
