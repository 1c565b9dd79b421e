import { TraceFlags, type Attributes, type HrTime, type SpanKind, type SpanStatus } from '@opentelemetry/api'
import { hrTimeDuration, TraceState } from '@opentelemetry/core'
import type { Resource } from '@opentelemetry/resources'
import type { ReadableSpan, SpanProcessor } from '@opentelemetry/sdk-trace-base'

// A finished span as plain data: what a data-path worker hands to the agent's one
// exporter on the main thread (structured-clonable: it crosses `postMessage`), and what
// the exporter turns back into the SDK's ReadableSpan for OTLP.

export interface FinishedSpan {
  readonly traceId: string
  readonly spanId: string
  readonly parentSpanId: string | null
  readonly traceState: string | null
  readonly name: string
  readonly kind: SpanKind
  readonly startTime: HrTime
  readonly endTime: HrTime
  readonly attributes: Attributes
  readonly status: SpanStatus
}

/** Where a data plane's finished spans go: the exporter itself, or the worker's batch to the main thread. */
export type SpanSink = (span: FinishedSpan) => void

export function finishedSpan (s: ReadableSpan): FinishedSpan {
  const c = s.spanContext()
  return {
    traceId: c.traceId,
    spanId: c.spanId,
    parentSpanId: s.parentSpanContext?.spanId ?? null,
    traceState: c.traceState?.serialize() ?? null,
    name: s.name,
    kind: s.kind,
    startTime: s.startTime,
    endTime: s.endTime,
    attributes: s.attributes,
    status: s.status
  }
}

const SCOPE = Object.freeze({ name: 'ferry-proxy' })

/** The SDK's view of a finished span, under `resource` (the workload it belongs to). */
export function readableSpan (f: FinishedSpan, resource: Resource): ReadableSpan {
  const traceState = f.traceState === null ? undefined : new TraceState(f.traceState)
  const context = { traceId: f.traceId, spanId: f.spanId, traceFlags: TraceFlags.SAMPLED, ...(traceState === undefined ? {} : { traceState }) }
  return {
    name: f.name,
    kind: f.kind,
    spanContext: () => context,
    ...(f.parentSpanId === null ? {} : { parentSpanContext: { traceId: f.traceId, spanId: f.parentSpanId, traceFlags: TraceFlags.SAMPLED, isRemote: true } }),
    startTime: f.startTime,
    endTime: f.endTime,
    status: f.status,
    attributes: f.attributes,
    links: [],
    events: [],
    duration: hrTimeDuration(f.startTime, f.endTime),
    ended: true,
    resource,
    instrumentationScope: SCOPE,
    droppedAttributesCount: 0,
    droppedEventsCount: 0,
    droppedLinksCount: 0
  }
}

/** A span processor that hands every ended, sampled span to `sink` as plain data. */
export function sinkProcessor (sink: SpanSink): SpanProcessor {
  return {
    onStart () {},
    onEnd (span) { sink(finishedSpan(span)) },
    forceFlush: async () => {},
    shutdown: async () => {}
  }
}
