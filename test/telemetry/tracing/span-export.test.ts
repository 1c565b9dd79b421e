import t from 'tap'
import { createServer, type AddressInfo } from 'node:net'
import { MessageChannel } from 'node:worker_threads'
import { Registry } from 'prom-client'
import type { RequestSpanStart } from '../../../src/telemetry/request-tracing'
import type { TracingOptions } from '../../../src/telemetry/tracing/config'
import { createRequestTracer } from '../../../src/telemetry/tracing/request-tracer'
import { createSpanBatcher, type SpanBatch } from '../../../src/telemetry/tracing/span-batcher'
import { createSpanExport, type SpanExport } from '../../../src/telemetry/tracing/span-export'
import { OTLP_KIND, startOtlpReceiver } from '../../helpers/otlp-receiver'
import { waitFor } from '../../helpers/wait'

// Export to a real OTLP receiver (built from OpenTelemetry's .proto files) over both
// protocols, and a collector that is stuck or gone: the data path's `submit` never
// waits, the queue stays bounded, and what could not be exported is counted.

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736'
const PARENT = '00f067aa0ba902b7'
const ATTRS: RequestSpanStart = {
  kind: 'client',
  method: 'GET',
  authority: 'cart:8080',
  path: '/checkout',
  scheme: 'http',
  protocol: 'http',
  httpVersion: '1.1',
  sourceWorkload: 'web',
  sourceNamespace: 'shop',
  sourcePrincipal: 'spiffe://cluster.local/ns/shop/sa/web',
  destinationWorkload: 'cart-a',
  destinationNamespace: 'shop',
  destinationPrincipal: 'spiffe://cluster.local/ns/shop/sa/cart',
  destinationService: 'cart.shop.svc.cluster.local'
}
const OK = { responseCode: 200, grpcStatus: null, upstream: '10.0.1.5:8080', responseFlags: '-' }

async function counter (registry: Registry, name: string, labels: Record<string, string> = {}): Promise<number> {
  const m = (await registry.getMetricsAsJSON()).find((x) => x.name === name)
  const v = (m?.values ?? []).find((x) => Object.entries(labels).every(([k, l]) => x.labels[k] === l))
  return Number(v?.value ?? 0)
}

function tracing (r: { url: string }, protocol: TracingOptions['protocol']): TracingOptions {
  return { endpoint: r.url, protocol, samplingPercent: 100 }
}

for (const protocol of ['grpc', 'http/protobuf'] as const) {
  t.test(`spans reach an OTLP receiver over ${protocol}, under the workload's resource, and are counted`, async (t) => {
    const receiver = await startOtlpReceiver({ protocol })
    t.teardown(async () => { await receiver.close() })
    const registry = new Registry()
    const exp = createSpanExport({ tracing: tracing(receiver, protocol), node: 'node1', registry, scheduledDelayMs: 50 })
    t.teardown(async () => { await exp.shutdown() })
    const tracer = createRequestTracer({ samplingPercent: 100, node: 'node1', sink: exp.submit })
    const client = tracer.start({ traceparent: `00-${TRACE}-${PARENT}-01`, tracestate: 'k=v' }, ATTRS)
    const fwd = client.forward.traceparent as string
    const server = tracer.start({ traceparent: fwd }, { ...ATTRS, kind: 'server' })
    server.end({ ...OK, upstream: null })
    client.end(OK)
    const spans = await receiver.waitForSpans((s) => s.length >= 2)
    t.equal(spans.length, 2)
    const c = spans.find((s) => s.kind === OTLP_KIND.CLIENT)
    const s = spans.find((s) => s.kind === OTLP_KIND.SERVER)
    if (c === undefined || s === undefined) throw new Error('a client and a server span')
    t.equal(c.traceId, TRACE)
    t.equal(c.parentSpanId, PARENT)
    t.equal(c.traceState, 'k=v')
    t.equal(s.traceId, TRACE)
    t.equal(s.parentSpanId, c.spanId, 'the server span is the client span\'s child')
    t.equal(c.protocol, protocol)
    t.equal(c.name, 'GET')
    t.ok(c.endTimeUnixNano >= c.startTimeUnixNano && c.startTimeUnixNano > 0n)
    t.match(c.attributes, { 'http.request.method': 'GET', 'url.path': '/checkout', 'server.address': 'cart', 'server.port': 8080, 'http.response.status_code': 200, 'ferry.source.workload': 'web' })
    t.match(c.resource, { 'service.name': 'web.shop', 'k8s.namespace.name': 'shop', 'k8s.node.name': 'node1' }, 'a client span is the source workload\'s')
    t.match(s.resource, { 'service.name': 'cart-a.shop' }, 'a server span is the destination workload\'s')
    // The receiver holds the spans before its answer reaches the exporter.
    await waitFor(async () => await counter(registry, 'ferry_trace_spans_exported_total') === 2, { what: 'the exported counter' })
    t.pass('both counted as exported')
    t.equal(await counter(registry, 'ferry_trace_spans_dropped_total'), 0)
  })
}

/** Submits `n` sampled spans and returns how long the submitting took. */
function burst (exp: SpanExport, n: number): number {
  const tracer = createRequestTracer({ samplingPercent: 100, node: 'node1', sink: exp.submit })
  const t0 = process.hrtime.bigint()
  for (let i = 0; i < n; i++) tracer.start({}, ATTRS).end(OK)
  return Number(process.hrtime.bigint() - t0) / 1e6
}

t.test('a collector that never answers: submitting never waits, the queue stays bounded, the excess is dropped and counted', async (t) => {
  const receiver = await startOtlpReceiver({ protocol: 'grpc' })
  receiver.block()
  const registry = new Registry()
  const exp = createSpanExport({ tracing: tracing(receiver, 'grpc'), node: 'node1', registry, maxQueueSize: 20, maxExportBatchSize: 10, scheduledDelayMs: 5, exportTimeoutMs: 60_000 })
  t.teardown(async () => { await receiver.close(); await exp.shutdown() })
  burst(exp, 10)
  // The first batch is taken off the queue and stuck in the exporter.
  await new Promise((resolve) => setTimeout(resolve, 200))
  const ms = burst(exp, 5000)
  t.ok(ms < 2000, `5000 spans submitted in ${ms.toFixed(0)} ms, the collector stuck`)
  const dropped = await counter(registry, 'ferry_trace_spans_dropped_total', { reason: 'queue_full' })
  t.ok(dropped >= 5000 - 20 - 10, `at most a queue and a batch held (${dropped} of 5010 dropped)`)
  t.equal(await counter(registry, 'ferry_trace_spans_exported_total'), 0)
  // The event loop was never held: a timer still fires on time.
  const t0 = Date.now()
  await new Promise((resolve) => setTimeout(resolve, 20))
  t.ok(Date.now() - t0 < 500, 'the event loop is free')
})

t.test('an unreachable collector: exports fail, are counted, and submitting stays cheap', async (t) => {
  const hole = createServer()
  await new Promise<void>((resolve) => hole.listen(0, '127.0.0.1', resolve))
  const port = (hole.address() as AddressInfo).port
  await new Promise<void>((resolve) => hole.close(() => { resolve() }))
  for (const protocol of ['grpc', 'http/protobuf'] as const) {
    const registry = new Registry()
    const url = protocol === 'grpc' ? `http://127.0.0.1:${port}` : `http://127.0.0.1:${port}/v1/traces`
    const exp = createSpanExport({ tracing: { endpoint: url, protocol, samplingPercent: 100 }, node: 'node1', registry, maxQueueSize: 100, maxExportBatchSize: 50, scheduledDelayMs: 5, exportTimeoutMs: 3000 })
    const ms = burst(exp, 1000)
    t.ok(ms < 1500, `${protocol}: 1000 spans submitted in ${ms.toFixed(0)} ms`)
    let failed = 0
    const deadline = Date.now() + 15_000
    while (failed === 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50))
      failed = await counter(registry, 'ferry_trace_spans_dropped_total', { reason: 'export_failed' })
    }
    t.ok(failed > 0, `${protocol}: failed exports counted (${failed})`)
    t.ok(await counter(registry, 'ferry_trace_spans_dropped_total', { reason: 'queue_full' }) > 0, `${protocol}: the queue overflowed and that was counted`)
    await exp.shutdown()
  }
})

t.test('from a worker: batches cross a MessagePort to the one exporter, drops travel with them', async (t) => {
  const receiver = await startOtlpReceiver({ protocol: 'http/protobuf' })
  const registry = new Registry()
  const exp = createSpanExport({ tracing: tracing(receiver, 'http/protobuf'), node: 'node1', registry, scheduledDelayMs: 20 })
  t.teardown(async () => { await exp.shutdown(); await receiver.close() })
  const { port1, port2 } = new MessageChannel()
  t.teardown(() => { port1.close(); port2.close() })
  port2.on('message', (b: SpanBatch) => {
    for (const s of b.spans) exp.submit(s)
    exp.droppedElsewhere(b.dropped)
  })
  const batcher = createSpanBatcher({ post: (b) => { port1.postMessage(b) }, maxQueued: 5, batchSize: 1000, delayMs: 20 })
  const tracer = createRequestTracer({ samplingPercent: 100, node: 'node2', sink: batcher.sink })
  for (let i = 0; i < 8; i++) tracer.start({}, { ...ATTRS, kind: 'server' }).end(OK)
  const spans = await receiver.waitForSpans((s) => s.length >= 5)
  t.equal(spans.length, 5, 'the worker held at most its bound')
  await receiver.waitForSpans(() => true)
  let dropped = 0
  const deadline = Date.now() + 5000
  while (dropped === 0 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 20))
    dropped = await counter(registry, 'ferry_trace_spans_dropped_total', { reason: 'worker_queue_full' })
  }
  t.equal(dropped, 3, 'the worker\'s drops are counted by the main thread')
  t.equal(spans[0]?.attributes['ferry.node'], 'node2')
})
