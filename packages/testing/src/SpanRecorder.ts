/**
 * Records the spans a program starts, for asserting on traces (which calls were traced, with
 * which attributes) without an exporter: it wraps the tracer in context, so spans still behave
 * as they would, and keeps every span it creates.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Tracer from "effect/Tracer"

/**
 * A tracer that records, and what it recorded.
 *
 * @since 0.1.0
 * @category models
 */
export interface SpanRecorder {
  /** The recording tracer: run a program under it with `Effect.withTracer(recorder.tracer)`. */
  readonly tracer: Tracer.Tracer
  /** Every span started under the tracer, in order. */
  readonly spans: ReadonlyArray<Tracer.Span>
  /** The spans of one name, in order (e.g. `"stalewise.get"`). */
  readonly named: (name: string) => ReadonlyArray<Tracer.Span>
}

/**
 * A recorder over the tracer in context.
 *
 * @example
 * ```ts
 * import * as SpanRecorder from "@stalewise/testing/SpanRecorder"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const recorder = yield* SpanRecorder.make
 *   yield* Effect.void.pipe(Effect.withSpan("work"), Effect.withTracer(recorder.tracer))
 *   return recorder.named("work").length // 1
 * })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: Effect.Effect<SpanRecorder> = Effect.map(Effect.tracer, (inner) => {
  const spans: Array<Tracer.Span> = []
  const tracer = Tracer.make({
    span: (...args) => {
      const span = inner.span(...args)
      spans.push(span)
      return span
    },
    context: inner.context
  })
  return { tracer, spans, named: (name) => spans.filter((span) => span.name === name) }
})
