import t from 'tap'
import { resolve } from 'node:path'
import { CONTROLLER_DEFAULTS, parseControllerOptions, parseListen } from '../../src/controller/options'
import { OVERLAYS, renderObjects } from '../../src/install/render'

// `ferry controller` options: strict, validated once, frozen.

const base = ['--data-dir', '/tmp/ca', '--lab-nodes', '/tmp/tokens.json', '--cluster-file', '/tmp/cluster.json']

t.test('defaults', async (t) => {
  const o = parseControllerOptions(base)
  t.same(o.listen, { host: '127.0.0.1', port: 15012 })
  t.equal(o.trustDomain, 'cluster.local')
  t.equal(o.certTtlMs, CONTROLLER_DEFAULTS.certTtlMs)
  t.same(o.servingNames, ['127.0.0.1', ...CONTROLLER_DEFAULTS.servingNames])
  t.equal(o.stateDir, o.dataDir, 'the configuration state is saved in the data directory')
  t.ok(Object.isFrozen(o))
  t.equal(parseControllerOptions([...base, '--state-dir', 'state']).stateDir, resolve('state'), 'unless --state-dir')
})

t.test('every option', async (t) => {
  const o = parseControllerOptions([...base, '--listen', '[::1]:0', '--trust-domain', 'mesh.example', '--cert-ttl', '1h30m',
    '--serving-name', '10.0.0.1', '--serving-name', 'ca.mesh.example', '--log-level', 'debug'])
  t.same(o.listen, { host: '::1', port: 0 })
  t.equal(o.trustDomain, 'mesh.example')
  t.equal(o.certTtlMs, 5_400_000)
  t.same(o.servingNames, ['::1', ...CONTROLLER_DEFAULTS.servingNames, '10.0.0.1', 'ca.mesh.example'])
  t.equal(o.logLevel, 'debug')
  t.same(parseControllerOptions([...base, '--listen', '0.0.0.0:15012']).servingNames, CONTROLLER_DEFAULTS.servingNames, 'no wildcard in the certificate')
})

t.test('bad values are refused by name', async (t) => {
  const bad: Array<[string[], RegExp]> = [
    [['--listen', '127.0.0.1'], /--listen "127.0.0.1" is invalid/],
    [['--listen', '127.0.0.1:70000'], /--listen/],
    [['--trust-domain', 'Cluster.Local'], /--trust-domain "Cluster.Local" is invalid/],
    [['--cert-ttl', '10y'], /--cert-ttl "10y" is invalid: expected a duration such as/],
    [['--cert-ttl', '500ms'], /--cert-ttl "500ms" is invalid: expected a duration from 1s to 365d/],
    [['--serving-name', 'bad name'], /--serving-name "bad name"/],
    [['--log-level', 'loud'], /--log-level "loud"/],
    [['--bogus', 'x'], /Unknown option '--bogus'/]
  ]
  for (const [args, message] of bad) t.throws(() => parseControllerOptions([...base, ...args]), { code: 'FERRY_ERR_INVALID_ARG', message }, args.join(' '))
  t.throws(() => parseControllerOptions(['--lab-nodes', 'x', '--cluster-file', 'y']), { code: 'FERRY_ERR_INVALID_ARG', message: /--data-dir is required/ })
  t.throws(() => parseControllerOptions(['--data-dir', 'x', '--cluster-file', 'y']), { code: 'FERRY_ERR_INVALID_ARG', message: /--lab-nodes is required/ })
})

t.test('lab mode: the lab\'s files, no Kubernetes; --config-dir optional', async (t) => {
  const o = parseControllerOptions(base)
  t.match(o, { labNodesFile: '/tmp/tokens.json', clusterFile: '/tmp/cluster.json', kubernetes: null, configDir: null, rootNamespace: 'ferry-system' })
  t.equal(parseControllerOptions([...base, '--config-dir', '/etc/ferry/policies', '--root-namespace', 'mesh-root']).configDir, '/etc/ferry/policies')
  t.throws(() => parseControllerOptions([...base, '--kubeconfig', '/k']), { code: 'FERRY_ERR_INVALID_ARG', message: /--kubeconfig needs --kubernetes/ })
  t.throws(() => parseControllerOptions([...base, '--token-audience', 'x']), { message: /--token-audience needs --kubernetes/ })
  t.throws(() => parseControllerOptions([...base, '--root-namespace', 'Not_A_Namespace']), { message: /--root-namespace "Not_A_Namespace" is invalid/ })
})

t.test('--kubernetes: TokenReview, pods and policies from the API server', async (t) => {
  const k = ['--data-dir', '/tmp/ca', '--kubernetes']
  const o = parseControllerOptions(k)
  t.match(o, { labNodesFile: null, clusterFile: null, configDir: null, kubernetes: { kubeconfig: null, tokenAudience: 'ferry-ca', agentServiceAccount: { namespace: null, name: 'ferry-agent' } } })
  t.ok(Object.isFrozen(o.kubernetes))
  const all = parseControllerOptions([...k, '--kubeconfig', '/root/.kube/config', '--token-audience', 'mesh-ca', '--agent-service-account', 'mesh:node-agent', '--config-dir', '/p'])
  t.match(all, { configDir: '/p', kubernetes: { kubeconfig: '/root/.kube/config', tokenAudience: 'mesh-ca', agentServiceAccount: { namespace: 'mesh', name: 'node-agent' } } })
  t.throws(() => parseControllerOptions([...k, '--lab-nodes', 'x']), { code: 'FERRY_ERR_INVALID_ARG', message: /--lab-nodes is for the lab/ })
  t.throws(() => parseControllerOptions([...k, '--cluster-file', 'x']), { message: /--cluster-file is for the lab/ })
  t.throws(() => parseControllerOptions([...k, '--agent-service-account', 'a:b:c']), { message: /--agent-service-account "a:b:c" is invalid: expected NAME or NAMESPACE:NAME/ })
  t.throws(() => parseControllerOptions([...k, '--token-audience', 'two words']), { message: /--token-audience "two words" is invalid/ })
  t.throws(() => parseControllerOptions([...k, '--kubernetes=yes']), { code: 'FERRY_ERR_INVALID_ARG' })
})

t.test('the controller container\'s args in every rendered overlay are accepted as they are', async (t) => {
  for (const overlay of OVERLAYS) {
    const objects = await renderObjects({ overlay, settings: new Map(), manifests: true, generateCa: false })
    const deployment = objects.find((o) => o.kind === 'Deployment' && o.metadata?.name === 'ferry-controller') as any
    const args: string[] = deployment.spec.template.spec.containers[0].args
    t.equal(args[0], 'controller', `${overlay}: the subcommand`)
    const o = parseControllerOptions(args.slice(1))
    t.ok(o.kubernetes !== null, `${overlay}: --kubernetes mode`)
    t.match(o, { listen: { host: '0.0.0.0', port: 15012 }, dataDir: '/var/run/secrets/ferry/ca-root', configDir: null, kubernetes: { tokenAudience: 'ferry-ca' } }, overlay)
  }
})

t.test('parseListen', async (t) => {
  t.same(parseListen('localhost:0'), { host: 'localhost', port: 0 })
  t.throws(() => parseListen('[localhost]:1'))
  t.throws(() => parseListen('::1:15012'))
})
