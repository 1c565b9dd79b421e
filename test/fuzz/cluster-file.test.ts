import fc from 'fast-check'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { parseClusterList } from '../../src/discovery/cluster-list'
import { EXCLUDE_INBOUND_ANNOTATION, EXCLUDE_OUTBOUND_ANNOTATION, inboundMode, meshDecision, parsePortList } from '../../src/discovery/mesh-policy'
import { ServiceIndex } from '../../src/discovery/service-index'
import { readClusterFile } from '../../src/lab/cluster-file'
import { anyJson, anyText, fuzzParams, mutate, mutations, outcome, pathological, total } from '../helpers/fuzz'
import { list, namespaceObj, nodeObj, podObj, sampleCluster, serviceObj } from '../discovery/fixture'

// The cluster file: the Kubernetes `v1 List` (JSON) the agent's `file` discovery source
// and the controller's node authorization read (src/discovery/cluster-list.ts), and the
// lab's reader of the same file (src/lab/cluster-file.ts). Generators: valid lists of
// generated pods, services, namespaces and nodes (the fixture builders the discovery
// tests use), mutated field by field; their JSON text spliced; arbitrary JSON and text.
// Properties: a frozen snapshot or FERRY_ERR_CONFIG naming the file; what parses
// indexes and yields mesh decisions without an exception; a valid list keeps its pods.

const ip4 = fc.ipV4(); const ip6 = fc.ipV6()
const dns = fc.stringMatching(/^[a-z][a-z0-9-]{0,10}[a-z0-9]$/)
const labels = fc.dictionary(fc.constantFrom('app', 'version', 'ferry.dev/mesh', 'ferry.dev/inbound-mode', 'pod-template-hash'), fc.constantFrom('web', 'v1', 'enabled', 'disabled', 'strict', ''), { maxKeys: 3 })
const annotations = fc.dictionary(fc.constantFrom(EXCLUDE_OUTBOUND_ANNOTATION, EXCLUDE_INBOUND_ANNOTATION, 'ferry.dev/mesh', 'ferry.dev/inbound-mode', 'x'),
  fc.oneof(fc.constantFrom('80', '80,443', ' 1 , 65535 ', '0', '65536', '80-90', 'a,b', ',', '', 'enabled', 'strict'), anyText(12)), { maxKeys: 3 })
const probe = fc.oneof(
  fc.record({ httpGet: fc.record({ port: fc.oneof(fc.integer({ min: 1, max: 65535 }), fc.constantFrom('http', 'web')), path: fc.constant('/') }) }),
  fc.record({ tcpSocket: fc.record({ port: fc.oneof(fc.integer({ min: 1, max: 65535 }), fc.constantFrom('http', 'web')) }) }),
  fc.record({ grpc: fc.record({ port: fc.integer({ min: 1, max: 65535 }) }) })
)

const pod = fc.record({
  name: dns,
  namespace: fc.constantFrom('app', 'prod', 'kube-system'),
  node: fc.constantFrom('n1', 'n2'),
  ips: fc.oneof(fc.tuple(ip4, ip6).map(([a, b]) => [a, b]), fc.array(ip4, { maxLength: 2 })),
  labels,
  annotations,
  ports: fc.array(fc.record({ name: dns, containerPort: fc.integer({ min: 1, max: 65535 }) }), { maxLength: 2 }),
  phase: fc.constantFrom('Running', 'Pending', 'Succeeded', 'Failed'),
  ready: fc.boolean(),
  probes: fc.dictionary(fc.constantFrom('readinessProbe', 'livenessProbe', 'startupProbe'), probe, { maxKeys: 2 }),
  deployment: fc.option(dns, { nil: undefined })
}).map((p) => podObj(p))

const svc = fc.record({
  name: dns,
  namespace: fc.constantFrom('app', 'prod'),
  clusterIPs: fc.oneof(fc.tuple(ip4).map(([a]) => [a]), fc.tuple(ip4, ip6).map(([a, b]) => [a, b]), fc.constant(['None']).map((x) => [...x])),
  selector: fc.option(labels, { nil: undefined }),
  ports: fc.array(fc.record({ name: dns, port: fc.integer({ min: 1, max: 65535 }), targetPort: fc.oneof(fc.integer({ min: 1, max: 65535 }), dns), appProtocol: fc.constantFrom('http', 'grpc', 'kubernetes.io/h2c', 'tcp') }, { requiredKeys: ['port'] }), { minLength: 1, maxLength: 3 })
}).map((s) => serviceObj(s))

const validItems = fc.tuple(fc.array(pod, { maxLength: 5 }), fc.array(svc, { maxLength: 3 }), fc.boolean())
  .map(([pods, svcs, sample]) => {
    const seen = new Set<string>()
    const unique = pods.filter((p: any) => !seen.has(p.metadata.uid) && seen.add(p.metadata.uid) !== undefined)
    return [nodeObj('n1'), nodeObj('n2'), namespaceObj('app', { 'ferry.dev/mesh': 'enabled' }), namespaceObj('prod'), ...(sample ? sampleCluster() : []), ...unique, ...svcs]
  })

const nearValue = fc.oneof(
  fc.constantFrom('', 'None', '10.0.0.1', 'fd00::1', '10.0.0.256', '::ffff:1.2.3.4', 'fe80::1%eth0', 'TCP', 'UDP', 'SCTP', 'http', 'Running', 'True', 'Ready', 0, -1, 65536, 1.5, null, true, [], {}, [{}], [{ ip: 'x' }], '2026-01-01T00:00:00Z'),
  anyJson(2)
)
const mutatedList = fc.tuple(validItems, mutations(['metadata', 'spec', 'status', 'podIPs', 'podIP', 'hostIPs', 'clusterIPs', 'clusterIP', 'ports', 'containers', 'initContainers', 'selector', 'ownerReferences', 'conditions', 'deletionTimestamp', 'hostNetwork', 'nodeName', 'labels', 'annotations', 'uid', 'kind'], nearValue, { minLength: 0, maxLength: 4 }))
  .map(([items, ms]) => JSON.stringify(mutate(list(items), ms)))
const splicedList = fc.tuple(validItems, fc.array(fc.tuple(fc.nat(), fc.nat({ max: 3 }), fc.constantFrom('', '"', ',', '{', '}', '[', ']', '0', 'null', '\\u0000', ':')), { minLength: 1, maxLength: 3 }))
  .map(([items, edits]) => { let s = JSON.stringify(list(items)); for (const [at, del, ins] of edits) { const i = at % (s.length + 1); s = s.slice(0, i) + ins + s.slice(i + del) } return s })
const anyListText = fc.oneof(
  { weight: 5, arbitrary: mutatedList },
  { weight: 2, arbitrary: splicedList },
  { weight: 1, arbitrary: anyJson(4).map((v) => JSON.stringify(v) ?? '') },
  { weight: 1, arbitrary: fc.record({ apiVersion: fc.constant('v1'), kind: fc.constant('List'), items: fc.array(anyJson(3), { maxLength: 4 }) }).map((v) => JSON.stringify(v)) },
  { weight: 1, arbitrary: fc.oneof(anyText(100), pathological(['[', '{"a":', '"\\u', '1e', '[{"kind":"Pod"},'])) }
)

/** What the agent does with a snapshot: index it, decide who is meshed and how, read port annotations. */
function useSnapshot (s: ReturnType<typeof parseClusterList>): void {
  total(() => ServiceIndex.build(s))
  const namespaces = new Map(s.namespaces.map((n) => [n.name, n]))
  for (const p of s.pods) {
    total(() => meshDecision(p, namespaces.get(p.namespace)))
    total(() => inboundMode(p, namespaces.get(p.namespace)))
    for (const a of [EXCLUDE_OUTBOUND_ANNOTATION, EXCLUDE_INBOUND_ANNOTATION]) {
      const o = outcome(['FERRY_ERR_CONFIG'], () => parsePortList(p, a))
      const ports = o.ok ? o.value : []
      if (ports.some((n) => !Number.isInteger(n) || n < 1 || n > 65535)) throw new Error(`${a} "${p.annotations[a]}" gave ports ${ports.join(',')}`)
    }
  }
}

t.test('parseClusterList: any text is a frozen snapshot or FERRY_ERR_CONFIG naming the file; a snapshot is usable', async (t) => {
  fc.assert(fc.property(anyListText, (text) => {
    const o = outcome(['FERRY_ERR_CONFIG'], () => parseClusterList(text, '/fuzz/cluster.json', 1))
    if (!o.ok) {
      if (!o.error.message.startsWith('/fuzz/cluster.json: ')) throw new Error(`does not name the file: ${o.error.message}`)
      return
    }
    if (!Object.isFrozen(o.value) || !Object.isFrozen(o.value.pods)) throw new Error('snapshot not frozen')
    useSnapshot(o.value)
  }), fuzzParams(125))
  t.pass()
})

t.test('a valid list is read whole: every pod and service, with canonical addresses', async (t) => {
  fc.assert(fc.property(validItems, (items) => {
    const s = parseClusterList(JSON.stringify(list(items)), '/fuzz/cluster.json', 1)
    const pods = items.filter((i: any) => i.kind === 'Pod').length
    const services = items.filter((i: any) => i.kind === 'Service').length
    if (s.pods.length !== pods || s.services.length !== services) throw new Error(`${s.pods.length}/${pods} pods, ${s.services.length}/${services} services`)
    for (const p of s.pods) for (const ip of p.podIPs) if (ip !== ip.toLowerCase()) throw new Error(`${ip} not canonical`)
    useSnapshot(s)
  }), fuzzParams(100))
  t.pass()
})

t.test('the lab reads the same file: a v1 List or FERRY_ERR_LAB naming the file', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-fuzz-cluster-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  const path = join(dir, 'cluster.json')
  fc.assert(fc.property(anyListText, (text) => {
    writeFileSync(path, text)
    const o = outcome(['FERRY_ERR_LAB'], () => readClusterFile(path))
    if (!o.ok && !o.error.message.includes(path)) throw new Error(`does not name the file: ${o.error.message}`)
  }), fuzzParams(75))
  t.pass()
})
