import t from 'tap'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { REPO } from '../helpers/cli'
import { testCa } from '../identity/certs'

// Regression guard for the agent's base memory (benchmarks/notes-memory.md): what the
// agent's start-up path loads decides most of its RSS. A child process (the built tree,
// as every CLI test runs it) walks that path without root — imports `ferry agent`'s
// command, selects discovery, opens an empty --config-dir, parses a cluster file — and
// reports every module in require.cache. Modules only some modes need must not be there.

const DIST = join(REPO, 'dist', 'src')

interface Loaded { files: string[] }

function startupModules (script: string): Loaded {
  const r = spawnSync(process.execPath, ['-e', script], { cwd: REPO, encoding: 'utf8', timeout: 60_000, env: { ...process.env, NODE_OPTIONS: '' } })
  if (r.status !== 0) throw new Error(`child exited ${String(r.status)}: ${r.stderr}`)
  return JSON.parse(r.stdout.trim().split('\n').pop() as string) as Loaded
}

const PRINT = 'process.stdout.write("\\n" + JSON.stringify({ files: Object.keys(require.cache) }) + "\\n")'

function packagesOf (files: readonly string[]): Set<string> {
  const out = new Set<string>()
  for (const f of files) {
    const m = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(f)
    if (m !== null) out.add(m[1])
  }
  return out
}

function ferryDirsOf (files: readonly string[]): Set<string> {
  const out = new Set<string>()
  for (const f of files) if (f.startsWith(DIST + '/')) out.add(f.slice(DIST.length + 1).split('/')[0])
  return out
}

/** ajv's modules other than the small runtime helpers that precompiled validators require. */
function ajvCompiler (files: readonly string[]): string[] {
  return files.filter((f) => f.includes('/node_modules/ajv/') && !f.includes('/node_modules/ajv/dist/runtime/'))
}

// Only --kubernetes, the lab, install or the controller use these; a CA adds gRPC and x509.
const NEVER_PACKAGES = ['kubernetes-models', '@kubernetes/client-node']
const CA_ONLY_PACKAGES = ['@peculiar/x509', 'reflect-metadata', 'tsyringe', '@grpc/grpc-js', '@grpc/proto-loader', 'protobufjs']
const NEVER_DIRS = ['lab', 'install', 'kubernetes', 'controller']

t.test('the agent without a CA: a cluster file and an empty config directory load no mode-specific module', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-startup-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  const list = JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [{ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'app' } }] })
  const { files } = startupModules(`
    (async () => {
      require(${JSON.stringify(join(DIST, 'cli', 'agent-command.js'))})
      const { parseAgentOptions } = require(${JSON.stringify(join(DIST, 'agent', 'options.js'))})
      const { agentDiscovery } = require(${JSON.stringify(join(DIST, 'agent', 'discovery-mode.js'))})
      const { openConfigSource } = require(${JSON.stringify(join(DIST, 'agent', 'config-source.js'))})
      const { parseClusterList } = require(${JSON.stringify(join(DIST, 'discovery', 'cluster-list.js'))})
      const { Registry } = require('prom-client')
      const { createLogger } = require(${JSON.stringify(join(DIST, 'telemetry', 'logger.js'))})
      const log = createLogger({ name: 't', level: 'silent' })
      const options = parseAgentOptions(['--node', 'n1', '--cluster-file', '/nonexistent.json', '--pin-root', '/sys/fs/bpf/x', '--config-dir', ${JSON.stringify(dir)}])
      agentDiscovery(options, log)
      const opened = await openConfigSource({ configDir: options.configDir, fromController: false, identity: null }, { log, registry: new Registry() })
      await opened.source.start({ onSnapshot () {}, onRejected () {} })
      opened.source.close()
      parseClusterList(${JSON.stringify(list)}, 'c.json', 1)
      ${PRINT}
    })().catch((err) => { console.error(err); process.exit(1) })
  `)
  const packages = packagesOf(files)
  const dirs = ferryDirsOf(files)
  t.ok(dirs.has('agent') && dirs.has('proxy') && dirs.has('resources'), 'the walk went through the agent')
  for (const p of [...NEVER_PACKAGES, ...CA_ONLY_PACKAGES, 'yaml']) t.notOk(packages.has(p), `${p} is not loaded`)
  // The cluster file's validators are precompiled (src/discovery/cluster-list-codegen.ts): only ajv's small runtime helpers load.
  t.same(ajvCompiler(files), [], 'ajv\'s compiler is not loaded')
  for (const d of NEVER_DIRS) t.notOk(dirs.has(d), `src/${d} is not loaded`)
})

t.test('importing `ferry agent` loads no schema compiler, YAML parser, CA or Kubernetes module', async (t) => {
  const { files } = startupModules(`require(${JSON.stringify(join(DIST, 'cli', 'agent-command.js'))}); ${PRINT}`)
  const packages = packagesOf(files)
  for (const p of [...NEVER_PACKAGES, ...CA_ONLY_PACKAGES, 'yaml']) t.notOk(packages.has(p), `${p} is not loaded`)
  t.same(ajvCompiler(files), [], 'ajv\'s compiler is not loaded')
  for (const d of NEVER_DIRS) t.notOk(ferryDirsOf(files).has(d), `src/${d} is not loaded`)
})

t.test('--kubernetes loads the kubernetes source and locator on demand, still without kubernetes-models', async (t) => {
  const { files } = startupModules(`
    const { parseAgentOptions } = require(${JSON.stringify(join(DIST, 'agent', 'options.js'))})
    const { agentDiscovery } = require(${JSON.stringify(join(DIST, 'agent', 'discovery-mode.js'))})
    const { createLogger } = require(${JSON.stringify(join(DIST, 'telemetry', 'logger.js'))})
    const options = parseAgentOptions(['--node', 'n1', '--kubernetes', '--host-proc', '/proc', '--cgroup-root', '/sys/fs/cgroup', '--pin-root', '/sys/fs/bpf/x'])
    const d = agentDiscovery(options, createLogger({ name: 't', level: 'silent' }))
    if (d.source.constructor.name !== 'KubernetesDiscoverySource') throw new Error('wrong source: ' + d.source.constructor.name)
    ${PRINT}
  `)
  t.ok(ferryDirsOf(files).has('kubernetes'), 'src/kubernetes is loaded')
  for (const p of ['kubernetes-models', '@kubernetes/client-node']) t.notOk(packagesOf(files).has(p), `${p} is not loaded before the source starts`)
})

t.test('with a CA: identities, the tunnel, a CSR and a verified peer load gRPC and x509 (its CSR code), still none of the other modes', async (t) => {
  const ca = await testCa()
  const web = await ca.svid('app/web')
  const { files } = startupModules(`
    (async () => {
      require(${JSON.stringify(join(DIST, 'cli', 'agent-command.js'))})
      require(${JSON.stringify(join(DIST, 'agent', 'identities.js'))})
      require(${JSON.stringify(join(DIST, 'agent', 'node-tunnel.js'))})
      const { generateWorkloadKey } = require(${JSON.stringify(join(DIST, 'identity', 'keys.js'))})
      const { createCsr } = require(${JSON.stringify(join(DIST, 'identity', 'csr.js'))})
      const { parseSpiffeId } = require(${JSON.stringify(join(DIST, 'identity', 'spiffe-id.js'))})
      const { trustBundleOf, verifyPeer } = require(${JSON.stringify(join(DIST, 'identity', 'peer-verify.js'))})
      const { X509Certificate } = require('node:crypto')
      const csr = await createCsr(await generateWorkloadKey(), parseSpiffeId('spiffe://cluster.local/ns/app/sa/web'))
      if (!csr.startsWith('-----BEGIN CERTIFICATE REQUEST-----')) throw new Error('no CSR')
      const verdict = verifyPeer(new X509Certificate(${JSON.stringify(web.chain[0])}), trustBundleOf('cluster.local', ${JSON.stringify(ca.issuer.bundle())}), { expected: ${JSON.stringify(web.spiffeId.uri)} })
      if (!verdict.ok) throw new Error('peer rejected: ' + verdict.detail)
      ${PRINT}
    })().catch((err) => { console.error(err); process.exit(1) })
  `)
  const packages = packagesOf(files)
  t.ok(packages.has('@grpc/grpc-js'), 'the CA client is loaded')
  t.ok(packages.has('@peculiar/x509'), 'CSRs are @peculiar/x509\'s work (not hand-written DER)')
  for (const p of NEVER_PACKAGES) t.notOk(packages.has(p), `${p} is not loaded`)
  for (const d of NEVER_DIRS) t.notOk(ferryDirsOf(files).has(d), `src/${d} is not loaded`)
})

// A data-path worker thread checks every tunnel peer: the SANs come from Node's own parse
// of the certificate (src/identity/san-uris.ts), so a worker loads no X.509 library
// (≈200 modules, ≈4.5 MiB per worker) and no gRPC — those are the main thread's (CSRs,
// the CA client).
t.test('a data-path worker with a CA: its data plane and a verified peer load neither x509 nor gRPC', async (t) => {
  const ca = await testCa()
  const web = await ca.svid('app/web')
  const { files } = startupModules(`
    require(${JSON.stringify(join(DIST, 'worker', 'data-plane.js'))})
    const { trustBundleOf, verifyPeer } = require(${JSON.stringify(join(DIST, 'identity', 'peer-verify.js'))})
    const { X509Certificate } = require('node:crypto')
    const verdict = verifyPeer(new X509Certificate(${JSON.stringify(web.chain[0])}), trustBundleOf('cluster.local', ${JSON.stringify(ca.issuer.bundle())}), { expected: ${JSON.stringify(web.spiffeId.uri)} })
    if (!verdict.ok) throw new Error('peer rejected: ' + verdict.detail)
    ${PRINT}
  `)
  t.ok(ferryDirsOf(files).has('tunnel'), 'the tunnel is loaded')
  const packages = packagesOf(files)
  for (const p of CA_ONLY_PACKAGES) t.notOk(packages.has(p), `${p} is not loaded`)
})
