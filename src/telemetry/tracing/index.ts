import type { RequestTracer } from '../request-tracing'
import type { TracingOptions } from './config'
import type { SpanSink } from './finished-span'
import { NO_TRACING } from './no-tracing'
import { createRequestTracer } from './request-tracer'

// Tracing's entry points. A data plane gets its RequestTracer from `requestTracerFor`
// (NO_TRACING when tracing is off); the agent's main thread owns the one exporter
// (span-export.ts) that every data plane's spans reach, directly or, from a worker
// thread, in batches (span-batcher.ts).

export { NO_TRACING } from './no-tracing'
export { parseTracingOptions, type TracingOptions } from './config'
export { createSpanExport, type SpanExport } from './span-export'
export { createSpanBatcher, type SpanBatch } from './span-batcher'

export function requestTracerFor (tracing: TracingOptions | null, node: string, sink: SpanSink): RequestTracer {
  return tracing === null ? NO_TRACING : createRequestTracer({ samplingPercent: tracing.samplingPercent, node, sink })
}
