import t from 'tap'
import type { WorkerSet } from '../../src/agent/workers'
import { fstatSync } from 'node:fs'
import { get } from 'node:http'
import { startAdminServers, type AdminDeps } from '../../src/agent/admin-server'
import { createAdminAuth } from '../../src/agent/admin-auth'
import type { PodEnroller } from '../../src/agent/enroller'
import { tcpListen } from '../../src/native'
import { InboundAuthorizer } from '../../src/proxy/authorize'
import { createLogger } from '../../src/telemetry/logger'
import { ProxyMetrics } from '../../src/telemetry/metrics'

// The admin and readiness servers on listening sockets given by fd — how a new agent
// serves the ports it took over from the agent before it (src/handoff/) — and the fds
// of the sockets they bind themselves, which an agent hands to the next one.

const log = createLogger({ name: 'admin-test', level: 'silent' })
const metrics = new ProxyMetrics()
// The enroller's two read-only views readiness uses: an agent with nothing to enroll.
const enroller = { status: () => ({ ready: true, generation: 3, enrolled: [], pending: [] }), enrolledPods: () => [] } as unknown as PodEnroller
const deps: AdminDeps = {
  adminPort: 0,
  readyPort: 0,
  metrics,
  scrape: async () => await metrics.text(),
  // No worker serves anything here: the views over workers are empty.
  workers: { stats: async () => [], tunnelStats: async () => ({ port: 0, server: {}, pool: {}, workers: [] }), policyGeneration: async () => 0, size: 1, host: () => null } as unknown as WorkerSet,
  enroller,
  identities: null,
  tunnel: null,
  log,
  authz: new InboundAuthorizer({ log, metrics, requireConfig: false }),
  cluster: () => null,
  node: 'n1',
  trustDomain: 'cluster.local',
  auth: createAdminAuth({ tokenFile: null, kubernetes: null, node: 'n1' })
}

async function status (port: number, path: string): Promise<number> {
  return await new Promise((resolve, reject) => {
    get({ host: '127.0.0.1', port, path }, (res) => { res.resume(); resolve(res.statusCode ?? 0) }).on('error', reject)
  })
}

t.test('given listening fds, the servers serve on them and own them', async (t) => {
  const adminFd = tcpListen({ family: 4, address: '127.0.0.1', port: 0, backlog: 16 })
  const readyFd = tcpListen({ family: 4, address: '127.0.0.1', port: 0, backlog: 16 })
  const servers = await startAdminServers({ ...deps, adminPort: 1, readyPort: 2, listeners: { admin: { fd: adminFd }, ready: { fd: readyFd } } })
  t.same(servers.fds, { admin: adminFd, ready: readyFd })
  t.not(servers.adminPort, 1, 'the port is the socket\'s, not --admin-port')
  t.equal(await status(servers.readyPort, '/healthz/ready'), 200)
  t.equal(await status(servers.adminPort, '/metrics'), 200)
  await servers.close()
  t.throws(() => fstatSync(adminFd), { code: 'EBADF' }, 'closed with the server')
})

t.test('binding the ports itself, it reports the fds it listens on', async (t) => {
  const servers = await startAdminServers(deps)
  t.teardown(async () => { await servers.close() })
  t.ok(fstatSync(servers.fds.admin).isSocket())
  t.ok(fstatSync(servers.fds.ready).isSocket())
  t.equal(await status(servers.readyPort, '/healthz/ready'), 200)
})

t.test('a port in use is FERRY_ERR_LISTEN naming the option', async (t) => {
  const servers = await startAdminServers(deps)
  t.teardown(async () => { await servers.close() })
  await t.rejects(startAdminServers({ ...deps, adminPort: 0, readyPort: servers.readyPort }), { code: 'FERRY_ERR_LISTEN', errno: 'EADDRINUSE', message: new RegExp(`--ready-port ${servers.readyPort}: cannot listen on 0.0.0.0:${servers.readyPort}`) })
})

async function postJson (port: number, path: string, authorization?: string): Promise<{ status: number, body: any }> {
  const { request } = await import('node:http')
  return await new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method: 'POST', headers: authorization === undefined ? {} : { authorization } }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => { text += c })
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }) })
    })
    req.on('error', reject)
    req.end()
  })
}

t.test('POST /debug/memory collects every thread\'s garbage, then reports the heaps; an unauthenticated caller is refused', async (t) => {
  const asked: boolean[] = []
  const workerHeap = { collected: true, heapUsedBytes: 1000, heapTotalBytes: 2000, externalBytes: 0, arrayBuffersBytes: 0 }
  const workers = { ...deps.workers, memory: async (gc: boolean) => { asked.push(gc); return [{ worker: 0, heap: workerHeap }] } } as unknown as WorkerSet
  const servers = await startAdminServers({ ...deps, workers, auth: { schemes: ['test'], check: async (a) => a === 'Bearer ok' ? { ok: true, who: 'test' } : { ok: false, status: 401, reason: 'no token' } } })
  t.teardown(async () => { await servers.close() })

  let garbage: object | null = { big: Buffer.alloc(1 << 20).toString('hex') }
  const weak = new WeakRef(garbage)
  garbage = null
  const r = await postJson(servers.adminPort, '/debug/memory', 'Bearer ok')
  t.equal(r.status, 200)
  t.equal(weak.deref(), undefined, 'an object nothing holds is gone after the collection')
  t.equal(r.body.collected, true)
  t.same(asked, [true], 'every worker is asked to collect too')
  t.ok(r.body.main.heapUsedBytes > 0 && r.body.rssBytes > 0)
  t.equal(r.body.heapUsedBytes, r.body.main.heapUsedBytes + 1000, 'the heaps of the main thread and of each worker, summed')
  t.same(r.body.workers, [{ worker: 0, heap: workerHeap }])

  t.equal((await postJson(servers.adminPort, '/debug/memory')).status, 401)
  t.equal(await status(servers.adminPort, '/debug/memory'), 401, 'GET as well')
})
