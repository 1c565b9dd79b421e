import { randomUUID } from 'node:crypto'
import { ROOT_CONTEXT, SpanKind, trace, TraceFlags, type Context, type Span } from '@opentelemetry/api'
import { TraceState } from '@opentelemetry/core'
import { AlwaysOnSampler, BasicTracerProvider, RandomIdGenerator } from '@opentelemetry/sdk-trace-base'
import type { HeaderBag, RequestSpan, RequestSpanEnd, RequestSpanStart, RequestTracer } from '../request-tracing'
import { endAttributes, spanName, startAttributes } from './attributes'
import { sinkProcessor, type SpanSink } from './finished-span'
import { requestIdOf } from './no-tracing'
import { b3Presence, HEADERS, outgoingHeaders, readIncoming, type IncomingContext, type OutgoingContext } from './trace-context'

// The tracer the HTTP engine calls per request when tracing is on. It reads the
// request's trace context (W3C first, then B3), decides sampling (the request's own
// decision wins; else `samplingPercent` of new traces), makes a CLIENT span at the
// source node or a SERVER span at the destination with OpenTelemetry's SDK, child of
// the incoming context, and says which headers to forward: traceparent naming the
// proxy's span as parent when sampled (else the incoming context passed on, with its
// "not sampled" decision, so the next hop does not roll the dice again), B3 rewritten
// to match, x-request-id when missing. Finished spans go to `sink`; nothing here waits
// on the exporter. An unsampled request makes no span and costs a header parse.

export interface RequestTracerOptions {
  /** 0-100: the share of requests without a decision of their own that are sampled. */
  readonly samplingPercent: number
  /** This node's name, on every span (ferry.node). */
  readonly node: string
  readonly sink: SpanSink
  /** Injected for tests: a number in [0, 1). */
  readonly random?: () => number
  readonly newRequestId?: () => string
}

export function createRequestTracer (o: RequestTracerOptions): RequestTracer {
  // Spans are children of the context the proxy read, never of an ambient one: the
  // provider is not registered globally, and AlwaysOn is right because only sampled
  // requests start a span at all.
  const provider = new BasicTracerProvider({ sampler: new AlwaysOnSampler(), spanProcessors: [sinkProcessor(o.sink)] })
  const tracer = provider.getTracer('ferry-proxy')
  const ids = new RandomIdGenerator()
  const random = o.random ?? Math.random
  const newRequestId = o.newRequestId ?? randomUUID
  const threshold = o.samplingPercent / 100
  return {
    start (headers: HeaderBag, attrs: RequestSpanStart): RequestSpan {
      const rid = requestIdOf(headers, newRequestId)
      const incoming = readIncoming(headers)
      const debug = incoming?.debug === true
      const sampled = incoming?.sampled ?? (threshold > 0 && random() < threshold)
      let out: OutgoingContext
      let span: Span | null = null
      if (sampled) {
        span = tracer.startSpan(spanName(attrs), {
          kind: attrs.kind === 'client' ? SpanKind.CLIENT : SpanKind.SERVER,
          attributes: startAttributes(attrs, headers, rid.id, o.node)
        }, parentContext(incoming))
        const c = span.spanContext()
        out = { traceId: c.traceId, spanId: c.spanId, parentSpanId: incoming?.spanId ?? null, sampled: true, debug, traceState: incoming?.traceState ?? null }
      } else if (incoming !== null && incoming.traceId !== null && incoming.spanId !== null) {
        out = { traceId: incoming.traceId, spanId: incoming.spanId, parentSpanId: null, sampled: false, debug: false, traceState: incoming.traceState }
      } else {
        // A new trace, not sampled: its ids carry the decision to the next hops.
        out = { traceId: ids.generateTraceId(), spanId: ids.generateSpanId(), parentSpanId: null, sampled: false, debug: false, traceState: null }
      }
      const { forward, remove } = outgoingHeaders(out, b3Presence(headers), headers)
      if (rid.added) forward[HEADERS.requestId] = rid.id
      return {
        traceId: out.traceId,
        requestId: rid.id,
        forward,
        remove,
        end: span === null ? noop : endOnce(span, attrs.kind)
      }
    }
  }
}

function noop (): void {}

/** The incoming span as a remote parent; the root context (a new trace) when there is none. */
function parentContext (incoming: IncomingContext | null): Context {
  if (incoming === null || incoming.traceId === null || incoming.spanId === null) return ROOT_CONTEXT
  return trace.setSpanContext(ROOT_CONTEXT, {
    traceId: incoming.traceId,
    spanId: incoming.spanId,
    traceFlags: TraceFlags.SAMPLED,
    isRemote: true,
    ...(incoming.traceState === null ? {} : { traceState: new TraceState(incoming.traceState) })
  })
}

function endOnce (span: Span, kind: 'client' | 'server'): (r: RequestSpanEnd) => void {
  let ended = false
  return (r) => {
    if (ended) return
    ended = true
    try {
      const { attributes, status } = endAttributes(kind, r)
      span.setAttributes(attributes)
      span.setStatus(status)
      span.end()
    } catch {
      // A span is never worth an exception on the data path.
    }
  }
}
