import t, { type Test } from 'tap'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { get } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Agent } from '../../src/agent/agent'
import { parseAgentOptions } from '../../src/agent/options'
import { parseClusterList } from '../../src/discovery/cluster-list'
import { L7Table, l7PolicyLookupOf, l7View } from '../../src/l7'
import { listText, namespaceObj, nodeObj, podObj, serviceObj } from '../discovery/fixture'
import { ferry } from '../helpers/cli'
import { waitFor } from '../helpers/wait'
import { captureLog } from '../proxy/harness'
import { loopbackPlatform, RecordingCapture } from '../agent/loopback-platform'

// How L7 engagement is explained: the `l7` section of a real agent's /debug/config (per
// Service port, and per port of each enrolled pod), `ferry policy check` from a directory
// and from the agent, and an invalid ferry.dev/l7 value warned about once however many
// snapshots carry it. Loopback stand-in platform: no root needed.

const TOKEN = 'l7-admin-token'

async function httpGet (port: number, path: string): Promise<{ status: number, body: any }> {
  return await new Promise((resolve, reject) => {
    get({ host: '127.0.0.1', port, path, headers: { authorization: `Bearer ${TOKEN}` } }, (res) => {
      let text = ''
      res.on('data', (c) => { text += String(c) })
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }) })
    }).on('error', reject)
  })
}

function items (dir: string, extra: Record<string, string> = {}): Array<Record<string, unknown>> {
  const netns = join(dir, 'netns-api')
  writeFileSync(netns, '')
  return [
    nodeObj('n1'),
    namespaceObj('shop', { 'ferry.dev/mesh': 'enabled', 'ferry.dev/l7': 'enabled' }),
    namespaceObj('dev', { 'ferry.dev/mesh': 'enabled' }),
    podObj({ name: 'web', namespace: 'dev', uid: 'u-web', node: 'n2', ips: ['10.244.2.5'], labels: { app: 'web' } }),
    podObj({ name: 'api', namespace: 'shop', uid: 'u-api', ips: ['127.0.0.2'], labels: { app: 'api' }, ports: [{ name: 'rpc', containerPort: 9000 }, { name: 'db', containerPort: 6379 }], annotations: { 'lab.ferry.dev/netns': netns, 'lab.ferry.dev/cgroup': '/sys/fs/cgroup/unified/lab/api', ...extra } }),
    serviceObj({ name: 'api', namespace: 'shop', clusterIPs: ['10.96.0.50'], selector: { app: 'api' }, ports: [{ name: 'grpc', port: 90, targetPort: 'rpc' }, { name: 'redis', port: 6379, targetPort: 'db' }] }),
    serviceObj({ name: 'legacy', namespace: 'dev', annotations: { 'ferry.dev/l7': 'on' }, clusterIPs: ['10.96.0.51'], selector: { app: 'web' }, ports: [{ port: 80, appProtocol: 'http' }] })
  ]
}

t.test('/debug/config lists L7 per Service port and enrolled pod port; policy check says it; invalid values warned once', async (t: Test) => {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-l7-admin-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  const tokenFile = join(dir, 'admin.token')
  writeFileSync(tokenFile, `${TOKEN}\n`, { mode: 0o600 })
  const file = join(dir, 'cluster.json')
  writeFileSync(file, listText(items(dir)))
  const { log, lines } = captureLog()
  const args = ['--node', 'n1', '--cluster-file', file, '--pin-root', '/sys/fs/bpf/ferry-test', '--admin-port', '0', '--ready-port', '0', '--admin-token-file', tokenFile]
  const agent = await Agent.start(parseAgentOptions(args), { platform: loopbackPlatform(new RecordingCapture()), log, retry: { initialMs: 50, maxMs: 200 } })
  t.teardown(async () => { await agent.close() })
  const { adminPort, readyPort } = agent.admin
  await waitFor(async () => (await httpGet(readyPort, '/healthz/ready')).body.enrolled?.length === 1, { timeoutMs: 5000, what: 'api enrolled' })

  const { status, body } = await httpGet(adminPort, '/debug/config')
  t.equal(status, 200)
  t.equal(body.l7.generation, 1)
  t.same(body.l7.services.map((s: any) => [s.service, s.port, s.engaged, s.protocol]), [
    ['shop/api', 90, true, 'grpc'],
    ['shop/api', 6379, false, 'tcp'],
    ['dev/legacy', 80, false, 'http1']
  ])
  t.match(body.l7.services[0], { name: 'grpc', appProtocol: null, reason: /label ferry\.dev\/l7=enabled on namespace shop; protocol grpc \(port name "grpc"\)/ })
  t.match(body.l7.services[2], { appProtocol: 'http', reason: /no ferry\.dev\/l7 on service dev\/legacy/ })
  t.same(body.l7.workloads.map((w: any) => [w.pod, w.port, w.engaged, w.protocol, w.policy]), [
    ['shop/api', 6379, false, 'tcp', null],
    ['shop/api', 9000, true, 'grpc', null],
    ['shop/api', 'other', true, 'detect', null]
  ], 'only enrolled pods (web runs on n2)')
  t.match(body.l7.workloads[1].reason, /service shop\/api port 90: port name "grpc"/)

  const warned = (): any[] => lines.filter((l) => l.level === 40 && /ferry\.dev\/l7="on"/.test(l.msg))
  t.equal(warned().length, 1, 'the invalid value is warned about')
  t.match(warned()[0], { code: 'FERRY_ERR_CONFIG', msg: 'service dev/legacy: annotation ferry.dev/l7="on" is not "enabled" or "disabled": ignored (read as not set)' })

  // A new snapshot that still carries the invalid value, and opts the pod out.
  writeFileSync(file, listText(items(dir, { 'ferry.dev/l7': 'disabled' })))
  await waitFor(async () => (await httpGet(adminPort, '/debug/config')).body.l7.generation === 2, { timeoutMs: 5000, what: 'second snapshot' })
  const second = (await httpGet(adminPort, '/debug/config')).body.l7
  t.match(second.workloads[1], { port: 9000, engaged: false, reason: /annotation ferry\.dev\/l7=disabled on pod shop\/api \(over label ferry\.dev\/l7=enabled on namespace shop\)/ })
  t.equal(warned().length, 1, 'still warned about once')

  // ferry policy check --agent: the agent's L7 lines, after the explanation.
  const live = await ferry(['policy', 'check', '--agent', `127.0.0.1:${adminPort}`, '--token-file', tokenFile, '--from', 'dev/web', '--to', 'shop/api:grpc'])
  t.equal(live.code, 0, live.stderr)
  t.match(live.stdout, /L7 \(per-request HTTP handling\):\n {2}source: service shop\/api port 90: L7 engaged, grpc — label ferry\.dev\/l7=enabled on namespace shop.*\n {2}destination: pod shop\/api port 9000: L4 \(not engaged; protocol grpc\) — annotation ferry\.dev\/l7=disabled on pod shop\/api/)
  const json = await ferry(['policy', 'check', '--agent', `127.0.0.1:${adminPort}`, '--token-file', tokenFile, '--json', '--from', 'dev/web', '--to', 'shop/api:6379'])
  t.match(JSON.parse(json.stdout).l7, [{ subject: 'source: service shop/api port 6379', engaged: false, protocol: 'tcp' }, { subject: 'destination: pod shop/api port 6379', engaged: false, protocol: 'tcp' }])

  // ferry policy check --dir --cluster-file: the same lines, decided by the CLI.
  const policies = join(dir, 'policies')
  mkdirSync(policies)
  const fromFile = await ferry(['policy', 'check', '--dir', policies, '--cluster-file', file, '--from', 'dev/web', '--to', 'shop/app=api:9000'])
  t.equal(fromFile.code, 0, fromFile.stderr)
  t.match(fromFile.stdout, /destination: pod shop\/api port 9000: L4 \(not engaged; protocol grpc\) — annotation ferry\.dev\/l7=disabled/)
  const labels = await ferry(['policy', 'check', '--dir', policies, '--cluster-file', file, '--from', 'dev/web', '--to', 'dev/app=web:8080'])
  t.match(labels.stdout, /destination: pod dev\/web port 8080: L4 \(not engaged; protocol detect\) — no ferry\.dev\/l7 on pod dev\/web or namespace dev/)
})

t.test('an authorizer\'s l7PolicyFor engages the destination in the view; one without it engages nothing', async (t) => {
  const snap = parseClusterList(listText([
    namespaceObj('shop'),
    podObj({ name: 'api', namespace: 'shop', labels: { app: 'api' }, ports: [{ containerPort: 8080 }] })
  ]), 'test', 1)
  const table = L7Table.build(snap)
  const authz = { l7PolicyFor: (pod: { name: string }, port: number) => pod.name === 'api' && port === 8080 ? 'shop/get-only' : null }
  const view = l7View(table, snap.pods, l7PolicyLookupOf(authz))
  t.match(view.workloads, [{ port: 8080, engaged: true, policy: 'shop/get-only', reason: /AuthorizationPolicy shop\/get-only has L7 fields/ }, { port: 'other', engaged: false, policy: null }])
  t.match(l7View(table, snap.pods, l7PolicyLookupOf({})).workloads, [{ port: 8080, engaged: false, policy: null }, { port: 'other', engaged: false }])
})
