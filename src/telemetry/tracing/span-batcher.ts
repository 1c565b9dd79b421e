import type { FinishedSpan, SpanSink } from './finished-span'

// A worker thread's side of span export: finished spans are gathered and posted to the
// main thread in batches (a message per batch, not per span), where the agent's one
// exporter queues them. The gathering is bounded too: if the main thread stops taking
// messages, spans beyond `maxQueued` are dropped and their count travels with the next
// batch (ferry_trace_spans_dropped_total{reason="worker_queue_full"}).

export interface SpanBatch {
  readonly spans: readonly FinishedSpan[]
  /** Spans this worker dropped since the last batch. */
  readonly dropped: number
}

export interface SpanBatcherOptions {
  readonly post: (batch: SpanBatch) => void
  readonly maxQueued?: number
  /** A batch is posted when it has this many spans… */
  readonly batchSize?: number
  /** …or this long after its first span. */
  readonly delayMs?: number
}

export interface SpanBatcher {
  readonly sink: SpanSink
  /** Posts what is gathered now (the worker's close). */
  flush (): void
}

const DEFAULTS = { maxQueued: 2048, batchSize: 128, delayMs: 200 }

export function createSpanBatcher (o: SpanBatcherOptions): SpanBatcher {
  const maxQueued = o.maxQueued ?? DEFAULTS.maxQueued
  const batchSize = o.batchSize ?? DEFAULTS.batchSize
  const delayMs = o.delayMs ?? DEFAULTS.delayMs
  let spans: FinishedSpan[] = []
  let dropped = 0
  let timer: NodeJS.Timeout | null = null
  const flush = (): void => {
    if (timer !== null) { clearTimeout(timer); timer = null }
    if (spans.length === 0 && dropped === 0) return
    const batch = { spans, dropped }
    spans = []
    dropped = 0
    try {
      o.post(batch)
    } catch {
      // The main thread is gone (the worker is ending): those spans are lost with it.
    }
  }
  return {
    sink (span) {
      if (spans.length >= maxQueued) { dropped++; return }
      spans.push(span)
      if (spans.length >= batchSize) flush()
      else if (timer === null) {
        timer = setTimeout(flush, delayMs)
        timer.unref()
      }
    },
    flush
  }
}
