import t from 'tap'
import { get } from 'node:http'
import { Registry } from 'prom-client'
import { startAdminServers, type AdminDeps } from '../../src/agent/admin-server'
import type { AdminAuth } from '../../src/agent/admin-auth'
import type { PodEnroller } from '../../src/agent/enroller'
import type { SockmapReportShape } from '../../src/agent/platform'
import type { WorkerSet } from '../../src/agent/workers'
import { InboundAuthorizer } from '../../src/proxy/authorize'
import { createLogger } from '../../src/telemetry/logger'
import { ProxyMetrics } from '../../src/telemetry/metrics'
import { SOCKMAP_METRICS, registerSockmapMetrics } from '../../src/telemetry/sockmap-metrics'
import { counter } from '../telemetry/prom-text'

// How the agent reports the sockmap shortcut: on or off (and why) in /metrics and
// /debug/capture, with sk_msg's kernel counters. Capture's side (the BTF check that
// turns it off) is test/capture/sk-msg-fields.test.ts.

const OFF: SockmapReportShape = {
  status: { enabled: false, code: 'FERRY_ERR_SOCKMAP_BTF', reason: 'the kernel\'s BTF (/x) lacks sk_psock.msg_tot_len', missing: ['sk_psock.msg_tot_len'] },
  stats: { fromPodMsgs: 0n, fromPodBytes: 0n, toPodMsgs: 0n, toPodBytes: 0n, tcpMsgs: 0n }
}
const ON: SockmapReportShape = {
  status: { enabled: true },
  stats: { fromPodMsgs: 2n, fromPodBytes: 300n, toPodMsgs: 4n, toPodBytes: 5000n, tcpMsgs: 1n }
}

t.test('metrics: on with its counters, or off with the code that kept it off', async (t) => {
  let report: SockmapReportShape | null = ON
  const registry = new Registry()
  registerSockmapMetrics(registry, () => report)
  let text = await registry.metrics()
  t.equal(counter(text, SOCKMAP_METRICS.enabled), 1)
  t.equal(counter(text, SOCKMAP_METRICS.messages, { path: 'from_pod' }), 2)
  t.equal(counter(text, SOCKMAP_METRICS.messages, { path: 'to_pod' }), 4)
  t.equal(counter(text, SOCKMAP_METRICS.messages, { path: 'tcp' }), 1)
  t.equal(counter(text, SOCKMAP_METRICS.bytes, { direction: 'from_pod' }), 300)
  t.equal(counter(text, SOCKMAP_METRICS.bytes, { direction: 'to_pod' }), 5000)
  report = OFF
  text = await registry.metrics()
  t.match(text, /ferry_sockmap_enabled\{reason="FERRY_ERR_SOCKMAP_BTF"\} 0/)
  t.notMatch(text, /ferry_sockmap_enabled\{reason=""\}/, 'one series: the state now')
  report = null
  text = await registry.metrics()
  t.notMatch(text, /ferry_sockmap_enabled\{/, 'no capture (test platforms): no series')
})

async function getJson (port: number, path: string): Promise<any> {
  return await new Promise((resolve, reject) => {
    get({ host: '127.0.0.1', port, path }, (res) => {
      let body = ''
      res.on('data', (c) => { body += String(c) })
      res.on('end', () => { resolve(JSON.parse(body)) })
    }).on('error', reject)
  })
}

t.test('/debug/capture: the shortcut\'s state, why it is off, and its counters', async (t) => {
  const log = createLogger({ name: 'sockmap-report-test', level: 'silent' })
  const metrics = new ProxyMetrics()
  let report: SockmapReportShape | null = OFF
  const deps: AdminDeps = {
    adminPort: 0,
    readyPort: 0,
    metrics,
    scrape: async () => await metrics.text(),
    workers: { stats: async () => [], size: 1 } as unknown as WorkerSet,
    enroller: { status: () => ({ ready: true, generation: 1, enrolled: [], pending: [] }), enrolledPods: () => [] } as unknown as PodEnroller,
    identities: null,
    tunnel: null,
    log,
    authz: new InboundAuthorizer({ log, metrics, requireConfig: false }),
    cluster: () => null,
    node: 'n1',
    trustDomain: 'cluster.local',
    // Authentication is admin-auth.test.ts's subject: every caller is let in here.
    auth: { check: async () => ({ ok: true }) } as unknown as AdminAuth,
    sockmap: () => report
  }
  const servers = await startAdminServers(deps)
  t.teardown(async () => { await servers.close() })
  t.same(await getJson(servers.adminPort, '/debug/capture'), { sockmap: { ...OFF.status, stats: { fromPodMsgs: 0, fromPodBytes: 0, toPodMsgs: 0, toPodBytes: 0, tcpMsgs: 0 } } })
  report = ON
  t.same(await getJson(servers.adminPort, '/debug/capture'), { sockmap: { enabled: true, stats: { fromPodMsgs: 2, fromPodBytes: 300, toPodMsgs: 4, toPodBytes: 5000, tcpMsgs: 1 } } })
  report = null
  t.same(await getJson(servers.adminPort, '/debug/capture'), { sockmap: null })
})
