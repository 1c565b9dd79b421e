import t from 'tap'
import { Agent, createServer, request, type IncomingMessage, type Server } from 'node:http'
import { SpanKind } from '@opentelemetry/api'
import type { FinishedSpan } from '../../../src/telemetry/tracing/finished-span'
import { createRequestTracer } from '../../../src/telemetry/tracing/request-tracer'
import { startEngine, type Teardown } from '../../helpers/http-harness'

// The tracer in the HTTP engine, on loopback: what the upstream application receives
// (the proxy's span as parent, B3 rewritten to match, x-request-id) and the span the
// proxy makes (child of the client's context, the response on it).

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736'
const PARENT = '00f067aa0ba902b7'

async function echoUpstream (t: Teardown): Promise<number> {
  const server: Server = createServer((req, res) => {
    req.resume()
    req.on('end', () => { res.setHeader('content-type', 'application/json'); res.end(JSON.stringify({ headers: req.headers })) })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => { server.closeAllConnections(); await new Promise((resolve) => server.close(resolve)) })
  return (server.address() as { port: number }).port
}

function get (port: number, path: string, headers: Record<string, string>, agent: Agent): Promise<{ status: number, body: any }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers, agent }, (res: IncomingMessage) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => { text += c })
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }) })
    })
    req.on('error', reject)
    req.end()
  })
}

t.test('HTTP/1.1 at the source: a client span child of the client\'s context; the application sees the proxy\'s span as parent, B3 rewritten', async (t) => {
  const spans: FinishedSpan[] = []
  const tracer = createRequestTracer({ samplingPercent: 0, node: 'node1', sink: (s) => { spans.push(s) } })
  const up = await echoUpstream(t)
  const fx = await startEngine(t, { version: 'http1', endpoints: [up], tracer })
  const agent = new Agent({ keepAlive: true, maxSockets: 1 })
  t.teardown(() => { agent.destroy() })
  const r = await get(fx.port, '/orders?id=7', { traceparent: `00-${TRACE}-${PARENT}-01`, 'x-b3-traceid': 'a'.repeat(32), 'x-b3-spanid': 'b'.repeat(16), 'x-b3-sampled': '0' }, agent)
  t.equal(r.status, 200)
  const h = r.body.headers
  const m = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/.exec(h.traceparent)
  t.equal(m?.[1], TRACE, 'the client\'s trace reaches the application')
  t.not(m?.[2], PARENT, 'with the proxy\'s span as parent')
  t.equal(h['x-b3-traceid'], TRACE, 'B3 follows W3C')
  t.equal(h['x-b3-spanid'], m?.[2])
  t.equal(h['x-b3-sampled'], '1')
  t.equal(h['x-b3-parentspanid'], PARENT)
  t.match(h['x-request-id'], /^[0-9a-f-]{36}$/)
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(spans.length, 1, 'one span, ended with the request')
  const s = spans[0] as FinishedSpan
  t.equal(s.kind, SpanKind.CLIENT)
  t.equal(s.spanId, m?.[2])
  t.equal(s.parentSpanId, PARENT)
  t.match(s.attributes, { 'http.request.method': 'GET', 'url.path': '/orders', 'http.response.status_code': 200, 'network.peer.port': up, 'ferry.request_id': h['x-request-id'] })

  // Not sampled: no span, the context passed on as it came.
  const n = await get(fx.port, '/x', { traceparent: `00-${TRACE}-${PARENT}-00` }, agent)
  t.equal(n.body.headers.traceparent, `00-${TRACE}-${PARENT}-00`)
  t.equal(spans.length, 1)
})

t.test('at the destination: a server span', async (t) => {
  const spans: FinishedSpan[] = []
  const tracer = createRequestTracer({ samplingPercent: 100, node: 'node2', sink: (s) => { spans.push(s) } })
  const up = await echoUpstream(t)
  const fx = await startEngine(t, { version: 'http1', endpoints: [up], tracer, reporter: 'destination' })
  const agent = new Agent({ keepAlive: true, maxSockets: 1 })
  t.teardown(() => { agent.destroy() })
  const r = await get(fx.port, '/', {}, agent)
  const m = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/.exec(r.body.headers.traceparent)
  t.ok(m !== null, 'a new sampled trace (100 %)')
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(spans[0]?.kind, SpanKind.SERVER)
  t.equal(spans[0]?.parentSpanId, null)
  t.equal(spans[0]?.spanId, m?.[2])
})
