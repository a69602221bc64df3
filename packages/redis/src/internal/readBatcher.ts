/** @internal */
import type { Redis } from "ioredis"

interface Waiting {
  readonly key: string
  readonly resolve: (value: string | null) => void
  readonly reject: (error: unknown) => void
}

/**
 * GETs by concurrent callers, sent together: the reads issued while the current microtasks run
 * (the fibers the scheduler is running, the callbacks of one answer) leave in one write as a
 * pipeline, and their answers come back in one read. A lone read is a plain GET sent a microtask
 * later. Each read keeps its own outcome — its value, or its own error (a timeout, a closed
 * connection, `WRONGTYPE`) — as a GET of its own would: a pipeline, not `MGET`.
 *
 * Unlike ioredis's `enableAutoPipelining`, which waits for `setImmediate` (after the event loop's
 * I/O: a lone caller's read waits for it) and queues commands while the connection is down
 * (fail-fast settings would no longer fail fast), the batch leaves within the same tick and each
 * command goes through the client as it would alone.
 *
 * @internal
 */
export const make = (client: Redis): (key: string) => Promise<string | null> => {
  let waiting: Array<Waiting> = []

  const flush = () => {
    const batch = waiting
    waiting = []
    if (batch.length === 1) {
      const only = batch[0]!
      client.get(only.key).then(only.resolve, only.reject)
      return
    }
    const pipeline = client.pipeline()
    for (const read of batch) pipeline.get(read.key)
    pipeline.exec().then(
      (results) => {
        for (let i = 0; i < batch.length; i++) {
          const result = results?.[i]
          if (result === undefined) batch[i]!.reject(new Error("Redis pipeline returned no result"))
          else if (result[0] !== null) batch[i]!.reject(result[0])
          else batch[i]!.resolve(result[1] as string | null)
        }
      },
      (error) => {
        for (const read of batch) read.reject(error)
      }
    )
  }

  return (key) =>
    new Promise((resolve, reject) => {
      waiting.push({ key, resolve, reject })
      if (waiting.length === 1) queueMicrotask(flush)
    })
}
