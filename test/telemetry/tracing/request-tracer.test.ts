import t from 'tap'
import { SpanKind, SpanStatusCode } from '@opentelemetry/api'
import type { HeaderBag, RequestSpanStart } from '../../../src/telemetry/request-tracing'
import type { FinishedSpan } from '../../../src/telemetry/tracing/finished-span'
import { NO_TRACING } from '../../../src/telemetry/tracing/no-tracing'
import { createRequestTracer } from '../../../src/telemetry/tracing/request-tracer'

// The tracer per request: which context it reads from each header form, what it
// forwards, what it samples, and the spans it makes (collected from its sink).

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736'
const PARENT = '00f067aa0ba902b7'
const B3_TRACE = '80f198ee56343ba864fe8b2a57d3eff7'
const B3_SPAN = 'e457b5a2e4d86bd1'
const B3_PARENT = '05e3ac9a4f6e3b90'
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/

const ATTRS: RequestSpanStart = {
  kind: 'client',
  method: 'GET',
  authority: 'cart.shop.svc.cluster.local:8080',
  path: '/checkout?user=alice',
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

function tracer (percent: number, random = (): number => 0.5): { spans: FinishedSpan[], start: (h: HeaderBag, a?: Partial<RequestSpanStart>) => ReturnType<ReturnType<typeof createRequestTracer>['start']> } {
  const spans: FinishedSpan[] = []
  const tr = createRequestTracer({ samplingPercent: percent, node: 'node1', sink: (s) => { spans.push(s) }, random })
  return { spans, start: (h, a = {}) => tr.start(h, { ...ATTRS, ...a }) }
}

function parseTraceparent (v: string | undefined): { traceId: string, spanId: string, flags: string } {
  const m = /^00-([0-9a-f]{32})-([0-9a-f]{16})-(0[01])$/.exec(v ?? '')
  if (m === null) throw new Error(`not a traceparent: ${String(v)}`)
  return { traceId: m[1] as string, spanId: m[2] as string, flags: m[3] as string }
}

t.test('W3C traceparent, sampled: a client span child of it, forwarded with the proxy\'s span as parent, tracestate passed on', async (t) => {
  const tr = tracer(0)
  const s = tr.start({ traceparent: `00-${TRACE}-${PARENT}-01`, tracestate: 'vendor=x,other=y', 'x-request-id': 'abc' })
  t.equal(s.traceId, TRACE)
  t.equal(s.requestId, 'abc', 'the request\'s own id is kept')
  t.notOk('x-request-id' in s.forward, 'and not rewritten')
  const fwd = parseTraceparent(s.forward.traceparent)
  t.equal(fwd.traceId, TRACE)
  t.not(fwd.spanId, PARENT, 'the proxy\'s span is the parent now')
  t.equal(fwd.flags, '01')
  t.equal(s.forward.tracestate, 'vendor=x,other=y')
  t.equal(tr.spans.length, 0, 'nothing exported before end')
  s.end(OK)
  s.end(OK)
  t.equal(tr.spans.length, 1, 'one span, however often end is called')
  const span = tr.spans[0] as FinishedSpan
  t.equal(span.traceId, TRACE)
  t.equal(span.spanId, fwd.spanId)
  t.equal(span.parentSpanId, PARENT)
  t.equal(span.kind, SpanKind.CLIENT)
  t.equal(span.traceState, 'vendor=x,other=y')
  t.equal(span.name, 'GET')
  t.match(span.attributes, {
    'http.request.method': 'GET',
    'url.path': '/checkout',
    'url.full': 'http://cart.shop.svc.cluster.local:8080/checkout',
    'server.address': 'cart.shop.svc.cluster.local',
    'server.port': 8080,
    'network.protocol.version': '1.1',
    'http.response.status_code': 200,
    'network.peer.address': '10.0.1.5',
    'network.peer.port': 8080,
    'ferry.source.workload': 'web',
    'ferry.source.namespace': 'shop',
    'ferry.source.principal': 'spiffe://cluster.local/ns/shop/sa/web',
    'ferry.destination.workload': 'cart-a',
    'ferry.destination.principal': 'spiffe://cluster.local/ns/shop/sa/cart',
    'ferry.destination.service': 'cart.shop.svc.cluster.local',
    'ferry.request_id': 'abc',
    'ferry.node': 'node1'
  })
  t.notOk(JSON.stringify(span.attributes).includes('alice'), 'the query string is not recorded')
})

t.test('W3C, not sampled: no span, the incoming traceparent passed on unchanged', async (t) => {
  const tr = tracer(100)
  const s = tr.start({ traceparent: `00-${TRACE}-${PARENT}-00` })
  t.equal(s.forward.traceparent, `00-${TRACE}-${PARENT}-00`, 'the request\'s decision wins over 100 %')
  t.equal(s.traceId, TRACE)
  s.end(OK)
  t.equal(tr.spans.length, 0)
})

t.test('no trace context: a new trace, sampled by the percentage; x-request-id added', async (t) => {
  const sampled = tracer(10, () => 0.05)
  const a = sampled.start({}, { kind: 'server' })
  const fa = parseTraceparent(a.forward.traceparent)
  t.equal(fa.flags, '01')
  t.equal(a.traceId, fa.traceId)
  t.match(a.forward['x-request-id'], UUID, 'a UUID v4 request id is added')
  t.equal(a.requestId, a.forward['x-request-id'])
  a.end({ ...OK, responseCode: 503, responseFlags: 'UF' })
  const span = sampled.spans[0] as FinishedSpan
  t.equal(span.parentSpanId, null, 'a root span')
  t.equal(span.kind, SpanKind.SERVER)
  t.equal(span.status.code, SpanStatusCode.ERROR, 'a server span with 5xx is an error')
  t.equal(span.attributes['error.type'], '503')
  t.equal(span.attributes['ferry.response_flags'], 'UF')

  const unsampled = tracer(10, () => 0.5)
  const b = unsampled.start({})
  const fb = parseTraceparent(b.forward.traceparent)
  t.equal(fb.flags, '00', 'not sampled: the new trace carries the decision on, so the next hop does not roll again')
  t.equal(b.traceId, fb.traceId)
  b.end(OK)
  t.equal(unsampled.spans.length, 0)

  const none = tracer(0, () => 0)
  none.start({}).end(OK)
  t.equal(none.spans.length, 0, '0 % samples nothing')
})

t.test('B3 multi-header: read, sampled, rewritten to the proxy\'s span with the incoming one as ParentSpanId', async (t) => {
  const tr = tracer(0)
  const s = tr.start({ 'x-b3-traceid': B3_TRACE, 'x-b3-spanid': B3_SPAN, 'x-b3-parentspanid': B3_PARENT, 'x-b3-sampled': '1' })
  s.end(OK)
  const span = tr.spans[0] as FinishedSpan
  t.equal(span.traceId, B3_TRACE)
  t.equal(span.parentSpanId, B3_SPAN)
  t.same({ ...s.forward, traceparent: undefined }, {
    traceparent: undefined,
    'x-b3-traceid': B3_TRACE,
    'x-b3-spanid': span.spanId,
    'x-b3-parentspanid': B3_SPAN,
    'x-b3-sampled': '1',
    'x-request-id': s.requestId
  })
  t.equal(s.forward.traceparent, `00-${B3_TRACE}-${span.spanId}-01`, 'traceparent is added: the proxy speaks W3C too')
})

t.test('B3 64-bit trace ids are widened; Sampled absent (deferred) uses the percentage; X-B3-Flags: 1 (debug) samples', async (t) => {
  const deferred = tracer(100)
  const s = deferred.start({ 'x-b3-traceid': 'a3ce929d0e0e4736', 'x-b3-spanid': B3_SPAN })
  t.equal(s.traceId, '0000000000000000a3ce929d0e0e4736')
  t.equal(s.forward['x-b3-sampled'], '1')
  const off = tracer(0)
  const d = off.start({ 'x-b3-traceid': B3_TRACE, 'x-b3-spanid': B3_SPAN, 'x-b3-flags': '1' })
  d.end(OK)
  t.equal(off.spans.length, 1, 'debug is sampled at 0 %')
  t.equal(d.forward['x-b3-flags'], '1')
  t.notOk('x-b3-sampled' in d.forward, 'debug implies sampled: X-B3-Sampled is not sent with it')
  const no = off.start({ 'x-b3-sampled': '0' })
  t.equal(parseTraceparent(no.forward.traceparent).flags, '00', 'a bare "not sampled" decision is honoured')
  t.equal(no.forward['x-b3-sampled'], '0')
})

t.test('single b3 header: read and rewritten in its own form', async (t) => {
  const tr = tracer(0)
  const s = tr.start({ b3: `${B3_TRACE}-${B3_SPAN}-1-${B3_PARENT}` })
  s.end(OK)
  const span = tr.spans[0] as FinishedSpan
  t.equal(span.traceId, B3_TRACE)
  t.equal(span.parentSpanId, B3_SPAN)
  t.equal(s.forward.b3, `${B3_TRACE}-${span.spanId}-1-${B3_SPAN}`)
  t.notOk('x-b3-traceid' in s.forward, 'no multi-header form where the request had none')
  const d = tr.start({ b3: `${B3_TRACE}-${B3_SPAN}-d` })
  t.match(d.forward.b3, new RegExp(`^${B3_TRACE}-[0-9a-f]{16}-d-${B3_SPAN}$`))
  const zero = tracer(100).start({ b3: '0' })
  t.equal(parseTraceparent(zero.forward.traceparent).flags, '00', 'b3: 0 means not sampled')
  t.match(zero.forward.b3, /^[0-9a-f]{32}-[0-9a-f]{16}-0$/)
})

t.test('W3C and B3 both: W3C wins, and every B3 form is rewritten to match it', async (t) => {
  const tr = tracer(0)
  const s = tr.start({
    traceparent: `00-${TRACE}-${PARENT}-01`,
    b3: `${B3_TRACE}-${B3_SPAN}-0`,
    'x-b3-traceid': B3_TRACE,
    'x-b3-spanid': B3_SPAN,
    'x-b3-sampled': '0',
    'x-b3-flags': '0'
  })
  s.end(OK)
  const span = tr.spans[0] as FinishedSpan
  t.equal(span.traceId, TRACE, 'the W3C trace')
  t.equal(span.parentSpanId, PARENT)
  t.equal(s.forward.b3, `${TRACE}-${span.spanId}-1-${PARENT}`)
  t.equal(s.forward['x-b3-traceid'], TRACE)
  t.equal(s.forward['x-b3-spanid'], span.spanId)
  t.equal(s.forward['x-b3-parentspanid'], PARENT)
  t.equal(s.forward['x-b3-sampled'], '1')
  t.same(s.remove, ['x-b3-flags'], 'the stale flags go')

  const unsampled = tracer(100).start({ traceparent: `00-${TRACE}-${PARENT}-00`, 'x-b3-traceid': B3_TRACE, 'x-b3-spanid': B3_SPAN, 'x-b3-parentspanid': B3_PARENT })
  t.equal(unsampled.forward['x-b3-traceid'], TRACE)
  t.equal(unsampled.forward['x-b3-spanid'], PARENT)
  t.equal(unsampled.forward['x-b3-sampled'], '0')
  t.ok(unsampled.remove.includes('x-b3-parentspanid'), 'a parent id that no longer applies is removed')
})

t.test('invalid W3C headers are ignored (B3 or a new trace instead); a tracestate without a valid traceparent is removed', async (t) => {
  const tr = tracer(0)
  for (const bad of [`00-${'0'.repeat(32)}-${PARENT}-01`, `ff-${TRACE}-${PARENT}-01`, `00-${TRACE}-${PARENT}-01-extra`, 'garbage']) {
    const s = tr.start({ traceparent: bad, tracestate: 'a=b', b3: `${B3_TRACE}-${B3_SPAN}-1` })
    t.equal(s.traceId, B3_TRACE, `${bad}: B3 is used`)
    t.notOk('tracestate' in s.forward)
    t.same(s.remove, ['tracestate'])
  }
  const future = tr.start({ traceparent: `01-${TRACE}-${PARENT}-01-whatever` })
  t.equal(future.traceId, TRACE, 'a later version is read as version 00 says')
})

t.test('gRPC: rpc.* attributes, span named service/method, grpc status on the span', async (t) => {
  const tr = tracer(100)
  const s = tr.start({ 'user-agent': 'grpc-node-js/1.14' }, { kind: 'server', method: 'POST', path: '/shop.Payments/Pay', protocol: 'grpc', httpVersion: '2' })
  s.end({ responseCode: 200, grpcStatus: 14, upstream: null, responseFlags: '' })
  const span = tr.spans[0] as FinishedSpan
  t.equal(span.name, 'shop.Payments/Pay')
  t.match(span.attributes, { 'rpc.system': 'grpc', 'rpc.service': 'shop.Payments', 'rpc.method': 'Pay', 'rpc.grpc.status_code': 14, 'network.protocol.version': '2', 'user_agent.original': 'grpc-node-js/1.14', 'error.type': '14' })
  t.equal(span.status.code, SpanStatusCode.ERROR, 'UNAVAILABLE is an error on a server span')
  const ok = tr.start({}, { kind: 'server', method: 'POST', path: '/shop.Payments/Pay', protocol: 'grpc', httpVersion: '2' })
  ok.end({ responseCode: 200, grpcStatus: 5, upstream: null, responseFlags: '' })
  t.equal((tr.spans[1] as FinishedSpan).status.code, SpanStatusCode.UNSET, 'NOT_FOUND is not a server error')
})

t.test('unknown methods are _OTHER with the original kept', async (t) => {
  const tr = tracer(100)
  tr.start({}, { method: 'PURGE' }).end(OK)
  t.match((tr.spans[0] as FinishedSpan).attributes, { 'http.request.method': '_OTHER', 'http.request.method_original': 'PURGE' })
  t.equal((tr.spans[0] as FinishedSpan).name, 'HTTP')
})

t.test('NO_TRACING: only x-request-id, added when missing; trace headers untouched', async (t) => {
  const s = NO_TRACING.start({ traceparent: `00-${TRACE}-${PARENT}-01` }, ATTRS)
  t.equal(s.traceId, null)
  t.match(s.requestId, UUID)
  t.same(s.forward, { 'x-request-id': s.requestId })
  t.same(s.remove, [])
  const kept = NO_TRACING.start({ 'x-request-id': 'r1' }, ATTRS)
  t.equal(kept.requestId, 'r1')
  t.same(kept.forward, {})
  kept.end(OK)
})
