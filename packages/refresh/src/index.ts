/**
 * Stale-while-revalidate jobs: django-cacheback's `Job`, defined once — a name, a `fetch` and a
 * policy — and used through `get`, `getWithOutcome`, `invalidate`, `delete`, `peek`, `set`,
 * `refresh` and `refreshInBackground`.
 *
 * A read younger than `lifetime` is a hit. A stale read (`lifetime ≤ age < timeToLive`) is
 * served at once while one refresh is requested from the `RefreshQueue` — at most one per key per
 * `refreshLease`, across processes when the `CacheStore` is shared; past `syncRefreshAfter` the
 * read refreshes synchronously instead. A miss fetches synchronously (one fetch for all
 * concurrent callers), or returns `empty` and requests a refresh. A failed refresh keeps the last
 * good value and backs off; no refresh attempt ever resets a value's age.
 *
 * @since 0.1.0
 */
export * as Job from "./Job.js"

/**
 * The errors of stale-while-revalidate jobs and refresh queues: a fetch that ran out of time, a
 * refresh request naming a job nobody registered, or carrying arguments that do not decode. The
 * upstream's own error type passes through jobs unchanged; these are the toolkit's few additions.
 *
 * @since 0.1.0
 */
export * as JobError from "./JobError.js"

/**
 * `JobRegistry`: jobs by name. A refresh request names its job rather than carrying code, so
 * whoever runs the request — a fiber in this process or a worker in another one — finds the job
 * here (never by import path, as cacheback's workers did). A job runs a request only for a key it
 * owns: one it derives from the request's decoded arguments (a request from another process is
 * untrusted input), or one its own caller computed in this process.
 *
 * @since 0.1.0
 */
export * as JobRegistry from "./JobRegistry.js"

/**
 * Query jobs: cacheback's `QuerySetGetJob` and `QuerySetFilterJob` for `@effect/sql`. A query
 * job is a stale-while-revalidate `Job` whose fetch runs a SQL query and decodes its rows with a
 * Schema — `single` for at most one row (`Option`), `many` for all of them. The same row schema
 * encodes the cached value for stores that serialise, so what comes back from Redis or a file is
 * exactly what the database gave.
 *
 * The query is any effect that yields rows, typically an `@effect/sql` statement
 * (`` sql`select …` ``); this module does not import `@effect/sql` itself, so the package's
 * main entry never loads it.
 *
 * @since 0.1.0
 */
export * as QueryJob from "./QueryJob.js"

/**
 * The policy of a stale-while-revalidate job, with django-cacheback's defaults: `lifetime`
 * 10 minutes, `timeToLive` 30 days, `refreshLease` 60 seconds, fetch on miss. Validated once,
 * when the job is defined.
 *
 * @since 0.1.0
 */
export * as RefreshPolicy from "./RefreshPolicy.js"

/**
 * `RefreshQueue`: where stale-while-revalidate jobs send their background refreshes. One service,
 * several layers: `layerFibers` forks a fiber per key, `layerQueue` feeds a bounded queue to
 * worker fibers, and a BullMQ layer (later) runs them in another process.
 *
 * A refresh request is plain data — the job's name, the key the caller computed, the arguments
 * (Schema-encoded when the job has an `argsSchema`) and the refresh lease — so it can be
 * serialised; whoever runs it finds the job by name in the `JobRegistry` and writes under the
 * key in the request, never one recomputed from decoded arguments.
 *
 * When a queue cannot take the work it says so, and the stated fallback applies — the caller
 * refreshes synchronously, or the request is dropped, counted (`refreshes{result=dropped}`) and
 * logged. Nothing is lost silently.
 *
 * @since 0.1.0
 */
export * as RefreshQueue from "./RefreshQueue.js"
