/**
 * What the peer scenarios share: how each peer cache is built, the upstreams they call, and the
 * one way every contender is called from an Effect fiber. Peers are promise-based, so they are
 * called with `Effect.promise`, as an Effect user would; ours and effect's `Cache` are called as
 * they are.
 *
 * @since 0.1.0
 */
import type { BentoStore } from "bentocache"
import { BentoCache, bentostore } from "bentocache"
import { memoryDriver } from "bentocache/drivers/memory"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"

/**
 * A `BentoCache` with one in-memory L1 store that keeps live values (`serialize: false`, as our
 * memory store and effect's `Cache` do), disconnected when the scope closes.
 *
 * @since 0.1.0
 * @category constructors
 */
export const bento = (maxItems: number): Effect.Effect<BentoCache<{ memory: BentoStore }>, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() =>
      new BentoCache({
        default: "memory",
        stores: { memory: bentostore().useL1Layer(memoryDriver({ maxItems, serialize: false })) }
      })
    ),
    (cache) => Effect.promise(() => cache.disconnect())
  )

/**
 * A promise that never settles: a hung upstream. It holds no timer and no handle, so it cannot
 * keep the process alive, and whatever waits on it becomes garbage with the cache that holds it.
 *
 * @since 0.1.0
 * @category constructors
 */
export const hang = <A>(): Promise<A> => new Promise<A>(() => {})

/**
 * `value` after `millis`, on a real `setTimeout`: an upstream with wall-clock latency.
 *
 * @since 0.1.0
 * @category constructors
 */
export const delay = <A>(millis: number, value: A): Promise<A> =>
  new Promise((resolve) => setTimeout(() => resolve(value), millis))

/**
 * `promise`, or a rejection after `millis` if it has not settled by then: the timeout a peer
 * without one (cachified) needs composed by hand around its upstream call.
 *
 * @since 0.1.0
 * @category combinators
 */
export const withDeadline = <A>(promise: Promise<A>, millis: number): Promise<A> =>
  new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no answer within ${millis} ms`)), millis)
    promise.then(
      (value) => {
        clearTimeout(timer)
        resolve(value)
      },
      (error) => {
        clearTimeout(timer)
        reject(error)
      }
    )
  })
