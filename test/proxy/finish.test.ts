import t, { type Test } from 'tap'
import { connect, type Socket } from 'node:net'
import type { Pod } from '../../src/discovery/model'
import { accepted, opened } from '../../src/proxy/account'
import { InboundAuthorizer } from '../../src/proxy/authorize'
import { Conn } from '../../src/proxy/conn'
import { relayAndFinish } from '../../src/proxy/finish'
import type { SpliceHandle } from '../../src/proxy/splice'
import { createAccessLog } from '../../src/telemetry/access-log'
import { createConnTelemetry } from '../../src/telemetry/conn-telemetry'
import { ProxyMetrics } from '../../src/telemetry/metrics'
import { namespaceObj, serviceObj } from '../discovery/fixture'
import { testCa } from '../identity/certs'
import { ap, policySet } from '../policy/helpers'
import { counter } from '../telemetry/prom-text'
import { dial } from '../helpers/net'
import { waitFor } from '../helpers/wait'
import { captureLog, listen, routesFor, type Teardown } from './harness'
import { idOf, inboundOf, outboundOf, podOn, poolOf, type TestNode, testNode, tunnelServerOf } from '../helpers/mesh-harness'

// The end of a relayed connection has one owner (src/proxy/finish.ts): relay the two
// ends, re-check an inbound record on every policy swap, settle a splice's bytes, account
// every record once. This guards that each connection, on every path, gives exactly one
// access line and one close in the metrics per record — however it ends: cleanly, reset
// in the middle of the relay, or closed by a policy swap while the relay still runs.

t.setTimeout(60_000)

const DENY_ALL = policySet(ap('app', 'deny-all', 'action: DENY\nrules:\n- {}'))
const SETTLE_MS = 200

/** An app that echoes every chunk and ends when its peer does. */
function echo (s: Socket): void {
  s.on('data', (c: Buffer) => { s.write(c) })
  s.on('end', () => { s.end() })
  s.on('error', () => {})
}

/** A client that has seen its first echo (the relay carries bytes end to end); `gone` resolves with how it ended. */
async function echoing (port: number, o: { host?: string, localAddress?: string } = {}): Promise<{ s: Socket, gone: Promise<string> }> {
  const s = await dial(port, o)
  const gone = new Promise<string>((resolve) => {
    s.once('error', (err: NodeJS.ErrnoException) => { resolve(err.code ?? 'error') })
    s.once('close', () => { resolve('close') })
  })
  s.write('ping')
  await new Promise<void>((resolve, reject) => {
    s.once('data', () => { resolve() })
    s.once('error', reject)
  })
  return { s, gone }
}

/** Waits until no more lines come, then: every access line of `n` and the closes its metrics counted. */
async function ended (n: TestNode, lines: number): Promise<{ access: any[], closed: number, active: number }> {
  await waitFor(() => n.access().length >= lines, { timeoutMs: 5000, what: `${lines} access line(s) on ${n.name}` })
  await new Promise((resolve) => setTimeout(resolve, SETTLE_MS))
  const text = await n.metrics.text()
  return { access: n.access(), closed: counter(text, 'istio_tcp_connections_closed_total'), active: counter(text, 'ferry_tcp_connections_active') }
}

t.test('the owner alone, between two loopback connections', async (t) => {
  const routes = routesFor([namespaceObj('app'), podOn({ name: 'db', ips: ['127.0.0.9'] })])
  const db = routes.index.podByIP('127.0.0.9') as Pod

  /** app ⇄ [down] relayAndFinish [up] ⇄ srv, with an outbound and an inbound record as on the same-node path. */
  async function rig (t: Teardown, o: { authz?: InboundAuthorizer, splice?: SpliceHandle } = {}): Promise<{ app: Socket, srv: Socket, out: Conn, inb: Conn, lines: any[], metrics: ProxyMetrics }> {
    const pair = async (): Promise<[Socket, Socket]> => {
      let server: Socket | undefined
      const { port } = await listen(t, '127.0.0.1', (s) => { server = s; s.on('error', () => {}) }, { allowHalfOpen: true })
      const c = connect({ host: '127.0.0.1', port, allowHalfOpen: true })
      c.on('error', () => {})
      await new Promise((resolve) => c.once('connect', resolve))
      await waitFor(() => server !== undefined, { timeoutMs: 2000, what: 'accept' })
      t.teardown(() => { c.destroy(); server!.destroy() })
      return [c, server!]
    }
    const [app, down] = await pair()
    const [up, srv] = await pair()
    const { log, lines } = captureLog()
    const metrics = new ProxyMetrics()
    const telemetry = createConnTelemetry(metrics, createAccessLog(log))
    const out = new Conn('outbound', down, () => 0)
    const inb = new Conn('inbound', down, () => 0)
    for (const c of [out, inb]) { accepted(c, telemetry); opened(c, telemetry) }
    relayAndFinish(down, up, {
      telemetry,
      records: [out, inb],
      recheck: o.authz === undefined ? undefined : { authz: o.authz, record: inb, pod: db, ipNamespace: 'dev' },
      splice: o.splice ?? null
    })
    return { app, srv, out, inb, lines, metrics }
  }

  const access = (lines: any[]): any[] => lines.filter((l) => l.msg === 'access')
  const closes = async (m: ProxyMetrics): Promise<number> => counter(await m.text(), 'istio_tcp_connections_closed_total')

  t.test('a clean end: each record once, ok, and no longer tracked', async (t) => {
    const authz = new InboundAuthorizer({ log: captureLog().log })
    const r = await rig(t, { authz })
    t.equal(authz.liveCount(), 1, 'the inbound record is tracked while relayed')
    r.srv.on('data', (c: Buffer) => { r.srv.write(c) })
    r.srv.on('end', () => { r.srv.end() })
    r.app.end('abc')
    await waitFor(() => access(r.lines).length >= 2, { timeoutMs: 3000, what: 'two access lines' })
    await new Promise((resolve) => setTimeout(resolve, SETTLE_MS))
    t.match(access(r.lines), [{ direction: 'outbound', result: 'ok', bytes_received: 3, bytes_sent: 3 }, { direction: 'inbound', result: 'ok' }])
    t.equal(access(r.lines).length, 2, 'one line per record')
    t.equal(await closes(r.metrics), 2, 'one close per record')
    t.equal(authz.liveCount(), 0, 'untracked at the end')
  })

  t.test('a reset in the middle of the relay: each record once, reset; the other end is reset too', async (t) => {
    const r = await rig(t)
    const srvSaw = new Promise<string>((resolve) => { r.srv.on('error', (e: NodeJS.ErrnoException) => { resolve(e.code ?? 'error') }); r.srv.on('end', () => { resolve('FIN') }) })
    r.srv.on('data', () => { r.srv.write('partial') })
    r.app.write('go')
    await new Promise((resolve) => r.app.once('data', resolve))
    r.app.resetAndDestroy()
    t.equal(await srvSaw, 'ECONNRESET', 'a reset, not a FIN')
    await waitFor(() => access(r.lines).length >= 2, { timeoutMs: 3000, what: 'two access lines' })
    await new Promise((resolve) => setTimeout(resolve, SETTLE_MS))
    t.equal(access(r.lines).length, 2, 'one line per record')
    for (const l of access(r.lines)) t.match(l, { result: 'reset', error_code: 'ECONNRESET', bytes_received: 2, bytes_sent: 7 })
    t.equal(await closes(r.metrics), 2, 'one close per record')
  })

  t.test('a policy swap that denies the inbound record: it ends first, lends its decision, both ends reset, each record once', async (t) => {
    const authz = new InboundAuthorizer({ log: captureLog().log })
    const r = await rig(t, { authz })
    const appSaw = new Promise<string>((resolve) => { r.app.on('error', (e: NodeJS.ErrnoException) => { resolve(e.code ?? 'error') }); r.app.on('end', () => { resolve('FIN') }) })
    const srvSaw = new Promise<string>((resolve) => { r.srv.on('error', (e: NodeJS.ErrnoException) => { resolve(e.code ?? 'error') }); r.srv.on('end', () => { resolve('FIN') }) })
    t.equal(authz.swap(DENY_ALL), 1, 'the live connection is closed')
    t.equal(await appSaw, 'ECONNRESET')
    t.equal(await srvSaw, 'ECONNRESET')
    await new Promise((resolve) => setTimeout(resolve, SETTLE_MS))
    const lines = access(r.lines)
    t.match(lines, [{ direction: 'inbound', result: 'denied', authz: { policy: 'app/deny-all' } }, { direction: 'outbound', result: 'denied', authz: { policy: 'app/deny-all' } }])
    t.equal(lines.length, 2, 'the relay\'s own end adds no line')
    t.equal(await closes(r.metrics), 2, 'one close per record')
    t.equal(authz.liveCount(), 0)
  })

  t.test('a splice\'s bytes are added once to every record, at a clean end and at a denial', async (t) => {
    const handle = (): SpliceHandle & { calls: number } => {
      let done = false
      const h = {
        calls: 0,
        end () {
          h.calls++
          if (done) return { fromSource: 0, fromDestination: 0 }
          done = true
          return { fromSource: 100, fromDestination: 1000 }
        }
      }
      return h
    }
    const clean = handle()
    const r = await rig(t, { splice: clean })
    r.srv.on('end', () => { r.srv.end('xy') })
    r.srv.resume()
    r.app.resume()
    r.app.end('abc')
    await waitFor(() => access(r.lines).length >= 2, { timeoutMs: 3000, what: 'two access lines' })
    for (const l of access(r.lines)) t.match(l, { result: 'ok', bytes_received: 103, bytes_sent: 1002 })

    const authz = new InboundAuthorizer({ log: captureLog().log })
    const denied = handle()
    const d = await rig(t, { authz, splice: denied })
    authz.swap(DENY_ALL)
    await waitFor(() => access(d.lines).length >= 2 && d.app.destroyed && d.srv.destroyed, { timeoutMs: 3000, what: 'the denied connection closed' })
    await new Promise((resolve) => setTimeout(resolve, SETTLE_MS))
    t.ok(denied.calls >= 1, 'the splice was ended')
    for (const l of access(d.lines)) t.match(l, { result: 'denied', bytes_received: 100, bytes_sent: 1000 })
  })
})

t.test('every path, through its handler: one access line and one close per record', async (t) => {
  const CLIENT = idOf('app', 'client')

  async function rig (t: Test): Promise<{ n1: TestNode, n2: TestNode, authz1: InboundAuthorizer, authz2: InboundAuthorizer, out: number, inbound: number, to: (dst: { address: string, port: number }) => void, serverPort: number, localPort: number, outsiderPort: number }> {
    const serverPort = (await listen(t, '127.0.0.8', echo, { allowHalfOpen: true })).port
    const localPort = (await listen(t, '127.0.0.9', echo, { allowHalfOpen: true })).port
    const outsiderPort = (await listen(t, '127.0.0.10', echo, { allowHalfOpen: true })).port
    const routes = routesFor([
      namespaceObj('app', { 'ferry.dev/mesh': 'enabled', 'ferry.dev/inbound-mode': 'PERMISSIVE' }),
      namespaceObj('plain'),
      podOn({ name: 'client', ips: ['127.0.0.7'], node: 'n1', hostIP: '127.0.0.1' }),
      podOn({ name: 'server', ips: ['127.0.0.8'], node: 'n2', hostIP: '127.0.0.1', ports: [{ name: 'echo', containerPort: serverPort }] }),
      podOn({ name: 'local', ips: ['127.0.0.9'], node: 'n1', hostIP: '127.0.0.1', ports: [{ name: 'echo', containerPort: localPort }] }),
      podOn({ name: 'outsider', namespace: 'plain', ips: ['127.0.0.10'], node: 'n2', hostIP: '127.0.0.1' }),
      serviceObj({ name: 'server', clusterIPs: ['10.96.0.10'], selector: { app: 'none' }, ports: [{ port: 80 }] })
    ])
    const ca = await testCa()
    const authz1 = new InboundAuthorizer({ log: captureLog().log })
    const authz2 = new InboundAuthorizer({ log: captureLog().log })
    let tunnelPort = 0
    const n1 = testNode('n1', routes, { svids: [await ca.svid('app/client'), await ca.svid('app/local')], local: ['127.0.0.9'], tunnelPort: () => tunnelPort, authz: authz1 })
    n1.tunnels = poolOf(t, n1)
    const n2 = testNode('n2', routes, { svids: [await ca.svid('app/server')], local: ['127.0.0.8'], authz: authz2 })
    tunnelPort = await tunnelServerOf(t, n2, routes)
    let dst = { address: '127.0.0.8', port: serverPort }
    const out = await outboundOf(t, n1, routes, routes.index.podByIP('127.0.0.7') as Pod, () => dst)
    const inbound = await inboundOf(t, n2, routes, routes.index.podByIP('127.0.0.8') as Pod, '127.0.0.8', serverPort)
    return { n1, n2, authz1, authz2, out, inbound, to: (d) => { dst = d }, serverPort, localPort, outsiderPort }
  }

  type Rig = Awaited<ReturnType<typeof rig>>
  interface Path {
    readonly name: string
    /** A connection on this path, relaying. */
    readonly open: (r: Rig) => Promise<{ s: Socket, gone: Promise<string> }>
    /** Access lines each node writes for one connection, by direction. */
    readonly records: { readonly n1: readonly string[], readonly n2: readonly string[] }
    /** The node whose inbound record a policy swap closes (none: outbound only). */
    readonly deniedOn?: 'n1' | 'n2'
  }
  const paths: Path[] = [
    { name: 'outbound, direct', open: async (r) => { r.to({ address: '127.0.0.10', port: r.outsiderPort }); return await echoing(r.out) }, records: { n1: ['outbound'], n2: [] } },
    { name: 'outbound, tunnel, and the tunnel stream inbound', open: async (r) => { r.to({ address: '127.0.0.8', port: r.serverPort }); return await echoing(r.out) }, records: { n1: ['outbound'], n2: ['inbound'] }, deniedOn: 'n2' },
    { name: 'same node', open: async (r) => { r.to({ address: '127.0.0.9', port: r.localPort }); return await echoing(r.out) }, records: { n1: ['outbound', 'inbound'], n2: [] }, deniedOn: 'n1' },
    { name: 'plaintext inbound', open: async (r) => await echoing(r.inbound, { host: '127.0.0.8', localAddress: '127.0.0.10' }), records: { n1: [], n2: ['inbound'] }, deniedOn: 'n2' }
  ]

  const check = async (t: Test, r: Rig, p: Path, results: { n1: string[], n2: string[] }): Promise<void> => {
    for (const name of ['n1', 'n2'] as const) {
      const n = r[name]
      const { access, closed, active } = await ended(n, p.records[name].length)
      t.same(access.map((l) => l.direction).sort(), [...p.records[name]].sort(), `${name}: one line per record`)
      t.same(access.map((l) => l.result).sort(), results[name].sort(), `${name}: how each ended`)
      t.equal(closed, p.records[name].length, `${name}: one close per record`)
      t.equal(active, 0, `${name}: nothing left active`)
    }
  }

  for (const p of paths) {
    t.test(`${p.name}: a reset in the middle of the relay`, async (t) => {
      const r = await rig(t)
      const c = await p.open(r)
      t.match(c.s.remoteAddress, /^127\./)
      c.s.resetAndDestroy()
      await c.gone
      await check(t, r, p, { n1: p.records.n1.map(() => 'reset'), n2: p.records.n2.map(() => 'reset') })
      for (const l of [...r.n1.access(), ...r.n2.access()]) t.equal(l.bytes_received, 4, `${l.direction as string}: the bytes before the reset`)
    })
    const deniedOn = p.deniedOn
    if (deniedOn === undefined) continue
    t.test(`${p.name}: a policy swap that denies it while relayed`, async (t) => {
      const r = await rig(t)
      const c = await p.open(r)
      t.equal((deniedOn === 'n1' ? r.authz1 : r.authz2).swap(DENY_ALL), 1, 'closed by the swap')
      t.equal(await c.gone, 'ECONNRESET', 'the client is reset')
      // The denying node's records end denied; across the tunnel the source's record sees the stream reset.
      const result = (node: 'n1' | 'n2'): string[] => p.records[node].map(() => node === deniedOn ? 'denied' : 'reset')
      await check(t, r, p, { n1: result('n1'), n2: result('n2') })
      const inb = r[deniedOn].access().find((l) => l.direction === 'inbound')
      t.match(inb, { authz: { policy: 'app/deny-all' } })
      if (p.records[deniedOn].length === 2) t.match(r[deniedOn].access().find((l) => l.direction === 'outbound'), { source_principal: CLIENT, authz: { policy: 'app/deny-all' } })
    })
  }
})
