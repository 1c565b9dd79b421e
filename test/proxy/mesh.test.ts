import t, { type Test } from 'tap'
import { connect, type Socket } from 'node:net'
import type { Pod } from '../../src/discovery/model'
import { isTunnelError } from '../../src/tunnel'
import { namespaceObj, serviceObj } from '../discovery/fixture'
import { testCa } from '../identity/certs'
import { counter } from '../telemetry/prom-text'
import { listen, routesFor } from './harness'
import { idOf, inboundOf, linesOf, outboundOf, podOn, poolOf, testNode, tunnelServerOf } from '../helpers/mesh-harness'
import { waitFor } from '../helpers/wait'
import { dial, drain } from '../helpers/net'

// The mesh on the data path, on loopback with real TLS 1.3 + HTTP/2 and the real relay:
//   client pod (n1) ⇄ outbound ⇄ TunnelPool ══ mTLS ══ TunnelServer (n2) ⇄ tunnel-inbound ⇄ app
// plus the same-node path, the direct path, and the plaintext inbound path's STRICT /
// PERMISSIVE decision. Each node has its own log and metrics, as two agents would.

t.setTimeout(30_000)

const VIP = '10.96.0.10'
const CLIENT = idOf('app', 'client')
const SERVER = idOf('app', 'server')
const LOCAL = idOf('app', 'local')

/**
 * Connects, sends `body` and half-closes, reads to the end: { text, ended }. A reset may
 * come before 'connect' is seen on loopback (the proxy refuses at accept): that is
 * ended 'error' too, not a failure of the test.
 */
async function exchange (port: number, body: string, opts: { host?: string, localAddress?: string } = {}): Promise<{ text: string, ended: string, code?: string }> {
  const s = connect({ host: opts.host ?? '127.0.0.1', port, allowHalfOpen: true, ...(opts.localAddress === undefined ? {} : { localAddress: opts.localAddress }) })
  const chunks: Buffer[] = []
  return await new Promise((resolve, reject) => {
    const timer = setTimeout(() => { s.destroy(); reject(new Error('exchange timed out')) }, 5000)
    s.once('connect', () => { s.end(body) })
    s.on('data', (c: Buffer) => chunks.push(c))
    s.once('end', () => { clearTimeout(timer); resolve({ text: Buffer.concat(chunks).toString(), ended: 'end' }) })
    s.once('error', (err: NodeJS.ErrnoException) => { clearTimeout(timer); resolve({ text: Buffer.concat(chunks).toString(), ended: 'error', ...(err.code === undefined ? {} : { code: err.code }) }) })
  })
}

/** An app that answers "<name> got <request> from <peer>" once the request side ends. */
function app (name: string): (s: Socket) => void {
  return (s) => {
    const got: Buffer[] = []
    s.on('data', (c: Buffer) => got.push(c))
    s.on('end', () => { s.end(`${name} got ${Buffer.concat(got).toString()} from ${s.remoteAddress as string}`) })
    s.on('error', () => {})
  }
}

async function rig (t: Test, o: { n2Present?: 'other-identity', clientCa?: 'other', nsLabels?: Record<string, string>, serverAnnotations?: Record<string, string> } = {}) {
  const serverPort = (await listen(t, '127.0.0.8', app('server'))).port
  const localPort = (await listen(t, '127.0.0.9', app('local'))).port
  const routes = routesFor([
    namespaceObj('app', { 'ferry.dev/mesh': 'enabled', ...o.nsLabels }),
    namespaceObj('plain'),
    podOn({ name: 'client', ips: ['127.0.0.7'], node: 'n1', hostIP: '127.0.0.1', labels: { app: 'client' } }),
    podOn({ name: 'server', ips: ['127.0.0.8'], node: 'n2', hostIP: '127.0.0.1', labels: { app: 'server' }, ports: [{ name: 'http', containerPort: serverPort }], ...(o.serverAnnotations === undefined ? {} : { annotations: o.serverAnnotations }) }),
    podOn({ name: 'local', ips: ['127.0.0.9'], node: 'n1', hostIP: '127.0.0.1', labels: { app: 'local' }, ports: [{ name: 'http', containerPort: localPort }] }),
    podOn({ name: 'outsider', namespace: 'plain', ips: ['127.0.0.10'], node: 'n2', hostIP: '127.0.0.1', ports: [{ containerPort: serverPort }] }),
    serviceObj({ name: 'server', clusterIPs: [VIP], selector: { app: 'server' }, ports: [{ name: 'web', port: 80, targetPort: 'http' }] })
  ])
  const ca = await testCa()
  const other = await testCa()
  const serverSvid = await ca.svid('app/server')
  // 'other': signed by another CA, though it trusts the mesh's root (so that it is the
  // destination, not the source, that refuses).
  const clientSvid = o.clientCa === 'other'
    ? Object.freeze({ ...await other.svid('app/client'), bundle: serverSvid.bundle })
    : await ca.svid('app/client')
  let tunnelPort = 0
  const n1 = testNode('n1', routes, { svids: [clientSvid, await ca.svid('app/local')], local: ['127.0.0.9'], tunnelPort: () => tunnelPort })
  const pool = poolOf(t, n1)
  n1.tunnels = pool
  const n2 = testNode('n2', routes, { svids: [serverSvid], local: ['127.0.0.8'] })
  tunnelPort = await tunnelServerOf(t, n2, routes, o.n2Present === 'other-identity' ? { present: await ca.svid('app/impostor') } : {})
  const clientPod = routes.index.podByIP('127.0.0.7') as Pod
  let dst = { address: VIP, port: 80 }
  const out = await outboundOf(t, n1, routes, clientPod, () => dst)
  /** One request from the client pod to `to`; resolves with the reply and how it ended. */
  const request = async (to: { address: string, port: number }, body = 'hello'): Promise<{ text: string, ended: string, code?: string }> => {
    dst = to
    return await exchange(out, body)
  }
  return { routes, n1, n2, pool, ca, clientSvid, serverSvid, serverPort, localPort, request, tunnelPort: () => tunnelPort }
}

t.test('across nodes: a VIP whose endpoint is on another node goes through the tunnel; both nodes log both principals and mtls', async (t) => {
  const r = await rig(t)
  const res = await r.request({ address: VIP, port: 80 })
  t.match(res.text, /^server got hello from /, 'the app answers')
  t.equal(res.ended, 'end')
  const [out] = await linesOf(r.n1, (l) => l.msg === 'access')
  t.match(out, {
    direction: 'outbound',
    source: { pod: 'client', ip: '127.0.0.7' },
    original_destination: `${VIP}:80`,
    destination_service: 'server.app',
    endpoint: `127.0.0.8:${r.serverPort}`,
    destination: { pod: 'server', namespace: 'app' },
    source_principal: CLIENT,
    destination_principal: SERVER,
    mtls: true,
    bytes_received: 5,
    result: 'ok'
  })
  const [inb] = await linesOf(r.n2, (l) => l.msg === 'access')
  t.match(inb, {
    direction: 'inbound',
    source: { pod: 'client', namespace: 'app', ip: '127.0.0.7' },
    original_destination: `127.0.0.8:${r.serverPort}`,
    destination_service: 'server.app',
    destination: { pod: 'server' },
    source_principal: CLIENT,
    destination_principal: SERVER,
    mtls: true,
    bytes_received: 5,
    result: 'ok'
  })
  t.same(r.n2.localConnects, [`127.0.0.8:${r.serverPort}`], 'n2 connected to the pod with the pod\'s connector')
  const labels = { source_principal: CLIENT, destination_principal: SERVER }
  t.equal(counter(await r.n1.metrics.text(), 'istio_tcp_connections_closed_total', { reporter: 'source', response_flags: '-', connection_security_policy: 'unknown', ...labels }), 1)
  t.equal(counter(await r.n2.metrics.text(), 'istio_tcp_connections_closed_total', { reporter: 'destination', response_flags: '-', connection_security_policy: 'mutual_tls', ...labels }), 1)
  // A second connection shares the pooled session.
  await r.request({ address: VIP, port: 80 })
  t.equal(r.pool.stats().sessions, 1, 'one pooled session for both connections')
})

t.test('same node: no tunnel, the destination pod\'s connector, an outbound and an inbound line with both principals, mtls false', async (t) => {
  const r = await rig(t)
  const res = await r.request({ address: '127.0.0.9', port: r.localPort })
  t.match(res.text, /^local got hello from /)
  const lines = await linesOf(r.n1, (l) => l.msg === 'access', 2)
  const out = lines.find((l) => l.direction === 'outbound')
  const inb = lines.find((l) => l.direction === 'inbound')
  for (const l of [out, inb]) t.match(l, { source: { pod: 'client' }, destination: { pod: 'local' }, source_principal: CLIENT, destination_principal: LOCAL, mtls: false, result: 'ok', bytes_received: 5 })
  t.equal(inb.original_destination, `127.0.0.9:${r.localPort}`)
  t.same(r.n1.localConnects, [`127.0.0.9:${r.localPort}`])
  t.equal(r.pool.stats().sessions, 0, 'no tunnel session')
  t.equal(counter(await r.n1.metrics.text(), 'ferry_tcp_connections_active'), 0, 'both records closed')
  t.equal(counter(await r.n1.metrics.text(), 'istio_tcp_connections_closed_total', { reporter: 'destination', connection_security_policy: 'none', source_principal: CLIENT }), 1)
})

t.test('not meshed on another node: direct, in plaintext, from the source pod', async (t) => {
  const r = await rig(t)
  const outsiderPort = (await listen(t, '127.0.0.10', app('outsider'))).port
  const res = await r.request({ address: '127.0.0.10', port: outsiderPort })
  t.match(res.text, /^outsider got hello/, 'reached directly')
  const [out] = await linesOf(r.n1, (l) => l.msg === 'access')
  t.match(out, { direction: 'outbound', destination: { pod: 'outsider' }, source_principal: CLIENT, mtls: false, result: 'ok' })
  t.notOk('destination_principal' in out, 'not meshed: no destination principal')
  t.equal(r.pool.stats().sessions, 0)
})

t.test('wrong identity: a destination node presenting another identity than discovery expects is refused by the source, which says why', async (t) => {
  const r = await rig(t, { n2Present: 'other-identity' })
  const res = await r.request({ address: VIP, port: 80 })
  t.equal(res.ended, 'error', 'the app\'s connection is reset')
  t.equal(res.code, 'ECONNRESET')
  const [out] = await linesOf(r.n1, (l) => l.msg === 'access')
  t.match(out, { result: 'connect_error', error_code: 'FERRY_ERR_TUNNEL_PEER', error_reason: 'wrong-identity', mtls: true, destination_principal: SERVER })
  const [refusal] = await linesOf(r.n1, (l) => l.msg === 'tunnel refused')
  t.match(refusal, { level: 40, side: 'client', stage: 'verify', reason: 'wrong-identity', peer_principal: SERVER, local_principal: CLIENT, detail: /impostor/ })
  t.equal(counter(await r.n1.metrics.text(), 'ferry_tunnel_refusals_total', { side: 'client', reason: 'wrong-identity' }), 1)
  t.equal(r.n2.access().length, 0, 'nothing reached the destination')
})

t.test('another CA: the destination node refuses a source certificate it cannot chain, logs and counts it; the source is reset', async (t) => {
  const r = await rig(t, { clientCa: 'other' })
  const res = await r.request({ address: VIP, port: 80 })
  t.equal(res.ended, 'error')
  const [refusal] = await linesOf(r.n2, (l) => l.msg === 'tunnel refused')
  t.match(refusal, { side: 'server', stage: 'verify', reason: 'other-ca', local_principal: SERVER })
  t.equal(counter(await r.n2.metrics.text(), 'ferry_tunnel_refusals_total', { side: 'server', stage: 'verify', reason: 'other-ca' }), 1)
  const [out] = await linesOf(r.n1, (l) => l.msg === 'access')
  t.match(out, { result: 'connect_error', error_code: 'FERRY_ERR_TUNNEL_CONNECT' })
  t.equal(r.n2.access().length, 0)
})

t.test('no certificate for the source yet: fails closed, never in plaintext', async (t) => {
  const r = await rig(t)
  r.n1.svids.delete(CLIENT)
  const res = await r.request({ address: VIP, port: 80 })
  t.equal(res.ended, 'error')
  const [out] = await linesOf(r.n1, (l) => l.msg === 'access')
  t.match(out, { result: 'connect_error', error_code: 'FERRY_ERR_TUNNEL_CONNECT', error_reason: 'no-certificate' })
  t.equal(r.pool.stats().sessions, 0)
})

t.test('the tunnel server refuses what is not a pod of its node (404), a pod of another identity (421), a pod that does not answer (503)', async (t) => {
  const r = await rig(t)
  const open = async (authority: string): Promise<number | string> => {
    try {
      const s = await r.pool.open({ sourceSvid: () => r.clientSvid, expectedPeer: SERVER, node: { address: '127.0.0.1', port: r.tunnelPort() }, authority })
      s.destroy()
      return 200
    } catch (err) {
      return isTunnelError(err) && err.status !== null ? err.status : String(err)
    }
  }
  t.equal(await open('127.0.0.99:80'), 404, 'no such pod here')
  t.equal(await open(`127.0.0.9:${r.localPort}`), 404, 'a pod of another node')
  // plain/outsider as if it were enrolled on n2: a pod of another identity than the session presented.
  r.n2.localPod = (address) => address === '127.0.0.10' ? { pod: r.routes.index.podByIP(address) as Pod, connector: () => { throw new Error('not reached') } } : null
  t.equal(await open('127.0.0.10:80'), 421, 'the pod there is not app/server')
  r.n2.localPod = () => ({ pod: r.routes.index.podByIP('127.0.0.8') as Pod, connector: (req) => connect({ host: req.host, port: 1 }) })
  t.equal(await open('127.0.0.8:1'), 503, 'the pod refused the connection')
  const refusals = await linesOf(r.n2, (l) => l.msg === 'tunnel refused', 4)
  t.same(refusals.map((l) => l.status), [404, 404, 421, 503])
  t.ok(refusals.every((l) => l.reason === 'refused' && l.peer_principal === CLIENT), 'each names the verified peer')
  const [failed] = await linesOf(r.n2, (l) => l.msg === 'access')
  t.match(failed, { direction: 'inbound', result: 'connect_error', error_code: 'ECONNREFUSED', source_principal: CLIENT, mtls: true })
})

t.test('a rotated source certificate: the next connection opens a new session and the old one drains', async (t) => {
  const r = await rig(t)
  t.equal((await r.request({ address: VIP, port: 80 })).ended, 'end')
  r.n1.svids.set(CLIENT, await r.ca.svid('app/client'))
  t.equal((await r.request({ address: VIP, port: 80 })).ended, 'end')
  await waitFor(() => r.pool.stats().sessions === 1, { timeoutMs: 3000, what: 'the old session drained' })
  t.equal(r.n2.access().filter((l) => l.result === 'ok').length, 2)
})

async function plaintextRig (t: Test, o: Parameters<typeof rig>[1]) {
  const r = await rig(t, o)
  const serverPod = r.routes.index.podByIP('127.0.0.8') as Pod
  const port = await inboundOf(t, r.n2, r.routes, serverPod, '127.0.0.8', r.serverPort)
  const send = async (): Promise<{ text: string, ended: string }> => await exchange(port, 'plain', { host: '127.0.0.8', localAddress: '127.0.0.10' })
  return { ...r, send }
}

t.test('plaintext inbound, STRICT by default: reset before a byte reaches the app, logged denied_plaintext and counted', async (t) => {
  const r = await plaintextRig(t, {})
  const res = await r.send()
  t.equal(res.ended, 'error', 'reset')
  t.equal(res.text, '')
  const [line] = await linesOf(r.n2, (l) => l.msg === 'access')
  t.match(line, { direction: 'inbound', source: { pod: 'outsider', ip: '127.0.0.10' }, destination: { pod: 'server' }, destination_principal: SERVER, mtls: false, result: 'denied_plaintext', bytes_received: 0 })
  t.notOk('source_principal' in line, 'plaintext proves no identity')
  t.equal(counter(await r.n2.metrics.text(), 'istio_tcp_connections_closed_total', { reporter: 'destination', response_flags: 'NR', connection_security_policy: 'none' }), 1)
})

t.test('plaintext inbound, PERMISSIVE by namespace label or pod annotation: relayed; a pod annotation STRICT beats a PERMISSIVE namespace', async (t) => {
  const byNs = await plaintextRig(t, { nsLabels: { 'ferry.dev/inbound-mode': 'PERMISSIVE' } })
  t.match((await byNs.send()).text, /^server got plain/)
  t.match((await linesOf(byNs.n2, (l) => l.msg === 'access'))[0], { result: 'ok', mtls: false })
  const byPod = await plaintextRig(t, { serverAnnotations: { 'ferry.dev/inbound-mode': 'PERMISSIVE' } })
  t.match((await byPod.send()).text, /^server got plain/)
  const strictPod = await plaintextRig(t, { nsLabels: { 'ferry.dev/inbound-mode': 'PERMISSIVE' }, serverAnnotations: { 'ferry.dev/inbound-mode': 'STRICT' } })
  t.equal((await strictPod.send()).ended, 'error')
  const invalid = await plaintextRig(t, { serverAnnotations: { 'ferry.dev/inbound-mode': 'permissive' } })
  t.equal((await invalid.send()).ended, 'error', 'an invalid value fails closed')
})

t.test('without a CA (no identities): plaintext is accepted, nothing is tunnelled, no principals', async (t) => {
  const serverPort = (await listen(t, '127.0.0.8', app('server'))).port
  const routes = routesFor([
    namespaceObj('app', { 'ferry.dev/mesh': 'enabled' }),
    podOn({ name: 'client', ips: ['127.0.0.7'], node: 'n1', hostIP: '127.0.0.1' }),
    podOn({ name: 'server', ips: ['127.0.0.8'], node: 'n2', hostIP: '127.0.0.1', ports: [{ containerPort: serverPort }] })
  ])
  const n1 = testNode('n1', routes, { noCa: true })
  const out = await outboundOf(t, n1, routes, routes.index.podByIP('127.0.0.7') as Pod, () => ({ address: '127.0.0.8', port: serverPort }))
  const c = await dial(out)
  c.end('x')
  t.match((await drain(c)).data.toString(), /^server got x/, 'direct')
  const [line] = await linesOf(n1, (l) => l.msg === 'access')
  t.match(line, { result: 'ok', mtls: false })
  t.notOk('source_principal' in line)
  const n2 = testNode('n2', routes, { noCa: true })
  const port = await inboundOf(t, n2, routes, routes.index.podByIP('127.0.0.8') as Pod, '127.0.0.8', serverPort)
  const p = await dial(port, { host: '127.0.0.8' })
  p.end('y')
  t.match((await drain(p)).data.toString(), /^server got y/, 'plaintext accepted')
})
