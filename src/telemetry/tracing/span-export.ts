import { ExportResultCode, type ExportResult } from '@opentelemetry/core'
import { resourceFromAttributes, type Resource } from '@opentelemetry/resources'
import { BatchSpanProcessor, type ReadableSpan, type SpanExporter } from '@opentelemetry/sdk-trace-base'
import { ATTR_SERVICE_NAME } from '@opentelemetry/semantic-conventions'
import { ATTR_K8S_NAMESPACE_NAME, ATTR_K8S_NODE_NAME } from '@opentelemetry/semantic-conventions/incubating'
import { SpanKind } from '@opentelemetry/api'
import { Counter, type Registry } from 'prom-client'
import { FERRY_ATTR } from './attributes'
import type { TracingOptions } from './config'
import { readableSpan, type FinishedSpan } from './finished-span'

// The agent's one span exporter (on the main thread): every data plane's finished spans
// enter OpenTelemetry's BatchSpanProcessor, whose bounded queue feeds an OTLP exporter
// (gRPC or HTTP/protobuf). `submit` never waits: when the queue is full — the collector
// is slow, blocked or unreachable — the span is dropped and counted, and the data path
// goes on as before. Each span is exported under the resource of the workload it
// belongs to (service.name "<workload>.<namespace>", as Istio names a proxy's spans):
// the client span under the source's, the server span under the destination's.

export interface SpanExportOptions {
  readonly tracing: TracingOptions
  readonly node: string
  readonly registry: Registry
  /** The bounded queue (default 2048, OpenTelemetry's). */
  readonly maxQueueSize?: number
  readonly maxExportBatchSize?: number
  /** How long a span may wait for a batch to fill (default 1 s). */
  readonly scheduledDelayMs?: number
  /** How long one export may take before it is given up (default 10 s). */
  readonly exportTimeoutMs?: number
  /** Tests: the exporter itself (default: OTLP per `tracing.protocol`). */
  readonly exporter?: SpanExporter
}

const DROP_REASONS = ['queue_full', 'worker_queue_full', 'export_failed'] as const

export interface SpanExport {
  submit (span: FinishedSpan): void
  /** Spans a worker thread dropped before they reached the main thread. */
  droppedElsewhere (count: number): void
  /** Exports what is queued (the agent's shutdown). */
  flush (): Promise<void>
  shutdown (): Promise<void>
}

const DEFAULTS = { maxQueueSize: 2048, maxExportBatchSize: 512, scheduledDelayMs: 1000, exportTimeoutMs: 10_000 }
/** How long the agent's shutdown waits for the last export. */
const SHUTDOWN_WAIT_MS = 2000
/** Distinct resources kept; a cluster with more workloads than this just makes new ones. */
const RESOURCE_CACHE = 4096

export function createSpanExport (o: SpanExportOptions): SpanExport {
  const exported = new Counter({ name: 'ferry_trace_spans_exported_total', help: 'Spans the collector accepted', registers: [o.registry] })
  const dropped = new Counter({ name: 'ferry_trace_spans_dropped_total', help: 'Spans not exported: the queue was full (queue_full, worker_queue_full) or the collector failed or refused them (export_failed)', labelNames: ['reason'], registers: [o.registry] })
  // Every reason's series from the start, at 0: a dashboard's rate() sees the first drop.
  for (const reason of DROP_REASONS) dropped.inc({ reason }, 0)
  const maxQueueSize = o.maxQueueSize ?? DEFAULTS.maxQueueSize
  // The queue's length is what entered minus what the processor handed the exporter:
  // BatchSpanProcessor takes a batch off its queue and calls export() in one step.
  let entered = 0
  let taken = 0
  const inner = o.exporter ?? otlpExporter(o.tracing, o.exportTimeoutMs ?? DEFAULTS.exportTimeoutMs)
  const counting: SpanExporter = {
    export (spans: ReadableSpan[], done: (r: ExportResult) => void) {
      taken += spans.length
      inner.export(spans, (r) => {
        if (r.code === ExportResultCode.SUCCESS) exported.inc(spans.length)
        else dropped.inc({ reason: 'export_failed' }, spans.length)
        done(r)
      })
    },
    shutdown: async () => { await inner.shutdown() },
    ...(inner.forceFlush === undefined ? {} : { forceFlush: async () => { await inner.forceFlush?.() } })
  }
  const processor = new BatchSpanProcessor(counting, {
    maxQueueSize,
    maxExportBatchSize: Math.min(o.maxExportBatchSize ?? DEFAULTS.maxExportBatchSize, maxQueueSize),
    scheduledDelayMillis: o.scheduledDelayMs ?? DEFAULTS.scheduledDelayMs,
    exportTimeoutMillis: o.exportTimeoutMs ?? DEFAULTS.exportTimeoutMs
  })
  const resources = new Map<string, Resource>()
  const resourceOf = (f: FinishedSpan): Resource => {
    const client = f.kind === SpanKind.CLIENT
    const workload = f.attributes[client ? FERRY_ATTR.sourceWorkload : FERRY_ATTR.destinationWorkload]
    const namespace = f.attributes[client ? FERRY_ATTR.sourceNamespace : FERRY_ATTR.destinationNamespace]
    const key = `${String(workload)}\0${String(namespace)}`
    let r = resources.get(key)
    if (r === undefined) {
      if (resources.size >= RESOURCE_CACHE) resources.clear()
      r = resourceFromAttributes({
        [ATTR_SERVICE_NAME]: typeof workload === 'string' ? (typeof namespace === 'string' ? `${workload}.${namespace}` : workload) : 'ferry-proxy',
        ...(typeof namespace === 'string' ? { [ATTR_K8S_NAMESPACE_NAME]: namespace } : {}),
        [ATTR_K8S_NODE_NAME]: o.node
      })
      resources.set(key, r)
    }
    return r
  }
  let closed = false
  return {
    submit (f) {
      if (closed) return
      if (entered - taken >= maxQueueSize) {
        dropped.inc({ reason: 'queue_full' })
        return
      }
      entered++
      processor.onEnd(readableSpan(f, resourceOf(f)))
    },
    droppedElsewhere (count) {
      if (count > 0) dropped.inc({ reason: 'worker_queue_full' }, count)
    },
    flush: async () => { await processor.forceFlush().catch(() => {}) },
    shutdown: async () => {
      closed = true
      // The last spans get a moment to leave; an unreachable collector does not hold the agent's exit up.
      let timer: NodeJS.Timeout | undefined
      await Promise.race([
        processor.shutdown().catch(() => {}),
        new Promise<void>((resolve) => { timer = setTimeout(resolve, SHUTDOWN_WAIT_MS); timer.unref() })
      ])
      clearTimeout(timer)
    }
  }
}

function otlpExporter (t: TracingOptions, timeoutMillis: number): SpanExporter {
  // Loaded only with tracing on: the gRPC exporter pulls in its transport.
  if (t.protocol === 'grpc') {
    const { OTLPTraceExporter } = require('@opentelemetry/exporter-trace-otlp-grpc') as typeof import('@opentelemetry/exporter-trace-otlp-grpc')
    return new OTLPTraceExporter({ url: t.endpoint, timeoutMillis })
  }
  const { OTLPTraceExporter } = require('@opentelemetry/exporter-trace-otlp-proto') as typeof import('@opentelemetry/exporter-trace-otlp-proto')
  return new OTLPTraceExporter({ url: t.endpoint, timeoutMillis })
}
