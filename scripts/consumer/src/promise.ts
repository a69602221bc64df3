// Promise code using a cache through a ManagedRuntime: the Job lives as long as the runtime.
import { CacheStore } from "@stalewise/core"
import { Job, RefreshQueue } from "@stalewise/refresh"
import { Context, Effect, Layer, ManagedRuntime } from "effect"
import * as assert from "node:assert/strict"

let calls = 0
const fetchUser = (id: number) => Effect.sync(() => ({ id, name: "Ada", calls: ++calls }))

class Users
  extends Context.Tag("app/Users")<Users, Job.Job<[id: number], { id: number; name: string; calls: number }, never>>()
{}

const UsersLive = Layer.scoped(Users, Job.make({ name: "users", fetch: fetchUser, lifetime: "5 minutes" })).pipe(
  Layer.provide(Layer.merge(CacheStore.layerMemory, RefreshQueue.layerFibers()))
)

const runtime = ManagedRuntime.make(UsersLive)
const getUser = (id: number): Promise<{ id: number; name: string; calls: number }> =>
  runtime.runPromise(Effect.flatMap(Users, (users) => users.get(id)))

assert.deepEqual(await getUser(1), { id: 1, name: "Ada", calls: 1 })
assert.deepEqual(await getUser(1), { id: 1, name: "Ada", calls: 1 })
await runtime.dispose()
console.log("promise: ok")
