import t, { type Test } from 'tap'
import { connect, type Socket } from 'node:net'
import type { NetnsHandle, SockKeyShape } from '../../src/agent/platform'
import type { Pod } from '../../src/discovery/model'
import type { LocalPod, Mesh } from '../../src/proxy'
import { createAccessLog } from '../../src/telemetry/access-log'
import { createConnTelemetry } from '../../src/telemetry/conn-telemetry'
import { ProxyMetrics } from '../../src/telemetry/metrics'
import type { DataPathCapture } from '../../src/worker/data-path-capture'
import { socketFd } from '../../src/worker/hop-shortcut'
import { type ServedPod, servePod, unservePod } from '../../src/worker/pod-serving'
import { namespaceObj } from '../discovery/fixture'
import { counter } from '../telemetry/prom-text'
import { dial } from '../helpers/net'
import { waitFor } from '../helpers/wait'
import { captureLog, listen, routesFor } from '../proxy/harness'
import { identities, podOn } from '../helpers/mesh-harness'

// The hop shortcut has one owner, the worker's decorator of a pod's sockets
// (src/worker/hop-shortcut.ts, wired in src/worker/pod-serving.ts); the proxy only asks
// its Splicer for same-node connections. Served through the real pod serving and proxy
// handlers on loopback ("pods" are 127.0.0.x addresses, a netns is a cookie, the netns
// connector connects plainly); capture records what it is asked to add, as the agent
// tests' loopback platform does (what the kernel then does with it is
// test/capture/sockmap.test.ts's and test/e2e/capture.test.ts's subject). Guards which
// sockets join their hop — an outbound listener's accepted socket on the direct and
// tunnel paths, a socket made to the pod's own address (inbound delivery), each once its
// connection is busy — that a spliced connection's sockets never do, and that --sockmap
// off asks for nothing.

t.setTimeout(60_000)

class RecordingCapture implements DataPathCapture {
  readonly hops: Array<{ fd: number, key: SockKeyShape }> = []
  readonly splices: Array<[SockKeyShape, SockKeyShape]> = []
  /** What eBPF "recorded" for the client pod's next captured connection. */
  destination: { address: string, port: number } | null = null
  originalDst (cookie: bigint): { address: string, port: number } | null {
    return cookie === 1n ? this.destination : null
  }

  addHopEnd (fd: number, key: SockKeyShape): boolean { this.hops.push({ fd, key }); return true }
  splice (a: SockKeyShape, b: SockKeyShape): boolean { this.splices.push([a, b]); return true }
  unsplice (): { fromA: number, fromB: number } { return { fromA: 0, fromB: 0 } }
}

function echo (s: Socket): void {
  s.on('data', (c: Buffer) => { s.write(c) })
  s.on('end', () => { s.end() })
  s.on('error', () => {})
}

function netnsOf (cookie: bigint): NetnsHandle {
  const no = (): never => { throw new Error('not on loopback') }
  return { path: `/loopback/${cookie}`, fd: -1, cookie, listen: no, socket: no, close: () => {} }
}

/** `rounds` request/echo exchanges from `from` to host:port, then a clean end; resolves with the client's local port. */
async function exchange (host: string, port: number, rounds: number, from?: string): Promise<number> {
  const s = await dial(port, { host, ...(from === undefined ? {} : { localAddress: from }) })
  const failed = new Promise<never>((_resolve, reject) => { s.once('error', reject) })
  failed.catch(() => {})
  for (let i = 0; i < rounds; i++) {
    s.write(`round ${i}`)
    await Promise.race([new Promise((resolve) => s.once('data', resolve)), failed])
  }
  const local = s.localPort as number
  s.end()
  s.resume()
  await new Promise((resolve) => s.once('close', resolve))
  return local
}

async function rig (t: Test, o: { sockmap?: boolean } = {}) {
  const localApp = (await listen(t, '127.0.0.9', echo, { allowHalfOpen: true })).port
  const serverApp = (await listen(t, '127.0.0.8', echo, { allowHalfOpen: true })).port
  const outsiderApp = (await listen(t, '127.0.0.10', echo, { allowHalfOpen: true })).port
  const routes = routesFor([
    namespaceObj('app', { 'ferry.dev/mesh': 'enabled' }),
    podOn({ name: 'client', ips: ['127.0.0.7'], node: 'n1' }),
    podOn({ name: 'server', ips: ['127.0.0.8'], node: 'n1' }),
    podOn({ name: 'local', ips: ['127.0.0.9'], node: 'n1' })
  ])
  const pod = (ip: string): Pod => routes.index.podByIP(ip) as Pod
  const capture = new RecordingCapture()
  const metrics = new ProxyMetrics()
  const { log } = captureLog()
  const locals = new Map<string, LocalPod>()
  const mesh: Mesh = {
    node: 'n1',
    identities: identities(new Map()),
    tunnels: null,
    tunnelPort: 15008,
    localPod: (address) => locals.get(address) ?? null,
    inboundMode: () => ({ mode: 'PERMISSIVE', scope: 'default' })
  }
  // The server pod's inbound listener stands for its app's port: a connection made to it
  // "inside the pod" goes to the app (on loopback they cannot share the port).
  let serverInbound = -1
  const served: ServedPod[] = []
  const serve = async (ip: string, cookie: bigint): Promise<ServedPod> => {
    const p = await servePod({
      uid: ip,
      pod: pod(ip),
      netns: { fd: -1, path: '', cookie },
      listeners: [
        { role: 'outbound', family: 4, address: '127.0.0.1', port: 15001, target: { host: '127.0.0.1', port: 0 } },
        { role: 'inbound', family: 4, address: '127.0.0.1', port: 15006, target: { host: ip, port: 0 } }
      ]
    }, netnsOf(cookie), {
      connectInNetns: (_ns, req) => connect({ host: req.host, port: req.host === '127.0.0.8' && req.port === serverInbound ? serverApp : req.port, allowHalfOpen: true }),
      capture,
      routes,
      telemetry: createConnTelemetry(metrics, createAccessLog(log)),
      log,
      connectTimeoutMs: 2000,
      mesh,
      sockmap: o.sockmap ?? true,
      metrics,
      track: () => {}
    })
    served.push(p)
    return p
  }
  t.teardown(async () => { for (const p of served) await unservePod(p) })
  const portOf = (p: ServedPod, i: number): number => (p.servers[i]!.address() as { port: number }).port
  const client = await serve('127.0.0.7', 1n)
  const local = await serve('127.0.0.9', 2n)
  locals.set('127.0.0.9', { pod: pod('127.0.0.9'), connector: local.connector, netnsCookie: 2n })
  const server = await serve('127.0.0.8', 3n)
  serverInbound = portOf(server, 1)
  const outbound = portOf(client, 0)
  /** The client pod's app connecting to `dst` (captured onto its outbound listener). */
  const fromClient = async (dst: { address: string, port: number }, rounds: number): Promise<number> => {
    capture.destination = dst
    return await exchange('127.0.0.1', outbound, rounds)
  }
  const shortcuts = async (): Promise<{ hop: number, splice: number }> => {
    const text = await metrics.text()
    return { hop: counter(text, 'ferry_sockmap_shortcuts_total', { kind: 'hop' }), splice: counter(text, 'ferry_sockmap_shortcuts_total', { kind: 'splice' }) }
  }
  return { capture, fromClient, shortcuts, outbound, serverInbound, localApp, serverApp, outsiderApp }
}

t.test('direct: the accepted socket joins its hop once busy; the socket to another address does not', async (t) => {
  const r = await rig(t)
  const appPort = await r.fromClient({ address: '127.0.0.10', port: r.outsiderApp }, 3)
  await waitFor(() => r.capture.hops.length >= 1, { timeoutMs: 2000, what: 'a join' })
  t.equal(r.capture.hops.length, 1, 'one hop: the proxy\'s end of the pod\'s captured connect')
  t.match(r.capture.hops[0], { key: { netnsCookie: 1n, localAddress: '127.0.0.1', localPort: r.outbound, remoteAddress: '127.0.0.1', remotePort: appPort } })
  t.ok(r.capture.hops[0]!.fd >= 0, 'by its fd')
  t.same(await r.shortcuts(), { hop: 1, splice: 0 }, 'counted')
})

t.test('a one-request connection never joins', async (t) => {
  const r = await rig(t)
  await r.fromClient({ address: '127.0.0.10', port: r.outsiderApp }, 1)
  t.same(r.capture.hops, [])
  t.same(await r.shortcuts(), { hop: 0, splice: 0 })
})

t.test('inbound delivery: the socket made to the pod\'s own address joins once busy; the accepted one does not', async (t) => {
  const r = await rig(t)
  await exchange('127.0.0.8', r.serverInbound, 3, '127.0.0.10')
  await waitFor(() => r.capture.hops.length >= 1, { timeoutMs: 2000, what: 'a join' })
  t.equal(r.capture.hops.length, 1)
  t.match(r.capture.hops[0], { key: { netnsCookie: 3n, remoteAddress: '127.0.0.8', remotePort: r.serverApp } })
})

t.test('same node: spliced; neither the accepted socket nor the one made in the destination pod joins', async (t) => {
  const r = await rig(t)
  const appPort = await r.fromClient({ address: '127.0.0.9', port: r.localApp }, 3)
  await waitFor(() => r.capture.splices.length >= 1, { timeoutMs: 2000, what: 'a splice' })
  t.equal(r.capture.splices.length, 1, 'one splice')
  const [source, dest] = r.capture.splices[0]!
  t.match(source, { netnsCookie: 1n, localAddress: '127.0.0.1', localPort: appPort, remotePort: r.outbound }, 'the source app\'s end')
  t.match(dest, { netnsCookie: 2n, localAddress: '127.0.0.9', localPort: r.localApp }, 'the destination app\'s end')
  t.same(r.capture.hops, [], 'no hop joined')
  t.same(await r.shortcuts(), { hop: 0, splice: 1 })
})

t.test('--sockmap off: nothing is asked of capture', async (t) => {
  const r = await rig(t, { sockmap: false })
  await r.fromClient({ address: '127.0.0.10', port: r.outsiderApp }, 3)
  await r.fromClient({ address: '127.0.0.9', port: r.localApp }, 3)
  await exchange('127.0.0.8', r.serverInbound, 3, '127.0.0.10')
  t.same(r.capture.hops, [])
  t.same(r.capture.splices, [])
  t.same(await r.shortcuts(), { hop: 0, splice: 0 })
})

t.test('socketFd: an open socket\'s fd, none once closed', async (t) => {
  const { port } = await listen(t, '127.0.0.1', echo)
  const s = connect({ host: '127.0.0.1', port })
  await new Promise((resolve) => s.once('connect', resolve))
  const fd = socketFd(s)
  t.ok(fd !== null && fd > 2, 'a descriptor')
  s.destroy()
  await new Promise((resolve) => s.once('close', resolve))
  t.equal(socketFd(s), null)
})
