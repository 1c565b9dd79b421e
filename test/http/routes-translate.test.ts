import { Agent, createServer, request, type IncomingMessage, type ServerResponse } from 'node:http'
import { connect as h2connect, createServer as h2server } from 'node:http2'
import { join } from 'node:path'
import * as grpc from '@grpc/grpc-js'
import * as protoLoader from '@grpc/proto-loader'
import t from 'tap'
import type { RouteResult } from '../../src/routing/model'
import { startEngine, type Teardown } from '../helpers/http-harness'
import { edits, ruleNamed, testPlan } from '../helpers/plans'

// Routes on gRPC (local answers as gRPC statuses) and across versions on declared ports
// (an HTTP/1.1 client to an HTTP/2 upstream, an HTTP/2 client to an HTTP/1.1 one): the
// same route handling whatever the versions.

const def = protoLoader.loadSync(join(__dirname, '../fixtures/apps/echo.proto'), { keepCase: true, longs: Number, defaults: true })
const { Echo } = (grpc.loadPackageDefinition(def) as any).ferry.fixtures

t.test('gRPC local answers: no route UNIMPLEMENTED, an abort with grpcStatus, an abort with an HTTP status mapped', async (t) => {
  const answers: RouteResult[] = [
    { kind: 'not_found', routes: { kind: 'GRPCRoute', objects: [], entries: [] } },
    { kind: 'abort', rule: ruleNamed('VirtualService g/v rule 0'), httpStatus: 500, grpcStatus: 9, flag: 'FI' },
    { kind: 'abort', rule: ruleNamed('VirtualService g/v rule 0'), httpStatus: 503, grpcStatus: null, flag: 'FI' }
  ]
  let i = 0
  const fx = await startEngine(t, { version: 'http2', endpoints: [], route: (view) => { t.equal(view.grpc, true); return answers[i++] } })
  const c = new Echo(`127.0.0.1:${fx.port}`, grpc.credentials.createInsecure())
  t.teardown(() => { c.close() })
  const codes: number[] = []
  for (let k = 0; k < 3; k++) codes.push(await new Promise<number>((resolve) => { c.Unary({ message: 'x' }, (err: any) => { resolve(err?.code ?? 0) }) }))
  t.same(codes, [grpc.status.UNIMPLEMENTED, grpc.status.FAILED_PRECONDITION, grpc.status.UNAVAILABLE])
  t.match(fx.records.map((r) => [r.responseCode, r.grpcStatus, r.responseFlags]), [[200, 12, 'NR'], [200, 9, 'FI'], [200, 14, 'FI']])
})

async function h1Echo (t: Teardown): Promise<number> {
  const s = createServer((req: IncomingMessage, res: ServerResponse) => {
    let n = 0
    req.on('data', (c: Buffer) => { n += c.length })
    req.on('end', () => { res.end(JSON.stringify({ v: req.httpVersion, url: req.url, host: req.headers.host, x: req.headers['x-edit'], n })) })
  })
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => { s.closeAllConnections(); await new Promise((resolve) => s.close(resolve)) })
  return (s.address() as { port: number }).port
}

async function h2Echo (t: Teardown): Promise<number> {
  const s = h2server((req, res) => {
    let n = 0
    req.on('data', (c: Buffer) => { n += c.length })
    req.on('end', () => { res.end(JSON.stringify({ v: req.httpVersion, url: req.url, host: req.headers[':authority'], x: req.headers['x-edit'], n })) })
  })
  const sessions = new Set<any>()
  s.on('session', (x) => { sessions.add(x) })
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => { for (const x of sessions) x.destroy(); await new Promise((resolve) => s.close(resolve)) })
  return (s.address() as { port: number }).port
}

t.test('declared http2 port, HTTP/1.1 client: the plan goes upstream as HTTP/2 (rewrite, edits, a POST body)', async (t) => {
  const up = await h2Echo(t)
  const fx = await startEngine(t, {
    version: 'http2',
    declared: true,
    endpoints: [],
    route: (_v, record) => ({ kind: 'forward', plan: testPlan({ ports: [up], path: '/rewritten', authority: 'svc.test', requestHeaders: [edits({ set: [['x-edit', 'yes']] })] }, record).plan })
  })
  const got = await new Promise<any>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: fx.port, path: '/orig', method: 'POST', agent: new Agent() }, (res) => {
      let text = ''
      res.on('data', (c: Buffer) => { text += String(c) })
      res.on('end', () => { resolve({ status: res.statusCode, body: JSON.parse(text) }) })
    })
    req.on('error', reject)
    req.end('z'.repeat(5000))
  })
  t.match(got, { status: 200, body: { v: '2.0', url: '/rewritten', host: 'svc.test', x: 'yes', n: 5000 } })
  t.match(fx.records[0], { httpVersion: '1.1', attempts: 1, routeName: 'HTTPRoute test/route rule 0' })
})

t.test('declared http1 port, HTTP/2 client: the plan goes upstream as HTTP/1.1', async (t) => {
  const up = await h1Echo(t)
  const fx = await startEngine(t, {
    version: 'http1',
    declared: true,
    endpoints: [],
    route: (_v, record) => ({ kind: 'forward', plan: testPlan({ ports: [up], path: '/rewritten', requestHeaders: [edits({ set: [['x-edit', 'yes']] })] }, record).plan })
  })
  const s = h2connect(`http://127.0.0.1:${fx.port}`)
  t.teardown(() => { s.close() })
  const got = await new Promise<any>((resolve) => {
    const st = s.request({ ':path': '/orig', ':method': 'POST', te: 'trailers' })
    let status: unknown = 0
    let text = ''
    st.on('response', (h) => { status = h[':status'] })
    st.on('data', (c: Buffer) => { text += String(c) })
    st.on('end', () => { resolve({ status, body: JSON.parse(text) }) })
    st.end('q'.repeat(300))
  })
  t.match(got, { status: 200, body: { v: '1.1', url: '/rewritten', x: 'yes', n: 300 } })
  t.match(fx.records[0], { httpVersion: '2', attempts: 1 })
})

t.test('an Upgrade on a routed service: local answers, the rewritten path and one attempt ended with the 101', async (t) => {
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const { WebSocket, WebSocketServer } = require('ws')
  const http = createServer()
  const paths: string[] = []
  const wss = new WebSocketServer({ server: http })
  wss.on('connection', (ws: any, req: IncomingMessage) => { paths.push(req.url ?? ''); ws.on('message', (m: any) => { ws.send(`echo ${String(m)}`) }) })
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { wss.close(); http.closeAllConnections(); http.close() })
  const port = (http.address() as { port: number }).port
  let found = false
  const logs: any[] = []
  const fx = await startEngine(t, {
    version: 'http1',
    endpoints: [],
    route: (_v, record) => {
      if (!found) return { kind: 'not_found', routes: { kind: 'HTTPRoute', objects: [], entries: [] } }
      const p = testPlan({ ports: [port], path: '/socket' }, record)
      logs.push(p.log)
      return { kind: 'forward', plan: p.plan }
    }
  })
  const refused = await new Promise<number>((resolve) => {
    const ws = new WebSocket(`ws://127.0.0.1:${fx.port}/ws`)
    ws.on('unexpected-response', (_req: any, res: IncomingMessage) => { resolve(res.statusCode ?? 0) })
    ws.on('error', () => {})
  })
  t.equal(refused, 404)
  found = true
  const ws = new WebSocket(`ws://127.0.0.1:${fx.port}/ws`)
  const got = await new Promise<string>((resolve, reject) => {
    ws.on('open', () => { ws.send('hi') })
    ws.on('message', (m: any) => { resolve(String(m)) })
    ws.on('error', reject)
  })
  t.equal(got, 'echo hi')
  t.same(paths, ['/socket'])
  ws.close()
  await new Promise((resolve) => ws.on('close', resolve))
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.match(logs[0].outcomes, [{ kind: 'response', status: 101 }])
  t.match(fx.records.map((r) => [r.responseCode, r.responseFlags, r.attempts]), [[404, 'NR', 0], [101, '-', 1]])
})
