import t from 'tap'
import { Agent, createServer as createHttpServer, request } from 'node:http'
import { connect as h2connect, createServer as createH2Server } from 'node:http2'
import { connect, createServer, type Socket } from 'node:net'
import { parseClusterList } from '../../src/discovery/cluster-list'
import { createOutboundHandler, RouteTable, serve } from '../../src/proxy'
import { InboundAuthorizer } from '../../src/proxy/authorize'
import type { Splicer } from '../../src/proxy/splice'
import { HttpEngine } from '../../src/http/engine'
import { pathNormalizer } from '../../src/http/normalize-path'
import { L7Table } from '../../src/l7/table'
import { createAccessLog } from '../../src/telemetry/access-log'
import { createConnTelemetry } from '../../src/telemetry/conn-telemetry'
import type { HttpRequestRecord } from '../../src/telemetry/request-record'
import { listText, namespaceObj, podObj, serviceObj } from '../discovery/fixture'
import { ap, policySet } from '../policy/helpers'
import { waitFor } from '../helpers/wait'
import { captureLog } from './harness'
import { testNode } from '../helpers/mesh-harness'

// The same-node path with L7, on loopback (src/proxy/local-l7.ts): pods of "this node" are
// addresses in 127/8 with real servers, the client pod's outbound handler routes to them.
//   web  (namespace app, 127.0.0.2): an HTTP server on a port Service `web` declares http,
//        and a raw TCP server and an h2c server on ports no Service exposes (detect); an
//        L7 policy selects it (DENY /admin*, ALLOW GET)
//   h-a  (namespace det, 127.0.0.3): an HTTP server behind Service `hd`, whose namespace
//        switches L7 on and whose port declares nothing (detect at the source)
//   echo (namespace app, 127.0.0.5): a TCP echo server nothing makes L7 (L4, spliced)

const DENY_ADMIN = 'selector:\n  matchLabels: { app: web }\naction: DENY\nrules:\n- to:\n  - operation:\n      paths: ["/admin*"]'
const ALLOW_GET = 'selector:\n  matchLabels: { app: web }\naction: ALLOW\nrules:\n- to:\n  - operation:\n      methods: ["GET"]'

interface App { port: number, connections: number, received: string[] }

async function httpApp (t: any, host: string, name: string): Promise<App> {
  const app: App = { port: 0, connections: 0, received: [] }
  const srv = createHttpServer((req, res) => { app.received.push(`${req.method as string} ${req.url as string}`); req.resume(); res.end(`${name} ${req.url as string}`) })
  srv.on('connection', () => { app.connections++ })
  await new Promise<void>((resolve) => srv.listen(0, host, resolve))
  t.teardown(() => { srv.closeAllConnections(); srv.close() })
  app.port = (srv.address() as { port: number }).port
  return app
}

async function h2App (t: any, host: string): Promise<App> {
  const app: App = { port: 0, connections: 0, received: [] }
  const srv = createH2Server((req, res) => { app.received.push(`${req.method} ${req.url}`); res.end(`h2 ${req.url}`) })
  srv.on('connection', () => { app.connections++ })
  await new Promise<void>((resolve) => srv.listen(0, host, resolve))
  t.teardown(() => { srv.close() })
  app.port = (srv.address() as { port: number }).port
  return app
}

async function tcpApp (t: any, host: string, echo: boolean): Promise<App> {
  const app: App = { port: 0, connections: 0, received: [] }
  const srv = createServer({ allowHalfOpen: true }, (s: Socket) => {
    app.connections++
    s.on('error', () => {})
    s.on('data', (d) => { app.received.push(String(d)); if (echo) s.write(d) })
    s.on('end', () => { s.end() })
  })
  await new Promise<void>((resolve) => srv.listen(0, host, resolve))
  t.teardown(() => { srv.close() })
  app.port = (srv.address() as { port: number }).port
  return app
}

async function setup (t: any) {
  const web = await httpApp(t, '127.0.0.2', 'web')
  const raw = await tcpApp(t, '127.0.0.2', true)
  const h2 = await h2App(t, '127.0.0.2')
  const ha = await httpApp(t, '127.0.0.3', 'h-a')
  const echo = await tcpApp(t, '127.0.0.5', true)
  const snapshot = parseClusterList(listText([
    namespaceObj('app', { 'ferry.dev/mesh': 'enabled' }),
    namespaceObj('det', { 'ferry.dev/mesh': 'enabled', 'ferry.dev/l7': 'enabled' }),
    podObj({ name: 'client', ips: ['127.0.0.1'], labels: { app: 'client' } }),
    podObj({ name: 'web', ips: ['127.0.0.2'], labels: { app: 'web' }, ports: [{ name: 'http', containerPort: web.port }, { containerPort: raw.port }, { containerPort: h2.port }] }),
    podObj({ name: 'h-a', namespace: 'det', ips: ['127.0.0.3'], labels: { app: 'h' }, ports: [{ name: 'web', containerPort: ha.port }] }),
    podObj({ name: 'echo', ips: ['127.0.0.5'], labels: { app: 'echo' }, ports: [{ containerPort: echo.port }] }),
    serviceObj({ name: 'web', clusterIPs: ['10.96.0.10'], selector: { app: 'web' }, ports: [{ name: 'http', port: 80, targetPort: 'http' }] }),
    serviceObj({ name: 'hd', namespace: 'det', clusterIPs: ['10.96.0.11'], selector: { app: 'h' }, ports: [{ name: 'web', port: 80, targetPort: 'web' }] })
  ]), 'test', 1)
  const routes = new RouteTable()
  routes.update(snapshot)
  const table = L7Table.build(snapshot)
  const { log } = captureLog()
  const authz = new InboundAuthorizer({ log })
  authz.swap(policySet(ap('app', 'deny-admin', DENY_ADMIN) + ap('app', 'allow-get', ALLOW_GET)))
  const node = testNode('n1', routes, { local: ['127.0.0.2', '127.0.0.3', '127.0.0.5'], authz })
  const records: HttpRequestRecord[] = []
  const detected: string[] = []
  const engine = new HttpEngine({ telemetry: { requestEnded (r) { records.push(r) } } })
  t.teardown(() => { engine.close() })
  const spliced: string[] = []
  const splicer: Splicer = { splice: (_d, _u, local) => { spliced.push(local.pod.name); return null } }
  let dst = { address: '127.0.0.2', port: web.port }
  const handler = createOutboundHandler({
    pod: routes.index.podByIP('127.0.0.1')!,
    originalDst: () => dst,
    routes,
    connector: (req) => connect({ host: req.host, port: req.port, allowHalfOpen: true }),
    telemetry: createConnTelemetry(node.metrics, createAccessLog(node.log)),
    connectTimeoutMs: 2000,
    mesh: node.mesh,
    splicer,
    l7: { table: () => table, engine, normalizePath: pathNormalizer(), detected (o) { detected.push(o) } }
  })
  const server = await serve({ host: '127.0.0.1', port: 0 }, handler, (err) => { throw err })
  t.teardown(() => { server.close() })
  const port = (server.address() as { port: number }).port
  return { web, raw, h2, ha, echo, authz, node, records, detected, spliced, port, to (address: string, p: number) { dst = { address, port: p } } }
}

type Fixture = Awaited<ReturnType<typeof setup>>

function get (f: Fixture, agent: Agent | false, path: string, method = 'GET'): Promise<{ code: number, body: string }> {
  return new Promise((resolve, reject) => {
    request({ host: '127.0.0.1', port: f.port, path, method, agent }, (res) => {
      let b = ''
      res.on('data', (c) => { b += String(c) })
      res.on('end', () => { resolve({ code: res.statusCode as number, body: b }) })
    }).on('error', reject).end()
  })
}

/** Writes `bytes` on a new connection (then ends it, with `end`); what came back and how it closed. */
function exchange (f: Fixture, bytes: string, end: boolean): Promise<{ got: string, error: string | null }> {
  return new Promise((resolve) => {
    const c = connect({ port: f.port, host: '127.0.0.1', allowHalfOpen: true })
    let got = ''
    let error: string | null = null
    c.on('data', (d) => { got += String(d) })
    c.on('error', (e: NodeJS.ErrnoException) => { error = e.code ?? e.message })
    c.on('close', () => { resolve({ got, error }) })
    c.on('end', () => { c.end() })
    c.write(bytes)
    if (end) c.end()
    setTimeout(() => { c.destroy() }, 1500).unref()
  })
}

t.test('a pod IP dialed on the same node, an L7 policy selecting the pod: the destination\'s decisions per request, one connection', async (t) => {
  const f = await setup(t)
  f.to('127.0.0.2', f.web.port)
  const agent = new Agent({ keepAlive: true, maxSockets: 1 })
  t.teardown(() => { agent.destroy() })
  const answers = []
  for (const p of ['/public', '/admin', '//admin', '/%61dmin', '/public/./a/../b']) answers.push(await get(f, agent, p))
  t.same(answers.map((a) => a.code), [200, 403, 403, 403, 200])
  t.equal(answers[1].body, 'RBAC: access denied')
  t.same(f.web.received, ['GET /public', 'GET /public/b'], 'the app receives only allowed requests, on the normalized path')
  t.equal((await get(f, agent, '/public', 'POST')).code, 403, 'only GET is allowed')
  t.equal(f.web.connections, 1, 'one pooled connection to the app')
  t.ok(f.records.length >= 6 && f.records.every((r) => r.reporter === 'destination'), 'each request reported by the destination')
  t.match(f.records[1], { reporter: 'destination', responseCode: 403, conn: { direction: 'inbound', destination: { pod: 'web' } } })
  t.same(f.spliced, [], 'not spliced')
  agent.destroy()
  const lines = await waitForAccess(f, 2)
  t.match(lines.find((l) => l.direction === 'outbound'), { result: 'ok' })
  t.match(lines.find((l) => l.direction === 'inbound'), { result: 'ok' })
})

t.test('a pod IP dialed on the same node, a detect port under an L7 policy: bytes that are not HTTP never reach the pod', async (t) => {
  const f = await setup(t)
  f.to('127.0.0.2', f.raw.port)
  const ended = await exchange(f, '*1\r\n$4\r\nPING\r\n', true)
  t.equal(ended.got, '', 'nothing echoed')
  const open = await exchange(f, 'hello there\n', false)
  t.equal(open.got, '', 'nothing echoed')
  t.same(f.raw.received, [], 'the app received nothing (its connection was made for detection only)')
  t.same(f.detected, ['not_http', 'not_http'])
  const lines = await waitForAccess(f, 4)
  t.same(lines.map((l) => l.result), ['denied', 'denied', 'denied', 'denied'], 'both records of both connections denied')
  t.match(lines.find((l) => l.direction === 'inbound'), { authz: { policy: 'app/deny-admin', notEvaluated: [/paths/] } })
  // HTTP on the same port: per request.
  const h = await exchange(f, 'GET /admin HTTP/1.1\r\nhost: x\r\n\r\n', false)
  t.match(h.got, /^HTTP\/1\.1 403/, 'an HTTP request there is decided as one')
  t.same(f.raw.received, [], 'and never reaches the app')
})

t.test('a pod IP dialed on the same node, HTTP/2 with prior knowledge on a detect port: decided per request as HTTP/1.1 is', async (t) => {
  const f = await setup(t)
  f.to('127.0.0.2', f.h2.port)
  const session = h2connect(`http://127.0.0.1:${f.port}`)
  session.on('error', () => {})
  t.teardown(() => { session.destroy() })
  const h2get = (path: string): Promise<{ status: number, body: string }> => new Promise((resolve, reject) => {
    const s = session.request({ ':path': path })
    let status = 0
    let body = ''
    s.on('response', (h) => { status = Number(h[':status']) })
    s.on('data', (d) => { body += String(d) })
    s.on('end', () => { resolve({ status, body }) })
    s.on('error', reject)
  })
  const answers = [await h2get('/public'), await h2get('/admin'), await h2get('//admin')]
  t.same(answers.map((a) => a.status), [200, 403, 403])
  t.equal(answers[0].body, 'h2 /public')
  t.same(f.h2.received, ['GET /public'], 'only the allowed request reached the app')
  t.same(f.detected, ['http2'])
})

t.test('an L4 DENY under an L7 policy refuses the connection at once, before any connection to the pod', async (t) => {
  const f = await setup(t)
  f.authz.swap(policySet(ap('app', 'deny-admin', DENY_ADMIN) + ap('app', 'deny-client', 'selector:\n  matchLabels: { app: web }\naction: DENY\nrules:\n- from:\n  - source:\n      namespaces: ["app"]')))
  for (const p of [f.web.port, f.raw.port]) {
    f.to('127.0.0.2', p)
    const r = await exchange(f, 'GET /public HTTP/1.1\r\nhost: x\r\n\r\n', false)
    t.equal(r.error, 'ECONNRESET', `port ${p}: reset`)
    t.equal(r.got, '')
  }
  t.same(f.node.localConnects, [], 'no connection was made to the pod')
  t.equal(f.web.connections + f.raw.connections, 0)
  const lines = await waitForAccess(f, 4)
  t.ok(lines.every((l) => l.result === 'denied'), 'denied, both records')
})

t.test('a detect Service port whose connection starts on a pod of this node: detected, and the destination\'s part done here', async (t) => {
  const f = await setup(t)
  f.to('10.96.0.11', 80)
  const agent = new Agent({ keepAlive: true, maxSockets: 1 })
  t.teardown(() => { agent.destroy() })
  t.same([(await get(f, agent, '//a/./b')).body, (await get(f, agent, '/c')).body], ['h-a /a/b', 'h-a /c'], 'HTTP, the path normalized as the destination does')
  t.same(f.detected, ['http1'])
  t.same(f.records.map((r) => r.reporter).sort(), ['destination', 'destination', 'source', 'source'], 'each request reported by the source and by the destination')
  agent.destroy()
  // Not HTTP: relayed (the app's parser answers it), both records accounted.
  const r = await exchange(f, 'hello\r\n\r\n', true)
  t.match(r.got, /^HTTP\/1\.1 400/, 'relayed to the app')
  t.same(f.detected, ['http1', 'not_http'])
  // The destination's L4 DENY: refused before the connection to the pod is made.
  f.authz.swap(policySet(ap('det', 'deny-app', 'action: DENY\nrules:\n- from:\n  - source:\n      namespaces: ["app"]')))
  const before = f.node.localConnects.length
  const denied = await exchange(f, 'GET / HTTP/1.1\r\nhost: x\r\n\r\n', false)
  t.equal(denied.error, 'ECONNRESET')
  t.equal(f.node.localConnects.length, before, 'no connection to the pod')
  await waitForAccess(f, 5)
  t.same(f.node.access().slice(-2).map((l) => `${String(l.direction)} ${String(l.result)}`).sort(), ['inbound denied', 'outbound denied'])
})

t.test('where L7 applies nowhere, the same-node path is L4 as before: offered to the splice', async (t) => {
  const f = await setup(t)
  f.to('127.0.0.5', f.echo.port)
  const r = await exchange(f, 'GET / HTTP/1.1\r\n\r\n', true)
  t.equal(r.got, 'GET / HTTP/1.1\r\n\r\n', 'relayed byte for byte')
  t.same(f.spliced, ['echo'])
  t.same(f.detected, [], 'no detection')
  t.equal(f.records.length, 0, 'no request records')
})

async function waitForAccess (f: Fixture, n: number): Promise<any[]> {
  await waitFor(() => f.node.access().length >= n, { timeoutMs: 3000, what: `${n} access lines` })
  return f.node.access()
}
