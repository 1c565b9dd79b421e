import t, { type Test } from 'tap'
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Agent } from '../../src/agent/agent'
import { parseAgentOptions } from '../../src/agent/options'
import { hasFerryEntry, withoutFerryEntry } from '../../src/cni/conflist'
import { cniEntry, CNI_ENTRY_DEFAULTS } from '../../src/cni/entry'
import { installCni, PLUGIN_BINARY, uninstallCni } from '../../src/cni/install'
import { createDiscoverySource } from '../../src/discovery'
import { createPodLocator } from '../../src/discovery/pod-locator'
import { loadKubernetesClient } from '../../src/kubernetes/client'
import { loopbackPlatform, RecordingCapture } from '../agent/loopback-platform'
import { FakeKubeApi } from '../helpers/kube-api'
import { listText, namespaceObj } from '../discovery/fixture'
import { ferry } from '../helpers/cli'
import { captureLog } from '../proxy/harness'
import { scratch } from './plugin-runner'
import { writeTestKubeconfig } from '../kubernetes/kubeconfig'
import { waitFor } from '../helpers/wait'

// Putting ferry-cni on a node and taking it off: the binary in the CNI bin dir, Ferry's
// entry after the primary plugin of the node's CNI configuration (a conflist, or a lone
// .conf turned into one), idempotent, the primary's bytes untouched; the agent keeping
// the entry when the primary rewrites its file or a first configuration appears; and
// uninstall — by hand, or by the agent on SIGTERM only while its DaemonSet is being
// deleted (asked of a stand-in for the API server, test/helpers/kube-api.ts), never
// on a restart.

// A primary's conflist as a CNI DaemonSet writes it: its own key order, spacing and number spelling.
const CALICO = `{
  "name": "k8s-pod-network",
  "cniVersion": "0.3.1",
  "plugins": [
    {
      "type": "calico",
      "log_level": "info",
      "mtu": 1.45e3,
      "ipam": { "type": "calico-ipam" },
      "kubernetes": { "kubeconfig": "/etc/cni/net.d/calico-kubeconfig" }
    },
    { "type": "portmap", "snat": true, "capabilities": { "portMappings": true } }
  ]
}
`
const FLANNEL_CONF = '{"name":"cbr0","cniVersion":"0.3.1","type":"flannel","delegate":{"hairpinMode":true,"isDefaultGateway":true}}\n'

interface Dirs { bin: string, conf: string, run: string, stateFile: string }

function dirs (t: Test): Dirs {
  const root = scratch(t, 'ferry-cni-install-')
  const d = { bin: join(root, 'opt-cni-bin'), conf: join(root, 'etc-cni-net.d'), run: join(root, 'run'), stateFile: join(root, 'run', 'cni-state.json') }
  for (const p of [d.bin, d.conf, d.run]) mkdirSync(p)
  return d
}

const entry = cniEntry({ ...CNI_ENTRY_DEFAULTS, logFile: '/var/run/ferry/cni.log' })
const settings = { ...CNI_ENTRY_DEFAULTS, logFile: '/var/run/ferry/cni.log' }
const plugins = (file: string): any[] => JSON.parse(readFileSync(file, 'utf8')).plugins

t.test('install into a conflist: the binary, then Ferry\'s entry last; the primary\'s bytes and the file mode kept; a second run changes nothing', async (t) => {
  const d = dirs(t)
  const file = join(d.conf, '10-calico.conflist')
  writeFileSync(file, CALICO)
  chmodSync(file, 0o600)
  writeFileSync(join(d.conf, '99-loopback.conf'), '{"cniVersion":"0.3.1","name":"lo","type":"loopback"}')
  const r = installCni({ binDir: d.bin, confDir: d.conf, entry: settings })
  t.same(r.conf, { action: 'inserted', file })
  t.same(readFileSync(r.binary), readFileSync(PLUGIN_BINARY), 'the build\'s plugin, byte for byte')
  t.equal(statSync(r.binary).mode & 0o777, 0o755)
  t.same(plugins(file).map((p) => p.type), ['calico', 'portmap', 'ferry-cni'], 'after the primary and its chained plugins')
  t.same(plugins(file)[2], entry)
  t.equal(withoutFerryEntry(readFileSync(file, 'utf8'), file).text, CALICO, 'without Ferry\'s entry the file is the primary\'s, byte for byte')
  t.equal(statSync(file).mode & 0o777, 0o600, 'the file keeps its mode')
  t.notOk(hasFerryEntry(readFileSync(join(d.conf, '99-loopback.conf'), 'utf8')), 'only the first configuration (the one the runtime uses) is touched')
  t.same(readdirSync(d.conf).sort(), ['10-calico.conflist', '99-loopback.conf'], 'no temporary file left')

  // Guards idempotence: an init container runs at every agent start.
  const inode = statSync(file).ino
  const again = installCni({ binDir: d.bin, confDir: d.conf, entry: settings })
  t.same(again.conf, { action: 'none', file })
  t.equal(statSync(file).ino, inode, 'not even rewritten')

  // New settings (an upgrade): the one entry is replaced, still last.
  const changed = installCni({ binDir: d.bin, confDir: d.conf, entry: { ...settings, timeoutMs: 5000 } })
  t.same(changed.conf, { action: 'replaced', file })
  t.same(plugins(file).map((p) => p.type), ['calico', 'portmap', 'ferry-cni'])
  t.equal(plugins(file)[2].timeoutMs, 5000)
  t.equal(withoutFerryEntry(readFileSync(file, 'utf8'), file).text, CALICO)
})

t.test('install into a lone .conf: it becomes a .conflist holding it, with Ferry\'s entry after it', async (t) => {
  const d = dirs(t)
  writeFileSync(join(d.conf, '10-flannel.conf'), FLANNEL_CONF)
  const r = installCni({ binDir: d.bin, confDir: d.conf, entry: settings })
  const list = join(d.conf, '10-flannel.conflist')
  t.same(r.conf, { action: 'converted', file: list, from: join(d.conf, '10-flannel.conf') })
  t.same(readdirSync(d.conf), ['10-flannel.conflist'], 'the lone file is gone, the list replaces it')
  const doc = JSON.parse(readFileSync(list, 'utf8'))
  t.same({ cniVersion: doc.cniVersion, name: doc.name }, { cniVersion: '0.3.1', name: 'cbr0' }, 'the list takes the network\'s version and name')
  t.same(doc.plugins, [JSON.parse(FLANNEL_CONF), entry])
  t.ok(readFileSync(list, 'utf8').includes(FLANNEL_CONF.trim()), 'the primary\'s configuration is in it byte for byte')
  t.same(installCni({ binDir: d.bin, confDir: d.conf, entry: settings }).conf, { action: 'none', file: list }, 'idempotent')

  // The primary writes its .conf again (it sorts first): converted again, the list replaced.
  writeFileSync(join(d.conf, '10-flannel.conf'), FLANNEL_CONF.replace('cbr0', 'cbr1'))
  installCni({ binDir: d.bin, confDir: d.conf, entry: settings })
  t.same(readdirSync(d.conf), ['10-flannel.conflist'])
  t.equal(JSON.parse(readFileSync(list, 'utf8')).name, 'cbr1')
})

t.test('what is not touched: no configuration yet, a first file that is not JSON, a list with no primary, a version that cannot chain', async (t) => {
  const d = dirs(t)
  t.same(installCni({ binDir: d.bin, confDir: d.conf, entry: settings }).conf, { action: 'none', file: null }, 'no configuration: the binary only (the agent inserts the entry later)')
  t.ok(existsSync(join(d.bin, 'ferry-cni')))
  const cases: Array<[string, string, RegExp]> = [
    ['05-broken.conflist', '{"name": "k8s", "plugins": [', /05-broken.conflist: not valid JSON .*; left as it is/],
    ['05-empty.conflist', '{"cniVersion": "1.0.0", "name": "k8s", "plugins": []}', /no primary CNI plugin in "plugins" for Ferry's entry to follow/],
    ['05-old.conf', '{"cniVersion": "0.2.0", "name": "k8s", "type": "bridge"}', /cniVersion "0.2.0" cannot chain plugins/],
    ['05-odd.json', '{"cniVersion": "1.0.0", "name": "k8s"}', /neither a network configuration \("type"\) nor a list \("plugins"\)/]
  ]
  writeFileSync(join(d.conf, '10-calico.conflist'), CALICO)
  for (const [name, text, why] of cases) {
    writeFileSync(join(d.conf, name), text)
    t.throws(() => installCni({ binDir: d.bin, confDir: d.conf, entry: settings }), { code: 'FERRY_ERR_CNI_CONF', message: why }, name)
    t.equal(readFileSync(join(d.conf, name), 'utf8'), text, `${name} left as it was`)
    t.equal(readFileSync(join(d.conf, '10-calico.conflist'), 'utf8'), CALICO, `${name}: the second file is not edited instead`)
    uninstallCni({ binDir: null, confDir: d.conf, stateFile: d.stateFile })
    renameSync(join(d.conf, name), join(d.conf, `.${name}.off`))
  }
})

t.test('uninstall: the entry out of every configuration, then the binary, then the state file; again: nothing to do', async (t) => {
  const d = dirs(t)
  const file = join(d.conf, '10-calico.conflist')
  writeFileSync(file, CALICO)
  installCni({ binDir: d.bin, confDir: d.conf, entry: settings })
  writeFileSync(d.stateFile, '{"version":1,"node":"n1","meshedNamespaces":[],"pods":[]}')
  const r = uninstallCni({ binDir: d.bin, confDir: d.conf, stateFile: d.stateFile })
  t.same(r, { confs: [file], binaryRemoved: true, stateFileRemoved: true, errors: [] })
  t.equal(readFileSync(file, 'utf8'), CALICO, 'the primary\'s file exactly as it wrote it')
  t.notOk(existsSync(join(d.bin, 'ferry-cni')))
  t.notOk(existsSync(d.stateFile))
  t.same(uninstallCni({ binDir: d.bin, confDir: d.conf, stateFile: d.stateFile }), { confs: [], binaryRemoved: false, stateFileRemoved: false, errors: [] })
})

t.test('`ferry cni install` and `ferry cni uninstall` (the built CLI, as the init container runs it)', async (t) => {
  const d = dirs(t)
  const file = join(d.conf, '10-calico.conflist')
  writeFileSync(file, CALICO)
  const args = ['--bin-dir', d.bin, '--conf-dir', d.conf, '--socket', '/var/run/ferry/cni.sock', '--state-file', '/var/run/ferry/cni-state.json', '--log-file', '/var/run/ferry/cni.log']
  const r = await ferry(['cni', 'install', ...args])
  t.equal(r.code, 0, r.stderr)
  t.match(r.stdout, `ferry cni: plugin installed as ${join(d.bin, 'ferry-cni')}\nferry cni: Ferry's entry inserted in ${file}\n`)
  t.same(plugins(file)[2], entry)
  t.match((await ferry(['cni', 'install', ...args])).stdout, 'already has Ferry\'s entry')
  const bad = await ferry(['cni', 'install', '--socket', 'relative.sock'])
  t.equal(bad.code, 1)
  t.match(bad.stderr, /FERRY_ERR_INVALID_ARG: ferry cni install: --socket "relative.sock" is invalid: expected an absolute path/)
  const u = await ferry(['cni', 'uninstall', '--bin-dir', d.bin, '--conf-dir', d.conf, '--state-file', d.stateFile])
  t.equal(u.code, 0, u.stderr)
  t.match(u.stdout, `ferry cni: Ferry's entry removed from ${file}\nferry cni: plugin removed\nferry cni: state file was not there\n`)
  t.equal(readFileSync(file, 'utf8'), CALICO)
})

async function agentWith (t: Test, d: Dirs, o: { kubeconfig?: string, daemonSet?: boolean } = {}): Promise<{ agent: Agent, lines: any[] }> {
  const cluster = join(d.run, 'cluster.json')
  writeFileSync(cluster, listText([namespaceObj('shop', { 'ferry.dev/mesh': 'enabled' })]))
  const { log, lines } = captureLog()
  const discovery = o.kubeconfig === undefined ? ['--cluster-file', cluster] : ['--kubernetes', '--kubeconfig', o.kubeconfig]
  const options = parseAgentOptions(['--node', 'n1', ...discovery, '--pin-root', '/sys/fs/bpf/ferry-test', '--admin-port', '0', '--ready-port', '0',
    '--cni-socket', join(d.run, 'cni.sock'), '--cni-state-file', d.stateFile, '--cni-log-file', '/var/run/ferry/cni.log',
    '--cni-conf-dir', d.conf, '--cni-bin-dir', d.bin, ...(o.daemonSet === true ? ['--cni-daemonset', 'ferry-agent'] : [])], { POD_NAMESPACE: 'ferry-system' })
  // Discovery from the cluster file in every case (the API stand-in only answers for the DaemonSet).
  const source = createDiscoverySource('file', { target: cluster, log })
  const agent = await Agent.start(options, { platform: loopbackPlatform(new RecordingCapture()), log, source, locator: createPodLocator('lab-annotations') })
  let closed = false
  t.teardown(async () => { if (!closed) await agent.close() })
  const close = agent.close.bind(agent)
  agent.close = async () => { closed = true; await close() }
  await waitFor(() => existsSync(d.stateFile), { timeoutMs: 5000, what: 'state file' })
  return { agent, lines }
}

t.test('the agent keeps the entry: re-inserted when the primary rewrites its file, inserted when a first configuration appears', async (t) => {
  const d = dirs(t)
  installCni({ binDir: d.bin, confDir: d.conf, entry: settings })
  const { agent, lines } = await agentWith(t, d)
  t.ok(lines.some((l) => l.msg === 'no CNI configuration on this node yet: Ferry\'s entry goes in when the primary CNI writes one'))

  // A first configuration appears (the primary CNI's DaemonSet started after Ferry's).
  const file = join(d.conf, '10-flannel.conflist')
  writeFileSync(join(d.conf, '.flannel.tmp'), `{"cniVersion":"0.3.1","name":"cbr0","plugins":[${FLANNEL_CONF.trim()}]}`)
  renameSync(join(d.conf, '.flannel.tmp'), file)
  await waitFor(() => hasFerryEntry(readFileSync(file, 'utf8')), { timeoutMs: 10_000, what: 'entry inserted into the new configuration' })
  const agentEntry = cniEntry({ ...settings, socket: join(d.run, 'cni.sock'), stateFile: d.stateFile })
  t.same(plugins(file)[1], agentEntry, 'the entry of the agent\'s own --cni-* settings')

  // Guards re-insertion: the primary rewrites its file (in place, as some do) without Ferry's entry.
  writeFileSync(file, CALICO)
  await waitFor(() => { try { return hasFerryEntry(readFileSync(file, 'utf8')) } catch { return false } }, { timeoutMs: 10_000, what: 'entry re-inserted after the rewrite' })
  t.same(plugins(file).map((p) => p.type), ['calico', 'portmap', 'ferry-cni'])
  t.equal(withoutFerryEntry(readFileSync(file, 'utf8'), file).text, CALICO)
  t.ok(lines.some((l) => l.msg === 'CNI configuration: Ferry\'s entry inserted after the primary plugin' && l.file === file))

  // A restart (SIGTERM without the DaemonSet being deleted): everything stays for the next agent.
  await agent.drain(0)
  await agent.close()
  t.ok(hasFerryEntry(readFileSync(file, 'utf8')), 'entry kept')
  t.ok(existsSync(join(d.bin, 'ferry-cni')), 'binary kept')
  t.ok(existsSync(d.stateFile), 'state file kept')
  t.notOk(existsSync(join(d.run, 'cni.sock')), 'its socket removed: the plugin waits for the next agent')
})

t.test('SIGTERM uninstalls only while the agent\'s DaemonSet is being deleted (asked of the API server)', async (t) => {
  await loadKubernetesClient()
  const api = new FakeKubeApi()
  const url = await api.start()
  t.teardown(async () => { await api.close() })
  const collection = '/apis/apps/v1/namespaces/ferry-system/daemonsets'
  api.install(collection)
  const ds = { apiVersion: 'apps/v1', kind: 'DaemonSet', metadata: { name: 'ferry-agent', namespace: 'ferry-system', generation: 3 }, spec: { selector: { matchLabels: { 'app.kubernetes.io/name': 'ferry-agent' } }, template: { metadata: { labels: { 'app.kubernetes.io/name': 'ferry-agent' } }, spec: { containers: [{ name: 'agent', image: 'ferry:0.1.0' }] } } }, status: { currentNumberScheduled: 1, desiredNumberScheduled: 1, numberMisscheduled: 0, numberReady: 1 } }
  const scenarios: Array<{ what: string, before: () => void, removed: boolean, why: RegExp }> = [
    { what: 'in place (a restart or an upgrade)', before: () => { api.apply(collection, ds) }, removed: false, why: /is in place/ },
    { what: 'being deleted (foreground propagation)', before: () => { api.apply(collection, { ...ds, metadata: { ...ds.metadata, deletionTimestamp: '2026-12-06T10:00:00Z', finalizers: ['foregroundDeletion'] } }) }, removed: true, why: /is being deleted/ },
    { what: 'gone (background propagation)', before: () => { api.delete(collection, 'ferry-system', 'ferry-agent') }, removed: true, why: /is gone/ },
    { what: 'not known: the API server cannot be reached', before: () => {}, removed: false, why: /cannot read DaemonSet|no answer/ }
  ]
  for (const [i, s] of scenarios.entries()) {
    const d = dirs(t)
    const file = join(d.conf, '10-calico.conflist')
    writeFileSync(file, CALICO)
    installCni({ binDir: d.bin, confDir: d.conf, entry: settings })
    const kubeconfig = join(d.run, 'kubeconfig')
    writeTestKubeconfig(kubeconfig, i === 3 ? 'http://127.0.0.1:1' : url, 'x')
    const { agent, lines } = await agentWith(t, d, { kubeconfig, daemonSet: true })
    await waitFor(() => hasFerryEntry(readFileSync(file, 'utf8')), { timeoutMs: 5000, what: 'entry in place' })
    s.before()
    await agent.drain(0)
    await agent.close()
    t.equal(!hasFerryEntry(readFileSync(file, 'utf8')), s.removed, `${s.what}: entry ${s.removed ? 'removed' : 'kept'}`)
    t.equal(!existsSync(join(d.bin, 'ferry-cni')), s.removed, `${s.what}: binary ${s.removed ? 'removed' : 'kept'}`)
    t.equal(!existsSync(d.stateFile), s.removed, `${s.what}: state file ${s.removed ? 'removed' : 'kept'}`)
    if (s.removed) t.equal(readFileSync(file, 'utf8'), CALICO, `${s.what}: the primary's file as it wrote it`)
    t.match(lines.find((l) => typeof l.why === 'string' && l.daemonSet === 'ferry-system/ferry-agent'), { uninstall: s.removed, why: s.why }, `${s.what}: logged with the reason`)
  }
})
