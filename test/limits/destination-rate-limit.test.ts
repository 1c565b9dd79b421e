import t from 'tap'
import { connect } from 'node:net'
import { Agent, createServer, request } from 'node:http'
import { Registry } from 'prom-client'
import { parseClusterList } from '../../src/discovery/cluster-list'
import type { HttpDownstream } from '../../src/http/context'
import { HttpEngine } from '../../src/http/engine'
import { createHttpRefusals } from '../../src/http/refusals'
import { L7Table } from '../../src/l7/table'
import { NodeLimits } from '../../src/limits/node-limits'
import { PodRateLimits } from '../../src/limits/pod-rate-limits'
import { rateLimitSelector, type RateLimitObject } from '../../src/limits/rate-limit-select'
import { createInboundHandler, RouteTable, serve, type Mesh } from '../../src/proxy'
import { InboundAuthorizer } from '../../src/proxy/authorize'
import { createAccessLog } from '../../src/telemetry/access-log'
import { createConnTelemetry } from '../../src/telemetry/conn-telemetry'
import { ProxyMetrics } from '../../src/telemetry/metrics'
import { listText, namespaceObj, podObj, serviceObj } from '../discovery/fixture'
import { captureLog } from '../proxy/harness'

// The destination's rate limit: which RateLimit applies to a pod (selector, targetRefs,
// the lowest rate when several do) and the destination's HTTP handling carrying the pod's
// node-wide bucket (HttpDownstream.rateLimit) on the real inbound path.

function rl (name: string, spec: Partial<RateLimitObject['spec']> & { limit: RateLimitObject['spec']['limit'] }, namespace = 'app'): RateLimitObject {
  return { metadata: { namespace, name }, spec }
}

const snapshot = parseClusterList(listText([
  namespaceObj('app', { 'ferry.dev/mesh': 'enabled', 'ferry.dev/l7': 'enabled' }),
  podObj({ name: 'api', ips: ['127.0.0.1'], labels: { app: 'api', tier: 'front' } }),
  podObj({ name: 'db', ips: ['10.244.0.9'], labels: { app: 'db' } }),
  serviceObj({ name: 'api', clusterIPs: ['10.96.0.10'], selector: { app: 'api' }, ports: [{ port: 80 }] })
]), 'test', 1)
const routes = new RouteTable()
routes.update(snapshot)
const api = routes.index.podByIP('127.0.0.1')!
const db = routes.index.podByIP('10.244.0.9')!
const serviceOf = (ns: string, name: string): any => snapshot.services.find((s) => s.namespace === ns && s.name === name)

t.test('which RateLimit applies to a pod', async (t) => {
  const none = rateLimitSelector([], serviceOf)
  t.equal(none(api), null)
  const bySelector = rateLimitSelector([rl('front', { selector: { matchLabels: { tier: 'front' } }, limit: { requests: 100, per: 'minute' } })], serviceOf)
  t.same(bySelector(api), { requests: 100, perSeconds: 60, policy: 'RateLimit app/front' })
  t.equal(bySelector(db), null)
  const byService = rateLimitSelector([rl('svc', { targetRefs: [{ kind: 'Service', name: 'api' }], limit: { requests: 5, per: 'second', burst: 10 } })], serviceOf)
  t.same(byService(api), { requests: 5, perSeconds: 1, burst: 10, policy: 'RateLimit app/svc' })
  t.equal(byService(db), null)
  const namespaceWide = rl('all', { limit: { requests: 1000, per: 'second' } })
  const lowest = rateLimitSelector([namespaceWide, rl('front', { selector: { matchLabels: { tier: 'front' } }, limit: { requests: 100, per: 'minute' } }), rl('other', { limit: { requests: 1, per: 'second' } }, 'elsewhere')], serviceOf)
  t.equal(lowest(api)?.policy, 'RateLimit app/front', 'the lowest rate of those that apply')
  t.equal(lowest(db)?.policy, 'RateLimit app/all')
})

t.test('the destination hands the engine the pod\'s node-wide bucket', async (t) => {
  const app = createServer((req, res) => { req.resume(); res.end('ok') })
  await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { app.closeAllConnections(); app.close() })
  const appPort = (app.address() as { port: number }).port
  const { log } = captureLog()
  const table = L7Table.build(snapshot)
  const authz = new InboundAuthorizer({ log })
  const mesh: Mesh = { node: 'n1', identities: null, tunnels: null, tunnelPort: 15008, localPod: () => null, inboundMode: () => ({ mode: 'PERMISSIVE' }) as any, authz }
  const engine = new HttpEngine({ telemetry: { requestEnded () {} }, refusals: createHttpRefusals(new Registry()) })
  t.teardown(() => { engine.close() })
  // What the engine is given, recorded on the way in (the real engine serves it).
  const given: HttpDownstream[] = []
  const serveReal = engine.serve.bind(engine)
  engine.serve = (end, version, ds, ...rest) => { given.push(ds); serveReal(end, version, ds, ...rest) }
  const memory = NodeLimits.allocate({ backends: 64, endpoints: 64, pods: 64 })
  const rateLimits = new PodRateLimits(new NodeLimits(memory))
  rateLimits.replace(rateLimitSelector([rl('front', { selector: { matchLabels: { tier: 'front' } }, limit: { requests: 100, per: 'hour' } })], serviceOf))
  const handler = createInboundHandler({
    pod: api,
    routes,
    connector: () => connect({ host: '127.0.0.1', port: appPort }),
    telemetry: createConnTelemetry(new ProxyMetrics(), createAccessLog(log)),
    connectTimeoutMs: 2000,
    mesh,
    l7: { table: () => table, engine, normalizePath: null, detected () {}, rateLimitOf: (pod) => rateLimits.of(pod) }
  })
  const server = await serve({ host: '127.0.0.1', port: 0 }, handler, (err) => { throw err })
  t.teardown(() => { server.close() })
  const port = (server.address() as { port: number }).port
  const agent = new Agent({ keepAlive: false })
  t.teardown(() => { agent.destroy() })
  const status = async (): Promise<number> => await new Promise((resolve, reject) => {
    request({ host: '127.0.0.1', port, path: '/', agent }, (res) => { res.resume(); res.on('end', () => { resolve(res.statusCode ?? 0) }) }).on('error', reject).end()
  })
  t.equal(await status(), 200)
  t.equal(await status(), 200)
  t.equal(given.length, 2)
  const limit = given[0].rateLimit
  t.not(limit, null, 'the downstream carries the pod\'s rate limit')
  t.equal(given[1].rateLimit, limit, 'the same limiter for every connection to the pod')
  // It is the node's bucket: another view of the memory (another worker) takes from it too.
  const other = new NodeLimits(memory).rateLimitFor(api.uid, { requests: 100, perSeconds: 3600 }, 'RateLimit app/front')
  const before = limit?.take(Date.now())?.remaining ?? -1
  other.take(Date.now())
  t.equal(limit?.take(Date.now())?.remaining, before - 2, 'a take from the other view left one token less')
})
