/**
 * The policy of a stale-while-revalidate job, with django-cacheback's defaults: `lifetime`
 * 10 minutes, `timeToLive` 30 days, `refreshLease` 60 seconds, fetch on miss. Validated once,
 * when the job is defined.
 *
 * @since 0.1.0
 */
export * as RefreshPolicy from "./RefreshPolicy.js"
