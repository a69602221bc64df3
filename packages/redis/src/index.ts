/**
 * `RedisClient`: one scoped ioredis connection as a service. `make` connects eagerly (failing with
 * a typed `RedisError` when the server cannot be reached within `connectTimeout`) and quits when
 * its scope closes; `use` runs a command through the client as an `Effect`, bounded by
 * `commandTimeout`. The Redis-backed stores, leases and buses of this package are built on it.
 *
 * @since 0.1.0
 */
export * as RedisClient from "./RedisClient.js"
