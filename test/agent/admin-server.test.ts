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
