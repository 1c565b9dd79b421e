import type { Registry } from 'prom-client'
import type { RequestTracer } from '../request-tracing'
import type { TracingOptions } from './config'
import type { SpanSink } from './finished-span'
import { NO_TRACING } from './no-tracing'
import type { SpanExport } from './span-export'

// Tracing's entry points. A data plane gets its RequestTracer from `requestTracerFor`
// (NO_TRACING when tracing is off); the agent's main thread owns the one exporter
// (`spanExportFor`, span-export.ts) that every data plane's spans reach, directly or,
// from a worker thread, in batches (span-batcher.ts). OpenTelemetry's SDK and exporters
// are loaded only when tracing is on: an agent without it does not pay for them.

export function requestTracerFor (tracing: TracingOptions | null, node: string, sink: SpanSink): RequestTracer {
  if (tracing === null) return NO_TRACING
  const { createRequestTracer } = require('./request-tracer') as typeof import('./request-tracer')
  return createRequestTracer({ samplingPercent: tracing.samplingPercent, node, sink })
}

/** The agent's exporter; null when tracing is off. */
export function spanExportFor (tracing: TracingOptions | null, node: string, registry: Registry): SpanExport | null {
  if (tracing === null) return null
  const { createSpanExport } = require('./span-export') as typeof import('./span-export')
  return createSpanExport({ tracing, node, registry })
}
