import t from 'tap'
import { join } from 'node:path'
import { parseClusterList } from '../../src/discovery/cluster-list'
import { clusterList } from '../../src/lab/cluster-file'
import { expand } from '../../src/lab/container-env'
import { expectedEnrollment } from '../../src/lab/enrollment'
import { directModeWarnings, hostsFileFor } from '../../src/lab/hosts'
import { CA_FILES } from '../../src/controller/ca-store'
import { canonicalAddress, MAX_NODES, nodeUnderlayIPs, podIPs, ServiceIPAllocator } from '../../src/lab/ipam'
import { readManifests } from '../../src/lab/manifest'
import { allocateNetnsNames, labNamesOverlap, MAX_NETNS_NAME, ownsName, netnsPrefix } from '../../src/lab/names'
import { nodeLines, nodeSideOfPodLines, podLines, underlayLines } from '../../src/lab/network'
import { agentArgv, controllerArgv, kubeletArgv, podProcessArgv } from '../../src/lab/spawn'
import { CA_ROOT_CERT_FILE, CA_ROOT_KEY_FILE, planLab, planPodAdditions, planServices, type PlanController, type PlanPaths } from '../../src/lab/topology'
import { FIXTURES, REPO } from './helpers'

// The plan is pure: same manifests and uids, same lab. These tests pin down the address
// plan, names, cgroup paths, environments, hosts files and the cluster file.

const PATHS: PlanPaths = { cgroup2: '/cg', netnsDir: '/run/netns', etcNetnsDir: '/etc/netns', bpffs: '/bpf', labStateDir: '/state' }
let n = 0
const uids = (): string => `00000000-0000-4000-8000-${String(++n).padStart(12, '0')}`

function plan (file: string, mesh = true): ReturnType<typeof planLab> & { spec: ReturnType<typeof readManifests> } {
  n = 0
  const spec = readManifests([file])
  return { ...planLab(spec, { name: 'x', mesh, paths: PATHS, newUid: uids }), spec }
}

t.test('nodes: underlay and pod CIDRs by position, routes to every other node', async (t) => {
  const p = plan(join(REPO, 'examples/shop/shop.yaml'))
  t.same(p.nodes.map((x) => [x.name, x.netns, x.ipv4, x.ipv6, x.podCIDRv4, x.podCIDRv6, x.underlayPeer]), [
    ['node1', 'fl-x-node1', '172.30.0.1', 'fd30::1', '10.244.1.0/24', 'fd00:244:1::/64', 'vn1'],
    ['node2', 'fl-x-node2', '172.30.0.2', 'fd30::2', '10.244.2.0/24', 'fd00:244:2::/64', 'vn2']
  ])
  t.same(p.nodes[0].routes, [{ cidr: '10.244.2.0/24', via: '172.30.0.2' }, { cidr: 'fd00:244:2::/64', via: 'fd30::2' }])
  t.equal(p.underlay.netns, 'fl-x-u')
  t.equal(p.nodes[1].pinRoot, '/bpf/ferry-lab-x-node2')
  t.equal(p.nodes[0].agentCgroup, '/cg/ferry-lab-x/node1/ferry-agent')
  t.equal(p.nodes[0].agentLog, '/state/x/logs/node-node1.log')
})

t.test('pods: addresses per node from .2, the same number in both families; kubelet-style cgroups', async (t) => {
  const p = plan(join(REPO, 'examples/shop/shop.yaml'))
  t.same(p.pods.map((x) => [`${x.namespace}/${x.name}`, x.node, x.ipv4, x.ipv6, x.hostVeth, x.netns]), [
    ['shop/web', 'node1', '10.244.1.2', 'fd00:244:1::2', 'vp2', 'fl-x-shop-web'],
    ['shop/cart-a', 'node1', '10.244.1.3', 'fd00:244:1::3', 'vp3', 'fl-x-shop-cart-a'],
    ['shop/cart-b', 'node2', '10.244.2.2', 'fd00:244:2::2', 'vp2', 'fl-x-shop-cart-b'],
    ['shop/payments', 'node2', '10.244.2.3', 'fd00:244:2::3', 'vp3', 'fl-x-shop-payments'],
    ['shop/db', 'node1', '10.244.1.4', 'fd00:244:1::4', 'vp4', 'fl-x-shop-db']
  ])
  t.equal(p.pods[0].uid, '00000000-0000-4000-8000-000000000001')
  t.equal(p.pods[0].cgroup, '/cg/ferry-lab-x/node1/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod00000000_0000_4000_8000_000000000001.slice')
  t.equal(p.pods[0].containers[0].log, '/state/x/logs/shop_web_web.log')
  for (const x of p.pods) for (const ip of [x.ipv4, x.ipv6]) t.equal(canonicalAddress(ip), ip, `${ip} is canonical`)
  t.throws(() => podIPs(1, 1), RangeError)
  t.throws(() => podIPs(255, 2), RangeError)
})

t.test('services: cluster IPs in a stable order, asked-for ones kept, dual stack', async (t) => {
  const p = plan(join(REPO, 'examples/shop/shop.yaml'))
  const byName = Object.fromEntries(p.services.map((s) => [s.name, s.clusterIPs]))
  // Sorted by namespace/name: cart, db, payments, web.
  t.same(byName, { cart: ['10.96.0.10', 'fd00:96::a'], db: ['10.96.0.11'], payments: ['10.96.0.12'], web: ['10.96.0.13'] })
  const a = new ServiceIPAllocator()
  a.reserve('10.96.0.10')
  a.reserve('fd00:96:0::b')
  t.equal(a.allocate('IPv4'), '10.96.0.11')
  t.equal(a.allocate('IPv6'), 'fd00:96::a')
  t.equal(a.allocate('IPv6'), 'fd00:96::c')
  t.throws(() => a.reserve('10.96.0.10'), RangeError)
  t.throws(() => a.reserve('10.97.0.1'), RangeError)
})

t.test('netns names: readable, unique, bounded', async (t) => {
  const names = allocateNetnsNames('lab', [
    { id: 'node/a-b', readable: 'a-b' },
    { id: 'pod/a/b', readable: 'a-b' },
    { id: 'node/u', readable: 'u' },
    { id: 'pod/ns/' + 'p'.repeat(60), readable: 'ns-' + 'p'.repeat(60) }
  ])
  const all = [...names.values()]
  t.equal(new Set([...all, 'fl-lab-u']).size, all.length + 1, 'no two alike, none the underlay\'s')
  t.ok(all.every((x) => x.startsWith('fl-lab-') && x.length <= MAX_NETNS_NAME), 'prefixed and short')
  t.not(names.get('node/a-b'), 'fl-lab-a-b', 'a clash is disambiguated by hash')
})

t.test('lab names: one lab never claims another\'s objects', async (t) => {
  t.ok(labNamesOverlap('a', 'a-b'))
  t.notOk(labNamesOverlap('a', 'ab'))
  t.ok(ownsName('fl-a-node1', 'a', [], netnsPrefix))
  t.notOk(ownsName('fl-a-b-node1', 'a', ['a-b'], netnsPrefix), 'belongs to lab a-b')
  t.notOk(ownsName('fl-ab-node1', 'a', [], netnsPrefix))
})

t.test('container env: base variables, Downward API, $(VAR) expansion', async (t) => {
  const p = plan(join(FIXTURES, 'two-nodes.yaml'))
  const server1 = p.pods.find((x) => x.name === 'server1')
  t.equal(server1?.containers[0].env.HOSTNAME, 'server1')
  t.equal(server1?.containers[0].env.POD_IP, '10.244.1.3')
  t.equal(server1?.containers[0].env.GREETING, 'server1 at 10.244.1.3')
  t.match(server1?.containers[0].env.PATH, /\/usr\/bin/)
  t.same(server1?.containers[0].argv, ['node', 'echo-server.js'])
  t.equal(expand('$(A)-$$(A)-$(B)', { A: '1' }), '1-$(A)-$(B)')
})

t.test('process argv: cgroup first, then the namespace, then a clean env', async (t) => {
  const p = plan(join(FIXTURES, 'two-nodes.yaml'))
  const pod = p.pods[0]
  const argv = podProcessArgv(pod, { A: 'b' }, ['sleep', '1'])
  t.same(argv, ['sh', '-c', 'echo $$ > "$0" && exec "$@"', `${pod.cgroup}/cgroup.procs`, 'ip', 'netns', 'exec', pod.netns, 'env', '-i', 'A=b', 'sleep', '1'])
  const agent = agentArgv(p, p.nodes[0], ['node', '/repo/bin/ferry.js'])
  t.same(agent.slice(4), ['nsenter', '--net=/run/netns/fl-x-node1', '--', 'node', '/repo/bin/ferry.js', 'agent',
    '--node', 'node1', '--cluster-file', '/state/x/cluster.json', '--pin-root', '/bpf/ferry-lab-x-node1', '--kubelet-cgroup', '/cg/ferry-lab-x/node1/kubelet', '--config-dir', '/state/x/config',
    '--config-cache', '/state/x/config-cache/node1.json',
    '--ca-address', '172.30.0.254:15012', '--ca-root', '/state/x/ca/root-cert.pem', '--ca-token-file', '/state/x/tokens/node1.token',
    '--trust-domain', 'cluster.local', '--cert-ttl', '24h', '--admin-token-file', '/state/x/tokens/admin.token', '--handoff-socket', '/state/x/node1/handoff.sock', '--log-level', 'info'])
  t.equal(agent[3], '/cg/ferry-lab-x/node1/ferry-agent/cgroup.procs')
  const noMesh = plan(join(FIXTURES, 'two-nodes.yaml'), false)
  t.same(agentArgv(noMesh, noMesh.nodes[0], ['ferry']).slice(9), ['--node', 'node1', '--cluster-file', '/state/x/cluster.json', '--pin-root', '/bpf/ferry-lab-x-node1', '--kubelet-cgroup', '/cg/ferry-lab-x/node1/kubelet', '--config-dir', '/state/x/config', '--config-cache', '/state/x/config-cache/node1.json', '--handoff-socket', '/state/x/node1/handoff.sock', '--log-level', 'info'],
    'without a controller (no mesh, or a state file from before there was one), no CA options')
  // The agents' --workers and --drain-grace: passed on when the lab was given them, else the agent's defaults.
  const tuned = planLab(readManifests([join(FIXTURES, 'two-nodes.yaml')]), { name: 'x', mesh: true, paths: PATHS, newUid: uids, workers: 1, drainGraceMs: 4000 })
  const args = agentArgv(tuned, tuned.nodes[0], ['ferry'])
  t.same(args.slice(args.indexOf('--workers'), args.indexOf('--workers') + 4), ['--workers', '1', '--drain-grace', '4s'])
  t.notOk(agent.includes('--workers') || agent.includes('--drain-grace'), 'none by default')
})

t.test('the controller: one per lab with the mesh, in the underlay on the bridge, with the cluster file, node tokens and TTL', async (t) => {
  const p = plan(join(FIXTURES, 'two-nodes.yaml'))
  const ca = p.controller
  if (ca == null) throw new Error('no controller planned')
  t.same(ca, {
    address: '172.30.0.254',
    port: 15012,
    trustDomain: 'cluster.local',
    certTtlMs: 86_400_000,
    cgroup: '/cg/ferry-lab-x/ferry_controller',
    dataDir: '/state/x/ca',
    rootCert: '/state/x/ca/root-cert.pem',
    tokensFile: '/state/x/tokens/lab-nodes.json',
    log: '/state/x/logs/controller.log'
  })
  t.equal(CA_ROOT_CERT_FILE, CA_FILES.cert, 'the lab names the controller\'s root certificate file as the controller does')
  t.equal(CA_ROOT_KEY_FILE, CA_FILES.key)
  t.same(p.nodes.map((n) => n.caTokenFile), ['/state/x/tokens/node1.token', '/state/x/tokens/node2.token'])
  t.notOk(p.nodes.some((n) => n.cgroup === ca.cgroup), 'no node shares the controller\'s cgroup')
  t.same(controllerArgv(p, ca, ['node', '/repo/bin/ferry.js']).slice(3), ['/cg/ferry-lab-x/ferry_controller/cgroup.procs',
    'nsenter', '--net=/run/netns/fl-x-u', '--', 'node', '/repo/bin/ferry.js', 'controller',
    '--data-dir', '/state/x/ca', '--lab-nodes', '/state/x/tokens/lab-nodes.json', '--cluster-file', '/state/x/cluster.json',
    '--listen', '172.30.0.254:15012', '--serving-name', '172.30.0.254', '--trust-domain', 'cluster.local', '--cert-ttl', '24h', '--log-level', 'info'])
  t.same(underlayLines(p), ['link set lo up', 'link add br0 type bridge', 'link set br0 up', 'addr add 172.30.0.254/24 dev br0'], 'its address is on the underlay bridge')

  n = 0
  const short = planLab(readManifests([join(FIXTURES, 'two-nodes.yaml')]), { name: 'x', mesh: true, paths: PATHS, newUid: uids, certTtlMs: 6000 })
  t.equal(short.controller?.certTtlMs, 6000)
  t.ok(controllerArgv(short, short.controller as PlanController).join(' ').includes('--cert-ttl 6s'))
  t.ok(agentArgv(short, short.nodes[1]).join(' ').includes('--cert-ttl 6s'), 'agents ask for the same lifetime')

  const noMesh = plan(join(FIXTURES, 'two-nodes.yaml'), false)
  t.equal(noMesh.controller, null, 'no controller without the mesh')
  t.same(noMesh.nodes.map((n) => n.caTokenFile), [null, null])
  t.same(underlayLines(noMesh), ['link set lo up', 'link add br0 type bridge', 'link set br0 up'])
  t.throws(() => nodeUnderlayIPs(MAX_NODES + 1), RangeError, 'node numbers stop before the controller\'s address')
  t.equal(nodeUnderlayIPs(MAX_NODES).v4, '172.30.0.253')
})

t.test('network commands', async (t) => {
  const p = plan(join(REPO, 'examples/shop/shop.yaml'))
  t.same(podLines(p.pods[0]), [
    'link set lo up', 'link set eth0 up', 'addr add 10.244.1.2/32 dev eth0', 'addr add fd00:244:1::2/128 dev eth0 nodad',
    'route add 169.254.1.1/32 dev eth0 scope link', 'route add default via 169.254.1.1 dev eth0', 'route add default via fe80::1 dev eth0'
  ])
  t.same(nodeSideOfPodLines(p.pods[0], p.nodes[0]), ['link set vp2 up', 'addr add fe80::1/64 dev vp2 nodad', 'route add 10.244.1.2/32 dev vp2 src 172.30.0.1', 'route add fd00:244:1::2/128 dev vp2 src fd30::1'],
    'the node reaches its pods from its own addresses (the kubelet\'s probes)')
  t.ok(nodeLines(p.nodes[0]).includes('route add 10.244.2.0/24 via 172.30.0.2 dev eth0'))
  t.ok(nodeLines(p.nodes[0]).includes('addr add 169.254.1.1/32 dev lo'))
})

t.test('hosts file: short names in the own namespace; cluster IPs with the mesh, endpoints without', async (t) => {
  const mesh = plan(join(REPO, 'examples/shop/shop.yaml'))
  const hosts = hostsFileFor(mesh.spec, mesh, 0)
  t.match(hosts, /^10\.96\.0\.10\tcart cart\.shop cart\.shop\.svc cart\.shop\.svc\.cluster\.local$/m)
  t.match(hosts, /^fd00:96::a\tcart cart\.shop/m)
  t.match(hosts, /^10\.244\.1\.2\tweb$/m, 'the pod\'s own name')
  const direct = plan(join(REPO, 'examples/shop/shop.yaml'), false)
  const dh = hostsFileFor(direct.spec, direct, 0)
  t.match(dh, /^10\.244\.1\.3\tcart /m)
  t.match(dh, /^10\.244\.2\.2\tcart /m)
  t.notMatch(dh, /10\.96\./, 'no cluster IPs without the mesh')
  const other = plan(join(FIXTURES, 'two-nodes.yaml'))
  t.match(hostsFileFor(other.spec, other, 0), /^10\.96\.0\.10\techo echo\.app /m)
  t.match(hostsFileFor(other.spec, other, 0), /^fd00:96::a\techo echo\.app /m, 'dual stack: both cluster IPs')
})

t.test('direct mode: a Service port that differs from its target is pointed out', async (t) => {
  t.same(directModeWarnings(plan(join(REPO, 'examples/shop/shop.yaml')).spec), [], 'the shop works without the mesh')
  t.match(directModeWarnings(plan(join(REPO, 'test/fixtures/one-node.yaml')).spec), [/^Service app\/server port 80 forwards to port 8080: /])
})

t.test('cluster file: a v1 List the agent\'s discovery reads, with lab annotations', async (t) => {
  const p = plan(join(REPO, 'examples/shop/shop.yaml'))
  const text = JSON.stringify(clusterList(p.spec, p, 3))
  const snap = parseClusterList(text, 'cluster.json', 3)
  t.equal(snap.pods.length, 5)
  const web = snap.pods.find((x) => x.name === 'web')
  t.same(web?.podIPs, ['10.244.1.2', 'fd00:244:1::2'])
  t.equal(web?.annotations['lab.ferry.dev/netns'], '/run/netns/fl-x-shop-web')
  t.equal(web?.annotations['lab.ferry.dev/cgroup'], p.pods[0].cgroup)
  t.equal(web?.serviceAccountName, 'web')
  t.same(snap.services.find((s) => s.name === 'cart')?.clusterIPs, ['10.96.0.10', 'fd00:96::a'])
  const list = JSON.parse(text)
  t.equal(list.metadata.resourceVersion, '3')
  t.same(list.items.find((i: any) => i.kind === 'Node').spec.podCIDRs, ['10.244.1.0/24', 'fd00:244:1::/64'])
  const expected = expectedEnrollment(text, 'cluster.json')
  t.same(expected.get('node1')?.length, 3, 'web, cart-a, db are meshed on node1')
  t.same(expected.get('node2')?.length, 2)
})

t.test('kubelets and CNI: a kubelet cgroup per node beside the agent\'s; each node\'s conflist, bin dir and result cache in the state dir', async (t) => {
  const p = plan(join(FIXTURES, 'two-nodes.yaml'), false)
  t.equal(p.nodes[0].kubeletCgroup, '/cg/ferry-lab-x/node1/kubelet')
  t.equal(p.nodes[0].kubeletLog, '/state/x/logs/kubelet-node1.log')
  t.same(p.nodes[1].cni, {
    confDir: '/state/x/cni/node2/net.d',
    conflist: '/state/x/cni/node2/net.d/10-ferry-lab.conflist',
    binDir: '/state/x/cni/node2/bin',
    resultsDir: '/state/x/cni/node2/results',
    log: '/state/x/logs/cni-node2.log',
    plugins: []
  }, 'no chained plugin by default')
  t.same(kubeletArgv(p, p.nodes[0], ['ferry']).slice(3), ['/cg/ferry-lab-x/node1/kubelet/cgroup.procs', 'nsenter', '--net=/run/netns/fl-x-node1', '--',
    'ferry', 'lab', 'kubelet', '--state-file', '/state/x/state.json', '--node', 'node1'])
  n = 0
  const chained = planLab(readManifests([join(FIXTURES, 'two-nodes.yaml')]), {
    name: 'x', mesh: true, paths: PATHS, newUid: uids,
    cniPlugins: [{ path: '/opt/ferry/build/cni/ferry-cni', config: (node) => ({ agentSocket: `/run/ferry/${node.name}/cni.sock`, capabilities: { 'io.kubernetes.cri.pod-annotations': true } }) }]
  })
  t.same(chained.nodes.map((x) => x.cni.plugins), ['node1', 'node2'].map((name) => [{
    type: 'ferry-cni', path: '/opt/ferry/build/cni/ferry-cni', config: { agentSocket: `/run/ferry/${name}/cni.sock`, capabilities: { 'io.kubernetes.cri.pod-annotations': true } }
  }]), 'a plugin\'s type is its file name; its keys may depend on the node')
})

t.test('pods added to a running lab: the next free address on their node, a netns name nobody has, the same layout as up\'s', async (t) => {
  const p = plan(join(FIXTURES, 'two-nodes.yaml'), false)
  const more = readManifests([join(FIXTURES, 'two-nodes.yaml')]).pods.map((x) => ({ ...x, name: `${x.name}-2` }))
  n = 100
  const added = planPodAdditions(p, [...more, { ...more[0], name: 'client', namespace: 'app2' }], uids)
  t.same(added.map((x) => [x.name, x.node, x.ipv4, x.ipv6, x.hostVeth, x.netns]), [
    ['client-2', 'node1', '10.244.1.4', 'fd00:244:1::4', 'vp4', 'fl-x-app-client-2'],
    ['server1-2', 'node1', '10.244.1.5', 'fd00:244:1::5', 'vp5', 'fl-x-app-server1-2'],
    ['server2-2', 'node2', '10.244.2.3', 'fd00:244:2::3', 'vp3', 'fl-x-app-server2-2'],
    ['client', 'node1', '10.244.1.6', 'fd00:244:1::6', 'vp6', 'fl-x-app2-client']
  ])
  t.equal(added[0].uid, '00000000-0000-4000-8000-000000000101')
  t.match(added[0].cgroup, /^\/cg\/ferry-lab-x\/node1\/kubepods\.slice\/kubepods-besteffort\.slice\/kubepods-besteffort-pod00000000_0000_4000_8000_000000000101\.slice$/)
  t.equal(added[1].containers[0].env.POD_IP, '10.244.1.5', 'the Downward API sees the new address')
  const node1 = (hosts: number[]): typeof p => ({ ...p, pods: hosts.map((h) => ({ ...p.pods[0], ipv4: `10.244.1.${h}` })) })
  const upTo254 = Array.from({ length: 252 }, (_, i) => i + 3)
  t.equal(planPodAdditions(node1(upTo254), [more[0]], uids)[0].ipv4, '10.244.1.2', 'after the last number, the lowest free one')
  t.throws(() => planPodAdditions(node1([2, ...upTo254]), [more[0]], uids), RangeError, 'a full node')
  t.same(planServices(readManifests([join(FIXTURES, 'two-nodes.yaml')]).services.map((s) => ({ ...s, name: 'echo2' })), p.services)[0].clusterIPs, ['10.96.0.11', 'fd00:96::b'], 'new Services skip the cluster IPs in use')
})
