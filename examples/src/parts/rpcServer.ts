/**
 * The demo's upstream: the users service of the `@stalewise/rpc` integration tests, a real
 * `@effect/rpc` server over HTTP on a free port of 127.0.0.1 that can be told at run time to be
 * slow, fail, hang or die. Re-exported rather than copied, so the demo shows the server the tests
 * prove.
 */
import * as ControlledServer from "@stalewise/rpc/test/fixtures/ControlledServer"

export * as ControlledServer from "@stalewise/rpc/test/fixtures/ControlledServer"
export * as UserRpcs from "@stalewise/rpc/test/fixtures/UserRpcs"

/** A fresh server and a `UserRpcs.UsersClient` for it; the server stops when the layer is released. */
export const layer = ControlledServer.layerWithClient()
