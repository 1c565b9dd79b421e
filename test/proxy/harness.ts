import { connect, createServer, type Server, type Socket } from 'node:net'
import { Writable } from 'node:stream'
import { Worker } from 'node:worker_threads'
import pino from 'pino'
import { parseClusterList } from '../../src/discovery/cluster-list'
import { type Connector, createInboundHandler, createOutboundHandler, type OriginalDstLookup, RouteTable, serve } from '../../src/proxy'
import type { Pod } from '../../src/discovery/model'
import { createAccessLog } from '../../src/telemetry/access-log'
import { createConnTelemetry } from '../../src/telemetry/conn-telemetry'
import { ProxyMetrics } from '../../src/telemetry/metrics'
import type { Logger } from '../../src/telemetry/logger'
import { listText } from '../discovery/fixture'
import { waitFor } from '../helpers/wait'

// Loopback stand-ins for what the agent wires from the addon: the pod's listener is a
// plain 127.0.0.1:0 server, the connector connects plainly, and the original
// destination comes from a table the test fills. Everything else is the real proxy.

export interface Teardown { teardown: (fn: () => void | Promise<void>) => void }

export function captureLog (): { log: Logger, lines: any[] } {
  const lines: any[] = []
  const stream = new Writable({ write (chunk, _enc, cb) { for (const l of String(chunk).split('\n')) if (l !== '') lines.push(JSON.parse(l)); cb() } })
  return { log: pino({ level: 'info' }, stream), lines }
}

export function routesFor (items: Array<Record<string, unknown>>): RouteTable {
  const routes = new RouteTable()
  routes.update(parseClusterList(listText(items), 'test', 1))
  return routes
}

export function podNamed (routes: RouteTable, name: string): Pod {
  for (const ip of ['10.244.0.5', '10.244.0.10', '10.244.0.11', '127.0.0.7']) {
    const p = routes.index.podByIP(ip)
    if (p?.name === name) return p
  }
  throw new Error(`no pod ${name}`)
}

/** A connector that connects plainly, as a default net.connect would (not half-open). */
export const plainConnector: Connector = (req) => connect({ host: req.host, port: req.port, family: req.family })

export async function listen (t: Teardown, host: string, onSocket: (s: Socket) => void, opts: { allowHalfOpen?: boolean } = {}): Promise<{ server: Server, port: number }> {
  const server = createServer({ allowHalfOpen: opts.allowHalfOpen ?? false }, onSocket)
  await new Promise<void>((resolve) => server.listen({ host, port: 0 }, resolve))
  t.teardown(async () => { await new Promise((resolve) => server.close(resolve)) })
  const addr = server.address()
  if (addr === null || typeof addr === 'string') throw new Error('no address')
  return { server, port: addr.port }
}

export interface ProxyUnderTest {
  port: number
  metrics: ProxyMetrics
  lines: any[]
  /** Resolves after `n` access lines have been written (bounded). */
  accessLines: (n: number, ms?: number) => Promise<any[]>
}

export async function startOutbound (t: Teardown, o: { routes: RouteTable, pod: Pod, lookup: OriginalDstLookup, connector?: Connector, connectTimeoutMs?: number }): Promise<ProxyUnderTest> {
  const { log, lines } = captureLog()
  const metrics = new ProxyMetrics()
  const handler = createOutboundHandler({
    pod: o.pod,
    originalDst: o.lookup,
    routes: o.routes,
    connector: o.connector ?? plainConnector,
    telemetry: createConnTelemetry(metrics, createAccessLog(log)),
    connectTimeoutMs: o.connectTimeoutMs ?? 2000
  })
  return await start(t, handler, metrics, lines)
}

export async function startInbound (t: Teardown, o: { routes: RouteTable, pod: Pod, host: string, connector: Connector }): Promise<ProxyUnderTest> {
  const { log, lines } = captureLog()
  const metrics = new ProxyMetrics()
  const handler = createInboundHandler({ pod: o.pod, routes: o.routes, connector: o.connector, telemetry: createConnTelemetry(metrics, createAccessLog(log)), connectTimeoutMs: 2000 })
  return await start(t, handler, metrics, lines, o.host)
}

async function start (t: Teardown, handler: (s: Socket) => void, metrics: ProxyMetrics, lines: any[], host = '127.0.0.1'): Promise<ProxyUnderTest> {
  const server = await serve({ host, port: 0 }, handler, (err) => { throw err })
  t.teardown(async () => { await new Promise((resolve) => server.close(resolve)) })
  const port = (server.address() as { port: number }).port
  return {
    port,
    metrics,
    lines,
    accessLines: async (n, ms = 3000) => { await waitFor(() => lines.length >= n, { timeoutMs: ms, what: `${n} access lines` }); return lines }
  }
}

/**
 * A listener that completes no more handshakes: it lives in a worker thread whose event
 * loop is then blocked, and its accept queue (backlog 1; Node reads 0 as "default") is filled, so further SYNs are
 * dropped by the kernel and a connect to it hangs until the caller's timeout.
 */
export async function blackhole (t: Teardown): Promise<number> {
  const flag = new Int32Array(new SharedArrayBuffer(4))
  const worker = new Worker(`
    const { parentPort, workerData } = require('node:worker_threads')
    const net = require('node:net')
    const s = net.createServer()
    s.listen({ host: '127.0.0.1', port: 0, backlog: 1 }, () => {
      parentPort.postMessage(s.address().port)
      // Block this thread's loop (bounded: at most 30 s) until the test releases it.
      for (let i = 0; i < 300 && Atomics.load(workerData, 0) === 0; i++) Atomics.wait(workerData, 0, 0, 100)
      s.close()
    })`, { eval: true, workerData: flag })
  const port: number = await new Promise((resolve) => worker.once('message', resolve))
  const fillers: Socket[] = []
  t.teardown(async () => {
    Atomics.store(flag, 0, 1); Atomics.notify(flag, 0)
    for (const f of fillers) f.destroy()
    await worker.terminate()
  })
  for (let i = 0; i < 3; i++) {
    const f = connect({ host: '127.0.0.1', port })
    f.on('error', () => {})
    fillers.push(f)
    await new Promise((resolve) => setTimeout(resolve, 30))
  }
  return port
}
