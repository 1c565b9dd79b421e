import t from 'tap'
import { join } from 'node:path'
import { isFerryError } from '../../src/errors'
import { readManifests } from '../../src/lab/manifest'
import { REPO } from './helpers'

// Manifest validation: YAML errors with file and line, the Kubernetes schema (types,
// unknown fields), the lab's own refusals, and cross-object checks — all reported
// together, before anything is made.

const NODE = 'apiVersion: v1\nkind: Node\nmetadata:\n  name: node1\n'
const pod = (name: string, extra = '', container = '      command: ["sleep", "infinity"]\n'): string =>
  `apiVersion: v1\nkind: Pod\nmetadata:\n  name: ${name}\n  namespace: default\nspec:\n  nodeName: node1\n${extra}  containers:\n    - name: main\n${container}`

function read (docs: string[]): ReturnType<typeof readManifests> {
  return readManifests(['/m/lab.yaml'], () => docs.join('---\n'))
}

function errorOf (docs: string[]): string {
  try {
    read(docs)
  } catch (err) {
    if (isFerryError(err, 'FERRY_ERR_MANIFEST')) return err.message
    throw err
  }
  throw new Error('expected FERRY_ERR_MANIFEST')
}

t.test('the examples and fixtures are valid', async (t) => {
  for (const f of ['examples/shop/shop.yaml', 'examples/hello/hello.yaml', 'test/fixtures/one-node.yaml', 'test/lab/fixtures/two-nodes.yaml']) {
    const spec = readManifests([join(REPO, f)])
    t.ok(spec.pods.length > 0, `${f} has pods`)
    t.ok(Object.isFrozen(spec) && Object.isFrozen(spec.pods[0].containers[0]), `${f}: the spec is frozen`)
  }
  const shop = readManifests([join(REPO, 'examples/shop/shop.yaml')])
  t.same(shop.nodes.map((n) => n.name), ['node1', 'node2'])
  t.same(new Set(shop.pods.map((p) => p.nodeName)), new Set(['node1', 'node2']), 'pods on both nodes')
  t.equal(shop.namespaces.find((n) => n.name === 'shop')?.labels['ferry.dev/mesh'], 'enabled')
  t.equal(shop.pods[0].containers[0].workingDir, join(REPO, 'examples/shop'), 'workingDir defaults to the manifest\'s directory')
})

t.test('malformed YAML: file and line', async (t) => {
  const msg = errorOf([NODE, 'apiVersion: v1\nkind: Pod\nmetadata:\n  name: [a,\n'])
  t.match(msg, /^\/m\/lab\.yaml:\d+: YAML error/m)
  const dup = errorOf([NODE + 'kind: Node\n'])
  t.match(dup, /lab\.yaml:\d+: YAML error: .*[Uu]nique|lab\.yaml:\d+: YAML error: .*duplicate/i, 'a repeated key is a YAML error')
})

t.test('unknown field: file, line, object and field path', async (t) => {
  const msg = errorOf([NODE, pod('web', '', '      command: ["sleep", "1"]\n      bogus: 1\n')])
  t.match(msg, '/m/lab.yaml:16: Pod default/web: spec.containers[0].bogus: unknown field "bogus"')
  const meta = errorOf([NODE.replace('  name: node1\n', '  name: node1\n  lables: {a: b}\n')])
  t.match(meta, 'Node node1: metadata.lables: unknown field "lables"')
})

t.test('free-form maps are not unknown fields', async (t) => {
  const spec = read([NODE, pod('web', '', '      command: ["sleep", "1"]\n      resources:\n        limits: {cpu: "1", memory: 64Mi}\n').replace('  namespace: default\n', '  namespace: default\n  labels: {anything: goes}\n  annotations: {x.y/z: "1"}\n')])
  t.equal(spec.pods[0].labels.anything, 'goes')
})

t.test('wrong type', async (t) => {
  const msg = errorOf([NODE, pod('web', '', '      command: ["sleep", "1"]\n      ports:\n        - containerPort: "80"\n')])
  t.match(msg, 'Pod default/web: spec.containers[0].ports[0].containerPort: must be integer')
})

t.test('duplicate object', async (t) => {
  const msg = errorOf([NODE, pod('web'), pod('web')])
  t.match(msg, /Pod default\/web: duplicate Pod default\/web \(first at \/m\/lab\.yaml:\d+\)/)
})

t.test('pod on an unknown node', async (t) => {
  const msg = errorOf([NODE, pod('web').replace('nodeName: node1', 'nodeName: node9')])
  t.match(msg, 'Pod default/web: spec.nodeName: no Node "node9" in the manifests (Nodes: node1)')
})

t.test('pod without nodeName', async (t) => {
  t.match(errorOf([NODE, pod('web').replace('  nodeName: node1\n', '')]), 'spec.nodeName: is required: the lab does not schedule')
})

t.test('container without command', async (t) => {
  const msg = errorOf([NODE, pod('web', '', '      image: nginx\n')])
  t.match(msg, 'Pod default/web: spec.containers[0].command: is required')
})

t.test('fields that change semantics are refused; their defaults are fine', async (t) => {
  t.match(errorOf([NODE, pod('web', '  hostNetwork: true\n')]), 'spec.hostNetwork: is not supported by the lab: pods always get their own network namespace')
  t.equal(read([NODE, pod('web', '  hostNetwork: false\n')]).pods.length, 1)
  t.match(errorOf([NODE, pod('web', '  volumes: []\n')]), 'spec.volumes: is not supported by the lab')
  t.match(errorOf([NODE, pod('web', '', '      command: ["x"]\n      readinessProbe: {httpGet: {port: 80, scheme: HTTPS}}\n')]), 'spec.containers[0].readinessProbe.httpGet.scheme: is not supported by the lab: the lab\'s kubelet probes over plain HTTP only (only "HTTP")')
  t.match(errorOf([NODE, pod('web', '', '      command: ["x"]\n      ports: [{containerPort: 53, protocol: UDP}]\n')]), 'ports[0].protocol: is not supported by the lab: the lab and the mesh carry TCP only (only "TCP")')
})

t.test('unsupported kind and apiVersion', async (t) => {
  t.match(errorOf(['apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n']), /lab\.yaml:2: unsupported kind "Deployment" \(the lab takes Node, Namespace, Pod, Service\)/)
  t.match(errorOf(['apiVersion: v2\nkind: Node\nmetadata: {name: x}\n']), 'Node x: apiVersion: must be one of "v1"')
})

t.test('every problem is reported at once', async (t) => {
  const msg = errorOf([NODE, pod('a', '', '      bogus: 1\n'), pod('b').replace('node1', 'nodeX')])
  t.match(msg, /^3 problems in the manifests:/)
  t.match(msg, 'spec.containers[0].bogus')
  t.match(msg, 'spec.containers[0].command: is required')
  t.match(msg, 'no Node "nodeX"')
})

t.test('namespaces must exist; default is implicit', async (t) => {
  t.match(errorOf([NODE, pod('web').replace('namespace: default', 'namespace: shop')]), 'Pod shop/web: metadata.namespace: no Namespace "shop" in the manifests')
  const spec = read([NODE, pod('web')])
  t.same(spec.namespaces.map((n) => n.name), ['default'])
})

t.test('a List is flattened into its items', async (t) => {
  const list = `apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Node\n  metadata: {name: node1}\n- apiVersion: v1\n  kind: Pod\n  metadata: {name: p}\n  spec:\n    nodeName: node1\n    containers: [{name: c, command: [sleep, "1"], bogus: 2}]\n`
  t.match(errorOf([list]), /lab\.yaml:12: Pod default\/p: spec\.containers\[0\]\.bogus: unknown field/)
})

t.test('Services: families, policies, cluster IPs', async (t) => {
  const svc = (spec: string, name = 's'): string => `apiVersion: v1\nkind: Service\nmetadata: {name: ${name}}\nspec:\n  selector: {app: a}\n  ports: [{port: 80}]\n${spec}`
  const one = read([svc('')]).services[0]
  t.same(one.ipFamilies, ['IPv4'])
  t.equal(one.ipFamilyPolicy, 'SingleStack')
  t.same(read([svc('  ipFamilyPolicy: PreferDualStack\n')]).services[0].ipFamilies, ['IPv4', 'IPv6'])
  t.same(read([svc('  ipFamilyPolicy: RequireDualStack\n  ipFamilies: [IPv6]\n')]).services[0].ipFamilies, ['IPv6', 'IPv4'])
  t.same(read([svc('  ipFamilies: [IPv6]\n')]).services[0].ipFamilies, ['IPv6'])
  t.match(errorOf([svc('  ipFamilies: [IPv4, IPv6]\n')]), 'spec.ipFamilyPolicy: is SingleStack (the default) but two families')
  t.match(errorOf([svc('  clusterIP: 10.0.0.1\n')]), 'spec.clusterIP: 10.0.0.1 is outside the lab\'s service ranges')
  t.match(errorOf([svc('  clusterIP: 10.96.0.50\n'), svc('  clusterIP: 10.96.0.50\n', 't')]), 'Service default/t: spec.clusterIPs: 10.96.0.50 is already the cluster IP of Service default/s')
  t.ok(read([svc('  clusterIP: None\n')]).services[0].headless)
  t.match(errorOf([svc('  type: NodePort\n')]), 'spec.type: is not supported by the lab: the lab has ClusterIP services only')
  t.match(errorOf(['apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  ports: [{port: 80}]\n']), 'spec.selector: is required')
  t.match(errorOf([svc('').replace('ports: [{port: 80}]', 'ports: [{port: 80}, {port: 81}]')]), 'spec.ports[0].name: is required when a Service has more than one port')
})

t.test('env: Downward API fields the lab can fill, others refused', async (t) => {
  const env = (fieldPath: string): string => `      command: ["x"]\n      env: [{name: A, valueFrom: {fieldRef: {fieldPath: "${fieldPath}"}}}]\n`
  t.equal(read([NODE, pod('web', '', env('status.podIP'))]).pods.length, 1)
  t.equal(read([NODE, pod('web', '', env("metadata.labels['app']"))]).pods.length, 1)
  t.match(errorOf([NODE, pod('web', '', env('spec.hostname'))]), 'valueFrom.fieldRef.fieldPath: "spec.hostname" is not supported by the lab')
  t.match(errorOf([NODE, pod('web', '', '      command: ["x"]\n      env: [{name: A, valueFrom: {secretKeyRef: {name: s, key: k}}}]\n')]), 'secretKeyRef: is not supported by the lab: the lab has no Secrets')
})

t.test('names are checked like the API server does', async (t) => {
  t.match(errorOf([NODE, pod('Web')]), 'Pod default/Web: metadata.name: "Web" must be a DNS-1123 subdomain')
  t.match(errorOf([NODE, pod('web', '', '      command: ["x"]\n      ports: [{name: http, containerPort: 80}, {name: http, containerPort: 81}]\n')]), 'duplicate port name "http"')
})

t.test('unreadable file and no files', async (t) => {
  t.throws(() => readManifests(['/nonexistent/x.yaml']), { code: 'FERRY_ERR_MANIFEST', message: /\/nonexistent\/x\.yaml: cannot read the file/ })
  t.throws(() => readManifests([]), { code: 'FERRY_ERR_MANIFEST', message: /no manifest files given/ })
})

t.test('probes: handlers, the API server\'s defaults, thresholds; bad fields with file, line and field', async (t) => {
  const container = (probes: string): string => `      command: ["x"]\n      ports: [{name: http, containerPort: 8080}, {containerPort: 9090}]\n${probes}`
  const spec = read([NODE, pod('web', '', container(
    '      readinessProbe: {httpGet: {path: /ready, port: http, httpHeaders: [{name: X-Probe, value: "1"}]}, periodSeconds: 2, failureThreshold: 1}\n' +
    '      livenessProbe: {tcpSocket: {port: 9090}, initialDelaySeconds: 3, timeoutSeconds: 0}\n' +
    '      startupProbe: {grpc: {port: 9090, service: ready}, terminationGracePeriodSeconds: 5}\n'))])
  const probes = spec.pods[0].containers[0].probes
  t.same(probes?.readiness, {
    handler: { kind: 'httpGet', path: '/ready', port: 'http', host: null, scheme: 'HTTP', headers: [{ name: 'X-Probe', value: '1' }] },
    initialDelaySeconds: 0, periodSeconds: 2, timeoutSeconds: 1, successThreshold: 1, failureThreshold: 1, terminationGracePeriodSeconds: null
  })
  t.same(probes?.liveness, {
    handler: { kind: 'tcpSocket', port: 9090, host: null },
    initialDelaySeconds: 3, periodSeconds: 10, timeoutSeconds: 1, successThreshold: 1, failureThreshold: 3, terminationGracePeriodSeconds: null
  }, 'a 0 means the default, as in the API server')
  t.same(probes?.startup?.handler, { kind: 'grpc', port: 9090, service: 'ready' })
  t.equal(probes?.startup?.terminationGracePeriodSeconds, 5, 'kept (to publish it), ignored by the lab\'s kubelet')
  t.same(read([NODE, pod('web', '', container('      livenessProbe: {exec: {command: [cat, /tmp/healthy]}}\n'))]).pods[0].containers[0].probes?.liveness?.handler, { kind: 'exec', command: ['cat', '/tmp/healthy'] })
  t.same(read([NODE, pod('web')]).pods[0].containers[0].probes, {}, 'no probes')

  const bad = (probe: string): string => errorOf([NODE, pod('web', '', container(probe))])
  t.match(bad('      readinessProbe: {periodSeconds: 1}\n'), /lab\.yaml:\d+: Pod default\/web: spec\.containers\[0\]\.readinessProbe: must specify a handler: exec, httpGet, tcpSocket or grpc/)
  t.match(bad('      readinessProbe: {tcpSocket: {port: 80}, exec: {command: [x]}}\n'), 'readinessProbe: may specify only one handler, not exec and tcpSocket')
  t.match(bad('      livenessProbe: {tcpSocket: {port: 80}, successThreshold: 2}\n'), 'livenessProbe.successThreshold: must be 1 for a livenessProbe')
  t.match(bad('      startupProbe: {tcpSocket: {port: 80}, successThreshold: 3}\n'), 'startupProbe.successThreshold: must be 1 for a startupProbe')
  t.equal(read([NODE, pod('web', '', container('      readinessProbe: {tcpSocket: {port: 80}, successThreshold: 3}\n'))]).pods[0].containers[0].probes?.readiness?.successThreshold, 3, 'a readiness probe may want several successes')
  t.match(bad('      readinessProbe: {tcpSocket: {port: 80}, periodSeconds: -1}\n'), 'readinessProbe.periodSeconds: must be greater than or equal to 0')
  t.match(bad('      readinessProbe: {tcpSocket: {port: grpc}}\n'), 'readinessProbe.tcpSocket.port: names no port of this container (its named ports: http)')
  t.match(bad('      readinessProbe: {tcpSocket: {port: 70000}}\n'), 'readinessProbe.tcpSocket.port: must be between 1 and 65535')
  t.match(bad('      readinessProbe: {httpGet: {port: 80, host: example.com}}\n'), 'readinessProbe.httpGet.host: "example.com" must be an IP address')
  t.match(bad('      readinessProbe: {httpGet: {port: 80, path: ready}}\n'), 'readinessProbe.httpGet.path: "ready" must start with "/"')
  t.match(bad('      readinessProbe: {httpGet: {port: 80, httpHeaders: [{name: "a b", value: x}]}}\n'), 'httpGet.httpHeaders[0].name: "a b" is not a valid HTTP header name')
  t.match(bad('      readinessProbe: {grpc: {port: 0}}\n'), 'readinessProbe.grpc.port: must be between 1 and 65535')
  t.match(bad('      readinessProbe: {exec: {command: []}}\n'), 'readinessProbe.exec.command: must name a command')
  // The line is the field's own: line 20 of the manifest holds `bogus`.
  t.match(bad('      readinessProbe: {tcpSocket: {port: 80}}\n      livenessProbe:\n        tcpSocket: {port: 80}\n        bogus: 1\n'), '/m/lab.yaml:20: Pod default/web: spec.containers[0].livenessProbe.bogus: unknown field "bogus"')
  t.match(bad('      readinessProbe:\n        grpc: {port: 9090, service: x, extra: 1}\n'), /lab\.yaml:\d+: Pod default\/web: spec\.containers\[0\]\.readinessProbe\.grpc\.extra: unknown field "extra"/)
})
