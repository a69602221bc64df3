/**
 * What the HTTP cache stores: a response with its `http-cache-semantics` policy, or, under a
 * primary key whose responses vary, the list of request headers they vary on.
 *
 * @internal
 */
import * as Schema from "effect/Schema"
import * as HttpPolicy from "./policy.js"

/** A stored response: what is served, and the policy that decides when. */
export interface Response {
  readonly _tag: "Response"
  readonly status: number
  readonly headers: Readonly<Record<string, string>>
  readonly body: Uint8Array
  readonly policy: HttpPolicy.PolicyObject
}

/** The request headers the responses of a primary key vary on. */
export interface Vary {
  readonly _tag: "Vary"
  readonly fields: ReadonlyArray<string>
}

/** Either record. */
export type Entry = Response | Vary

const Headers = Schema.Record({ key: Schema.String, value: Schema.String })

/** The schema records are stored with: the body as base64 in serialising stores. */
export const Entry: Schema.Schema<Entry, any> = Schema.Union(
  Schema.TaggedStruct("Response", {
    status: Schema.Number,
    headers: Headers,
    body: Schema.Uint8ArrayFromBase64,
    policy: HttpPolicy.PolicyObject
  }),
  Schema.TaggedStruct("Vary", { fields: Schema.Array(Schema.String) })
)
