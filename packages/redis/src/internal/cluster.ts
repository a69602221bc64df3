/** @internal */
import type { Cluster } from "ioredis"

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
