import { execFile, spawn } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { connect, createServer, type Server, type Socket } from 'node:net'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { Registry } from 'prom-client'
import { parse as parseYaml } from 'yaml'
import { createRequestBalancer } from '../src/balancer/request-factory'
import type { ClusterSnapshot, Pod } from '../src/discovery/model'
import { ServiceIndex, type Endpoint } from '../src/discovery/service-index'
import { HttpEngine } from '../src/http/engine'
import type { HttpDownstream, UpstreamTarget } from '../src/http/context'
import { NodeLimits } from '../src/limits/node-limits'
import { Conn } from '../src/proxy/conn'
import type { HTTPRouteSpec } from '../src/routing/api-types'
import type { RouteObject } from '../src/routing/cluster-view'
import { Router } from '../src/routing/router'
import { RoutingTable } from '../src/routing/routing-table'
import { IstioLabeler, type PodLike } from '../src/telemetry/istio-labels'
import { createLogger } from '../src/telemetry/logger'
import { IstioRequestTelemetry } from '../src/telemetry/request-telemetry'
import { NO_TRACING } from '../src/telemetry/tracing/no-tracing'

// One HTTP engine hop on loopback, for its CPU per request without a lab's noise: the
// engine in this process with the data plane's real request telemetry (Istio's metrics,
// the per-request access line to /dev/null) and no tracer (as an agent without an OTLP
// endpoint), a 1 KiB upstream in a child process, h2load (HTTP/1.1 keep-alive) as the
// client. Prints this process's CPU per request: the cost of terminating and forwarding
// one request (one reporter), which the cross-node path pays twice. --route: the source's
// requests carried out by the real router (src/routing/router.ts, with the agent's request
// balancer and node-wide limits) under the L7 lab's HTTPRoute (benchmarks/lab/bench-l7-route.yaml:
// one backend, a retry policy, a request timeout), compiled from a one-Service cluster whose
// endpoint is the upstream: what a route adds to one hop.
//
//   npx ts-node-transpile-only benchmarks/l7-engine.ts [--seconds 5] [--connections 16] [--reporter source|destination] [--rate N] [--telemetry full|metrics|none] [--route]

const UPSTREAM = `
const body = Buffer.alloc(1024, 120)
require('node:http').createServer((req, res) => { res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length }); res.end(body) })
  .listen(0, '127.0.0.1', function () { process.stdout.write(String(this.address().port) + '\\n') })
`

const WEB: PodLike = { name: 'client-1', namespace: 'bench', workload: 'client', labels: { app: 'client', version: 'v1' } }
const SERVER: PodLike = { name: 'server-l7', namespace: 'bench', workload: 'server-l7', labels: { app: 'server-l7', version: 'v1' } }

/** The lab's route file, from benchmarks/ (ts-node) or dist/benchmarks/ (compiled). */
const ROUTE_FILE = [join(__dirname, 'lab'), join(__dirname, '..', '..', 'benchmarks', 'lab')].map((d) => join(d, 'bench-l7-route.yaml')).find((f) => existsSync(f)) ?? 'benchmarks/lab/bench-l7-route.yaml'

/**
 * The route function the source's proxy would hold for a connection to the routed Service:
 * a cluster of that Service (its port as in the lab) with one ready pod at 127.0.0.1
 * whose target port is the upstream's, and the lab's HTTPRoute, compiled and served by a
 * Router as a data-plane worker builds one.
 */
function routeOf (upstreamPort: number, dial: (ep: Endpoint) => UpstreamTarget): NonNullable<HttpDownstream['route']> {
  const route = parseYaml(readFileSync(ROUTE_FILE, 'utf8')) as RouteObject<HTTPRouteSpec>
  const parent = route.spec.parentRefs?.[0]
  if (parent?.port == null) throw new Error(`${ROUTE_FILE}: the route names no Service port`)
  const namespace = route.metadata.namespace ?? 'default'
  const pod: Pod = {
    ...SERVER, uid: 'bench-server-l7', nodeName: 'node2', serviceAccountName: 'server', annotations: {}, podIPs: ['127.0.0.1'], hostIPs: ['127.0.0.1'],
    ports: [], probePorts: [], ready: true, phase: 'Running', hostNetwork: false, labels: { app: 'server-l7' }
  } as Pod
  const cluster: ClusterSnapshot = {
    generation: 1,
    origin: 'l7-engine',
    namespaces: [{ name: namespace, labels: {} }],
    nodes: [{ name: 'node2', labels: {} }],
    pods: [pod],
    services: [{ name: parent.name, namespace, annotations: {}, clusterIPs: ['10.96.0.10'], ports: [{ name: 'http', port: parent.port, targetPort: upstreamPort, protocol: 'TCP', appProtocol: null }], selector: { app: 'server-l7' }, publishNotReadyAddresses: false }]
  }
  const index = ServiceIndex.build(cluster)
  const router = new Router({ balancers: (policy) => createRequestBalancer<Endpoint>(policy), limits: new NodeLimits(NodeLimits.allocate()) })
  router.update(RoutingTable.build(cluster, { httpRoutes: [route], grpcRoutes: [], virtualServices: [], destinationRules: [] }), index)
  const entry = [...index.entries()].find((e) => e.service.name === parent.name && e.port.port === parent.port)
  const fn = entry === undefined ? null : router.forConnection(entry, { namespace: WEB.namespace, labels: WEB.labels, ip: '127.0.0.2' }, dial)
  if (fn === null) throw new Error(`${ROUTE_FILE}: no routing for ${namespace}/${parent.name}:${parent.port}`)
  return fn
}

async function upstream (): Promise<{ port: number, stop: () => void }> {
  const child = spawn(process.execPath, ['-e', UPSTREAM], { stdio: ['ignore', 'pipe', 'inherit'] })
  const port = await new Promise<number>((resolve) => { child.stdout.once('data', (d: Buffer) => { resolve(Number(String(d).trim())) }) })
  return { port, stop: () => { child.kill() } }
}

async function main (): Promise<void> {
  const { values } = parseArgs({ options: { seconds: { type: 'string' }, connections: { type: 'string' }, reporter: { type: 'string' }, rate: { type: 'string' }, telemetry: { type: 'string' }, route: { type: 'boolean' } }, strict: true })
  const seconds = Number(values.seconds ?? 5)
  const connections = Number(values.connections ?? 16)
  const reporter = values.reporter === 'destination' ? 'destination' : 'source'
  const routed = values.route === true
  if (routed && reporter !== 'source') throw new Error('--route: routes apply at the source (--reporter source)')
  const up = await upstream()
  const pods = new Map<string, PodLike>([['127.0.0.1', SERVER], ['127.0.0.2', WEB]])
  const labeler = new IstioLabeler({ pods: { podByName: (ns, name) => [...pods.values()].find((p) => p.namespace === ns && p.name === name), podByIP: (ip) => pods.get(ip) } })
  const log = createLogger({ name: 'ferry', level: 'info', destination: '/dev/null' })
  // --telemetry full (default) | metrics (no access line) | none: what each part costs.
  const mode = values.telemetry ?? 'full'
  const telemetry = mode === 'none' ? { requestEnded () {} } : new IstioRequestTelemetry({ registry: new Registry(), labeler, log: mode === 'metrics' ? null : log })
  const engine = new HttpEngine({ telemetry, tracer: NO_TRACING })
  const clock = (): number => performance.now()
  let target: UpstreamTarget | null = null
  let route: HttpDownstream['route'] = null
  /** Requests the route decided (printed: proof that the routed run was routed). */
  let planned = 0
  const server: Server = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (socket: Socket) => {
    socket.on('error', () => {})
    const record = new Conn(reporter === 'source' ? 'outbound' : 'inbound', socket, clock)
    Object.assign(record.source, { pod: WEB.name, namespace: WEB.namespace, workload: WEB.workload, ip: '127.0.0.2', port: socket.remotePort ?? 0 })
    record.service = 'server-l7.bench'
    record.destination = { pod: SERVER.name, namespace: SERVER.namespace, workload: SERVER.workload }
    record.sourcePrincipal = 'spiffe://cluster.local/ns/bench/sa/client'
    record.destinationPrincipal = 'spiffe://cluster.local/ns/bench/sa/server'
    record.mtls = true
    target ??= {
      key: `bench|127.0.0.1:${up.port}`,
      address: { address: '127.0.0.1', port: up.port, family: 4 },
      record,
      local: null,
      dial: async () => await new Promise((resolve, reject) => {
        const s = connect({ host: '127.0.0.1', port: up.port, allowHalfOpen: true })
        s.once('connect', () => { resolve(s) })
        s.once('error', reject)
      })
    }
    if (routed && route === null) {
      const fn = routeOf(up.port, () => target!)
      route = (view) => { planned++; return fn(view) }
    }
    const ds: HttpDownstream = { reporter, record, authorizer: null, normalizePath: null, route, rateLimit: null, pick: () => target }
    engine.serve(socket, 'http1', ds)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  const url = `http://127.0.0.1:${port}/1k`
  const h2load = async (secs: number): Promise<string> => await new Promise((resolve, reject) => {
    const rate = values.rate === undefined ? [] : ['--rps', String(Number(values.rate) / connections)]
    execFile('h2load', ['--h1', '-c', String(connections), '-D', String(secs), ...rate, url], { maxBuffer: 1 << 24 }, (err, out) => { if (err !== null) reject(err); else resolve(out) })
  })
  await h2load(2)
  const cpu0 = process.cpuUsage()
  const out = await h2load(seconds)
  const cpu = process.cpuUsage(cpu0)
  const done = Number(/(\d+) succeeded/.exec(out)?.[1] ?? 0)
  const lat = /time for request:\s+(\S+)\s+(\S+)\s+(\S+)/.exec(out)
  const rps = /finished in \S+, (\S+) req\/s/.exec(out)?.[1]
  process.stdout.write(`${reporter}${routed ? ', routed' : ''} (telemetry ${mode}): ${String(rps)} req/s, mean ${String(lat?.[3])}, max ${String(lat?.[2])}; ${done} requests, ` +
    `${((cpu.user + cpu.system) / done).toFixed(1)} µs CPU/request (user ${(cpu.user / done).toFixed(1)}, system ${(cpu.system / done).toFixed(1)})` +
    `${routed ? `; ${planned} requests routed in all` : ''}\n`)
  engine.close()
  server.close()
  up.stop()
}

main().catch((e) => { process.stderr.write(`l7-engine: ${(e as Error).stack ?? String(e)}\n`); process.exitCode = 1 })
