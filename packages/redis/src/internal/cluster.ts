/** @internal */
import type { Cluster, Redis } from "ioredis"

/**
 * The addresses of a cluster's nodes as its client knows them: the nodes it discovered (masters
 * and replicas), or, before it has, the startup nodes it was given.
 *
 * @internal
 */
export const knownNodes = (cluster: Cluster): Array<{ readonly host: string; readonly port: number }> => {
  const discovered = cluster.nodes("all").flatMap((node) =>
    node.options.host === undefined || node.options.port === undefined
      ? []
      : [{ host: node.options.host, port: node.options.port }]
  )
  if (discovered.length > 0) return discovered
  // ioredis keeps them as given: `{ host, port }` objects, `host:port` strings or bare ports
  const startup = (cluster as unknown as { readonly startupNodes?: ReadonlyArray<unknown> }).startupNodes ?? []
  return startup.flatMap((node) => {
    if (typeof node === "number") return [{ host: "localhost", port: node }]
    if (typeof node === "string") {
      try {
        const url = new URL(node.includes("://") ? node : `redis://${node}`)
        return [{ host: url.hostname, port: url.port === "" ? 6379 : Number(url.port) }]
      } catch {
        return []
      }
    }
    if (typeof node === "object" && node !== null) {
      const { host, port } = node as { readonly host?: unknown; readonly port?: unknown }
      return [{ host: typeof host === "string" ? host : "localhost", port: typeof port === "number" ? port : 6379 }]
    }
    return []
  })
}

// CRC16-CCITT (XMODEM), the hash of Redis Cluster's key slots.
const crcTable = (() => {
  const table = new Array<number>(256)
  for (let i = 0; i < 256; i++) {
    let crc = i << 8
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff
    table[i] = crc
  }
  return table
})()

/**
 * The hash slot of a Redis key, as the cluster computes it: the CRC16 of its hash tag (the part
 * between the first `{` and the next `}`, when not empty), or of the whole key, modulo 16,384.
 *
 * @internal
 */
export const slotOf = (key: string): number => {
  let hashed = key
  const open = key.indexOf("{")
  if (open !== -1) {
    const close = key.indexOf("}", open + 1)
    if (close > open + 1) hashed = key.slice(open + 1, close)
  }
  let crc = 0
  for (const byte of Buffer.from(hashed, "utf8")) crc = ((crc << 8) & 0xffff) ^ crcTable[((crc >> 8) ^ byte) & 0xff]!
  return crc % 16_384
}

/**
 * `MGET` of `keys`, in order. On a cluster a multi-key command must stay within one slot: the
 * keys are grouped by slot, one `MGET` per group, sent together (ioredis routes each to its
 * slot's master); for a batched read of the store.
 *
 * @internal
 */
export const mget = async (
  client: Redis | Cluster,
  keys: ReadonlyArray<string>
): Promise<Array<string | null>> => {
  if (keys.length === 0) return []
  if ((client as { readonly isCluster?: unknown }).isCluster !== true) return client.mget(...keys)
  const bySlot = new Map<number, Array<number>>()
  keys.forEach((key, index) => {
    const slot = slotOf(key)
    const group = bySlot.get(slot)
    if (group === undefined) bySlot.set(slot, [index])
    else group.push(index)
  })
  const values = new Array<string | null>(keys.length).fill(null)
  await Promise.all(
    Array.from(bySlot.values(), async (indexes) => {
      const found = await client.mget(...indexes.map((index) => keys[index]!))
      indexes.forEach((index, i) => {
        values[index] = found[i] ?? null
      })
    })
  )
  return values
}
