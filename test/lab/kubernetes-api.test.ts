import t from 'tap'
import { mkdtempSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseAgentOptions } from '../../src/agent/options'
import { loadKubeConfig } from '../../src/kubernetes/client'
import { podCgroupCandidates } from '../../src/kubernetes/cgroup-layout'
import { ListWatchServer } from '../../src/lab/api-server'
import { syncList } from '../../src/lab/api-server-sync'
import { clusterList } from '../../src/lab/cluster-file'
import { readLabApiToken, writeLabKubeconfig } from '../../src/lab/kubeconfig'
import { readManifests } from '../../src/lab/manifest'
import { agentArgv, apiServerArgv, sandboxArgv } from '../../src/lab/spawn'
import { planLab, type PlanKubernetesApi, type PlanPaths } from '../../src/lab/topology'
import { FIXTURES } from './helpers'

// `ferry lab up --kubernetes-api`, the pure parts: the plan (the API server's place,
// kubelet-style container scopes and a sandbox per pod), the agents' and the server's
// argv, the kubeconfig, and how the lab's cluster file becomes creates, replaces and
// deletes in the list + watch server. The lab itself runs in test/e2e/kubernetes.test.ts.

const PATHS: PlanPaths = { cgroup2: '/cg', netnsDir: '/run/netns', etcNetnsDir: '/etc/netns', bpffs: '/bpf', labStateDir: '/state' }
let n = 0
const uids = (): string => `00000000-0000-4000-8000-${String(++n).padStart(12, '0')}`

function plan (kubernetesApi: boolean, mesh = true): ReturnType<typeof planLab> & { spec: ReturnType<typeof readManifests> } {
  n = 0
  const spec = readManifests([join(FIXTURES, 'two-nodes.yaml')])
  return { ...planLab(spec, { name: 'x', mesh, paths: PATHS, newUid: uids, kubernetesApi }), spec }
}

t.test('the plan: an API server in the underlay beside the controller, a sandbox scope per pod and a scope per container', async (t) => {
  const p = plan(true)
  t.same(p.kubernetesApi, { address: '172.30.0.254', port: 6443, cgroup: '/cg/ferry-lab-x/ferry_apiserver', kubeconfig: '/state/x/tokens/kubeconfig', tokenFile: '/state/x/tokens/api-server.token', log: '/state/x/logs/api-server.log' })
  const pod = p.pods[0]
  t.match(pod.sandboxCgroup, new RegExp(`^${pod.cgroup}/cri-containerd-[0-9a-f]{64}\\.scope$`))
  t.match(pod.containers[0].cgroup, new RegExp(`^${pod.cgroup}/cri-containerd-[0-9a-f]{64}\\.scope$`))
  t.not(pod.containers[0].cgroup, pod.sandboxCgroup)
  t.same(plan(true).pods.map((x) => x.sandboxCgroup), p.pods.map((x) => x.sandboxCgroup), 'stable: same uids, same ids')
  t.ok(podCgroupCandidates(pod.uid).some((c) => pod.cgroup.endsWith(c.replace(/^kubepods\.slice\//, ''))), 'the pod cgroup is the systemd driver\'s, below the lab\'s node cgroup')
  const plain = plan(false)
  t.equal(plain.kubernetesApi, null)
  t.equal(plain.pods[0].sandboxCgroup, undefined, 'file mode: no sandbox, processes in the pod cgroup as before')
  t.equal(plain.pods[0].containers[0].cgroup, undefined)
  t.equal(plan(true, false).kubernetesApi, null, 'no API server without the mesh (no agent would read it)')
})

t.test('argv: agents with --kubernetes and the lab\'s kubeconfig, parsed by the agent\'s own parser; the server and the sandboxes', async (t) => {
  const p = plan(true)
  const api = p.kubernetesApi as PlanKubernetesApi
  const agent = agentArgv(p, p.nodes[0], ['node', '/repo/bin/ferry.js'])
  const args = agent.slice(agent.indexOf('agent') + 1)
  t.notOk(args.includes('--cluster-file'))
  const o = parseAgentOptions(args, {})
  t.same(o.kubernetes, { kubeconfig: api.kubeconfig, hostProc: '/proc', cgroupRoot: '/cg' })
  t.equal(o.node, 'node1')
  t.same(apiServerArgv(p, api, ['ferry']).slice(3), [`${api.cgroup}/cgroup.procs`, 'nsenter', '--net=/run/netns/fl-x-u', '--', 'ferry', 'lab', 'api-server',
    '--cluster-file', '/state/x/cluster.json', '--listen', '172.30.0.254:6443', '--token-file', api.tokenFile])
  const pod = p.pods[0]
  t.same(sandboxArgv(p, pod).slice(3), [`${pod.sandboxCgroup as string}/cgroup.procs`, 'nsenter', `--net=/run/netns/${pod.netns}`, '--', 'sleep', 'infinity'])
})

t.test('the kubeconfig: mode 0600, the server and token the client-node loader reads', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-kubeconfig-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  const api: PlanKubernetesApi = { address: '172.30.0.254', port: 6443, cgroup: '/x', kubeconfig: join(dir, 'tokens', 'kubeconfig'), tokenFile: join(dir, 'tokens', 'api.token'), log: '/x' }
  writeLabKubeconfig(api, 'demo')
  t.equal(statSync(api.kubeconfig).mode & 0o777, 0o600)
  t.equal(statSync(api.tokenFile).mode & 0o777, 0o600)
  const kc = await loadKubeConfig({ file: api.kubeconfig })
  t.equal(kc.getCurrentCluster()?.server, 'http://172.30.0.254:6443')
  t.equal(kc.getCurrentUser()?.token, readLabApiToken(api.tokenFile))
})

t.test('syncing the cluster file: creates, replaces only what changed, deletes, and drops the lab\'s annotations', async (t) => {
  const p = plan(true)
  const api = new ListWatchServer('tok')
  const list = clusterList(p.spec, p, 1) as { items: any[] }
  t.same(syncList(api, list), { created: list.items.filter((o) => o.kind !== 'Node').length, replaced: 0, deleted: 0 })
  t.notOk(api.keys('pods').some((k) => Object.keys(api.get('pods', k)?.metadata.annotations ?? {}).some((a) => a.startsWith('lab.ferry.dev/'))), 'no lab annotation served')
  const rv = api.resourceVersion
  t.same(syncList(api, list), { created: 0, replaced: 0, deleted: 0 }, 'the same file: no write, no event')
  t.equal(api.resourceVersion, rv)
  const edited = structuredClone(list)
  const pod = edited.items.find((o) => o.kind === 'Pod')
  pod.metadata.labels.version = 'v2'
  edited.items = edited.items.filter((o) => o.kind !== 'Service')
  t.same(syncList(api, edited), { created: 0, replaced: 1, deleted: list.items.filter((o) => o.kind === 'Service').length })
  t.equal(api.get('pods', `${pod.metadata.namespace as string}/${pod.metadata.name as string}`)?.metadata.labels.version, 'v2')
  t.equal(api.keys('services').length, 0)
})

t.test('a server started later answers a watch from an earlier one\'s resourceVersions with 410 Gone', async (t) => {
  const first = new ListWatchServer({ token: 'tok', initialResourceVersion: 1_000_000 })
  first.apply('namespaces', { metadata: { name: 'a' } })
  const second = new ListWatchServer({ token: 'tok', initialResourceVersion: 2_000_000 })
  const url = await second.start()
  t.teardown(async () => { await second.close() })
  const res = await fetch(`${url}/api/v1/namespaces?watch=true&resourceVersion=${first.resourceVersion}`, { headers: { authorization: 'Bearer tok' } })
  const event = JSON.parse((await res.text()).split('\n')[0])
  t.match(event, { type: 'ERROR', object: { kind: 'Status', code: 410, reason: 'Expired' } })
})

t.test('a status-only change in the cluster file (a kubelet\'s write) reaches watchers as MODIFIED', async (t) => {
  const p = plan(true)
  const api = new ListWatchServer('tok')
  const url = await api.start()
  t.teardown(async () => { await api.close() })
  const list = clusterList(p.spec, p, 1) as { items: any[] }
  syncList(api, list)
  const from = api.resourceVersion
  const ac = new AbortController()
  t.teardown(() => { ac.abort() })
  const res = await fetch(`${url}/api/v1/pods?watch=true&resourceVersion=${from}`, { headers: { authorization: 'Bearer tok' }, signal: ac.signal })
  const reader = (res.body as ReadableStream<Uint8Array>).getReader()

  const edited = structuredClone(list)
  const pod = edited.items.find((o) => o.kind === 'Pod')
  pod.status = { ...pod.status, phase: 'Running', conditions: pod.status.conditions.map((c: any) => ({ ...c, status: 'True' })) }
  t.same(syncList(api, edited), { created: 0, replaced: 1, deleted: 0 }, 'only the pod whose status changed is replaced')
  let text = ''
  while (!text.includes('\n')) {
    const { value, done } = await reader.read()
    if (done === true) break
    text += Buffer.from(value).toString()
  }
  const event = JSON.parse(text.split('\n')[0])
  t.equal(event.type, 'MODIFIED')
  t.equal(event.object.metadata.uid, pod.metadata.uid)
  t.equal(event.object.status.phase, 'Running')
  t.ok(Number(event.object.metadata.resourceVersion) > from)
})

// Guards what the tests of the controller's --kubernetes mode and of the agent's DaemonSet
// check need from the one list + watch server: collections installed by path, a GET of
// one object, the status subresource, extra endpoints, and the token check.
t.test('installed collections: list with the group\'s apiVersion, GET of one object, a status patch seen as MODIFIED; 404 for what is not installed', async (t) => {
  const AP = '/apis/security.ferry.dev/v1alpha1/authorizationpolicies'
  const api = new ListWatchServer('tok')
  api.install(AP)
  api.install('/apis/apps/v1/namespaces/ferry-system/daemonsets')
  api.apply(AP, { apiVersion: 'security.ferry.dev/v1alpha1', kind: 'AuthorizationPolicy', metadata: { name: 'deny', namespace: 'prod' }, spec: {} })
  api.apply('/apis/apps/v1/namespaces/ferry-system/daemonsets', { metadata: { name: 'ferry-agent', namespace: 'ferry-system' } })
  api.route('POST', '/apis/authentication.k8s.io/v1/tokenreviews', (req, res) => { res.writeHead(201).end('{}') })
  const url = await api.start()
  t.teardown(async () => { await api.close() })
  const get = async (path: string, init: RequestInit = {}): Promise<{ status: number, body: any }> => {
    const res = await fetch(`${url}${path}`, { ...init, headers: { authorization: 'Bearer tok', ...init.headers } })
    return { status: res.status, body: await res.json() }
  }
  t.match(await get(AP), { status: 200, body: { kind: 'List', apiVersion: 'security.ferry.dev/v1alpha1', items: [{ metadata: { name: 'deny' } }] } })
  t.match(await get('/apis/apps/v1/namespaces/ferry-system/daemonsets/ferry-agent'), { status: 200, body: { metadata: { name: 'ferry-agent', namespace: 'ferry-system' } } })
  t.match(await get('/apis/apps/v1/namespaces/ferry-system/daemonsets/other'), { status: 404, body: { kind: 'Status', reason: 'NotFound' } })
  t.match(await get('/apis/security.istio.io/v1/authorizationpolicies'), { status: 404 }, 'a CRD not installed')
  const before = api.resourceVersion
  const patched = await get('/apis/security.ferry.dev/v1alpha1/namespaces/prod/authorizationpolicies/deny/status',
    { method: 'PATCH', headers: { 'content-type': 'application/json-patch+json' }, body: JSON.stringify([{ op: 'add', path: '/status', value: { conditions: [{ type: 'FerryAccepted' }] } }]) })
  t.match(patched, { status: 200, body: { status: { conditions: [{ type: 'FerryAccepted' }] } } })
  t.equal(api.get(AP, 'prod/deny')?.status.conditions[0].type, 'FerryAccepted')
  t.ok(api.resourceVersion > before, 'a new resourceVersion')
  t.match(await get('/apis/security.ferry.dev/v1alpha1/namespaces/prod/authorizationpolicies/deny/status', { method: 'PATCH', body: '{}' }), { status: 415 }, 'other patches are refused')
  t.equal((await get('/apis/authentication.k8s.io/v1/tokenreviews', { method: 'POST', body: '{}' })).status, 201, 'an extra endpoint')
  t.equal((await fetch(`${url}/apis/authentication.k8s.io/v1/tokenreviews`, { method: 'POST', body: '{}' })).status, 401, 'behind the token check')
  t.match(api.requests.at(-1), { method: 'POST', path: '/apis/authentication.k8s.io/v1/tokenreviews' })
})

t.test('token null: any request is served', async (t) => {
  const api = new ListWatchServer({ token: null })
  const url = await api.start()
  t.teardown(async () => { await api.close() })
  t.equal((await fetch(`${url}/api/v1/pods`)).status, 200)
})
