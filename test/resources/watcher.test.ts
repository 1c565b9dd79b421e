import t from 'tap'
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pino from 'pino'
import { Registry } from 'prom-client'
import { admitDocuments } from '../../src/resources/admission'
import { type ConfigError, formatIssue } from '../../src/resources/issues'
import { CONFIG_METRIC_NAMES } from '../../src/resources/metrics'
import { savedConfigOf } from '../../src/resources/saved-config'
import type { ConfigSnapshot } from '../../src/resources/snapshot'
import { ConfigDirectoryWatcher } from '../../src/resources/watcher'
import { waitFor } from '../helpers/wait'

// The directory watcher with real files, real fs events and a real poll: a snapshot for
// every change, admitted object by object; a bad object refused with file, line and
// field, counted and logged once, its last valid version kept, everything else applied.

class Events {
  readonly snapshots: ConfigSnapshot[] = []
  readonly rejections: ConfigError[] = []
  readonly logLines: Array<Record<string, any>> = []
  readonly log = pino({ level: 'info' }, { write: (line: string) => { this.logLines.push(JSON.parse(line)) } })
  readonly listener = {
    onSnapshot: (s: ConfigSnapshot) => { this.snapshots.push(s) },
    onRejected: (e: ConfigError) => { this.rejections.push(e) }
  }
}

function tmp (t: { teardown: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-cfg-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  return dir
}

/** How operators and the lab write: a temporary file renamed over the real one. */
function writeAtomic (path: string, text: string): void {
  writeFileSync(`${path}.tmp`, text)
  renameSync(`${path}.tmp`, path)
}

function policy (name: string, spec: string): string {
  return `apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: ${name}\n  namespace: prod\nspec:\n${spec.split('\n').map((l) => `  ${l}`).join('\n')}\n`
}

const GOOD = policy('deny-dev', 'action: DENY\nrules:\n- from:\n  - source:\n      namespaces: ["dev"]')

async function metric (registry: Registry, name: string, labels: Record<string, string> = {}): Promise<number> {
  const m = registry.getSingleMetric(name)
  if (m === undefined) throw new Error(`no metric ${name}`)
  return (await m.get()).values.find((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l))?.value ?? 0
}

function start (t: { teardown: (fn: () => void) => void }, dir: string, ev: Events, opts: { pollMs?: number, registry?: Registry } = {}): ConfigDirectoryWatcher {
  const w = new ConfigDirectoryWatcher({ dir, log: ev.log, pollMs: opts.pollMs ?? 60_000, registry: opts.registry })
  t.teardown(() => { w.close() })
  return w
}

t.test('a valid change is published through the directory watch, with the next generation', async (t) => {
  const dir = tmp(t)
  writeAtomic(join(dir, 'policies.yaml'), GOOD)
  const ev = new Events()
  const registry = new Registry()
  // Poll far slower than the test: only the fs watch can see the change in time.
  const w = start(t, dir, ev, { registry })
  await w.start(ev.listener)
  t.equal(ev.snapshots.length, 1, 'the first load is done when start() resolves')
  t.equal(w.current()?.generation, 1)
  t.equal(await metric(registry, CONFIG_METRIC_NAMES.generation), 1)
  const written = Date.now()
  writeAtomic(join(dir, 'more.yaml'), policy('allow-all', 'rules:\n- {}'))
  await waitFor(() => ev.snapshots.length === 2, { what: 'the second snapshot' })
  t.comment(`change on disk → new snapshot in ${Date.now() - written} ms`)
  t.equal(ev.snapshots[1].generation, 2)
  t.same(ev.snapshots[1].authorizationPolicies.map((p) => p.ref), ['prod/allow-all', 'prod/deny-dev'])
  t.equal(w.current(), ev.snapshots[1])
  t.ok(ev.logLines.some((l) => l.msg === 'configuration applied' && l.generation === 2))
})

// Each malformed change, with the file, line and field it must report.
const MALFORMED: Array<{ name: string, text: string, where: string }> = [
  { name: 'bad YAML', text: GOOD.replace('namespaces: ["dev"]', 'namespaces: ["dev"'), where: ':12: YAML error' },
  { name: 'unknown field', text: GOOD.replace('namespaces:', 'namespace:'), where: ':11: AuthorizationPolicy prod/deny-dev: spec.rules[0].from[0].source.namespace: unknown field' },
  { name: 'wrong type', text: GOOD.replace('namespaces: ["dev"]', 'namespaces: dev'), where: ':11: AuthorizationPolicy prod/deny-dev: spec.rules[0].from[0].source.namespaces: must be array' },
  { name: 'unknown action', text: GOOD.replace('action: DENY', 'action: REJECT'), where: ':7: AuthorizationPolicy prod/deny-dev: spec.action: "REJECT" is not one of "ALLOW", "DENY"' },
  { name: 'bad CIDR', text: GOOD.replace('namespaces: ["dev"]', 'ipBlocks: ["10.0.0.0/8", "fd00::/200"]'), where: ':11: AuthorizationPolicy prod/deny-dev: spec.rules[0].from[0].source.ipBlocks[1]: "fd00::/200" is not an IP address or CIDR block' }
]

function denyDevSources (s: ConfigSnapshot | null | undefined): unknown {
  return s?.authorizationPolicies.find((p) => p.ref === 'prod/deny-dev')?.spec.rules?.[0].from?.[0].source.namespaces
}

// Guards per-object admission: the all-or-nothing watcher published no snapshot for a
// bad state, so nothing beside the bad object could change either.
t.test('each malformed change is refused alone, naming file, line and field; its last valid version keeps serving', async (t) => {
  const dir = tmp(t)
  const file = join(dir, 'policies.yaml')
  writeAtomic(file, GOOD)
  const ev = new Events()
  const registry = new Registry()
  const w = start(t, dir, ev, { registry })
  await w.start(ev.listener)
  for (const [i, bad] of MALFORMED.entries()) {
    writeAtomic(file, bad.text)
    await waitFor(() => ev.snapshots.length === i + 2, { what: `the snapshot with ${bad.name}` })
    const s = ev.snapshots[i + 1]
    const refused = s.objects.filter((o) => o.state === 'refused')
    t.equal(refused.length, 1, `${bad.name}: one object refused`)
    t.match(formatIssue(refused[0].issues[0]), `${file}${bad.where}`, bad.name)
    t.match(refused[0], { inForce: 'earlier-version' }, `${bad.name}: its earlier version is in force`)
    t.same(denyDevSources(s), ['dev'], `${bad.name}: the last valid version is enforced`)
    t.equal(await metric(registry, CONFIG_METRIC_NAMES.rejected), i + 1, `${bad.name}: counted`)
    t.equal(await metric(registry, CONFIG_METRIC_NAMES.stale), 1)
    const line = ev.logLines.filter((l) => l.msg === 'configuration object refused').at(-1)
    t.match(line, { level: 40, dir, code: 'FERRY_ERR_CONFIG', state: 'refused', inForce: 'earlier-version', issues: [new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\\d+: `)] }, `${bad.name}: logged`)
  }
  t.equal(ev.rejections.length, 0, 'the listener\'s onRejected is for a source that cannot be read at all')
  writeAtomic(file, GOOD.replace('"dev"', '"dev", "test"'))
  await waitFor(() => ev.snapshots.length === MALFORMED.length + 2, { what: 'the fixed file' })
  t.same(denyDevSources(w.current()), ['dev', 'test'])
  t.equal(await metric(registry, CONFIG_METRIC_NAMES.stale), 0, 'no longer stale')
  t.ok(ev.logLines.some((l) => l.msg === 'configuration object accepted as written' && l.object === 'AuthorizationPolicy prod/deny-dev'), 'the recovery is logged')
})

// Guards the brief's first case: a good change in one file applies while another file
// holds a bad object (before, the bad file held back every change of the directory).
t.test('a good change in file A applies while file B holds a bad object', async (t) => {
  const dir = tmp(t)
  writeAtomic(join(dir, 'a.yaml'), GOOD)
  const ev = new Events()
  const registry = new Registry()
  const w = start(t, dir, ev, { registry })
  await w.start(ev.listener)
  writeAtomic(join(dir, 'b.yaml'), policy('broken', 'action: DENY\nrules:\n- from:\n  - source:\n      ipBlocks: ["300.0.0.1"]'))
  await waitFor(() => ev.snapshots.some((s) => s.objects.some((o) => o.object === 'AuthorizationPolicy prod/broken')), { what: 'b.yaml seen' })
  writeAtomic(join(dir, 'a.yaml'), policy('deny-dev', 'action: DENY\nrules:\n- from:\n  - source:\n      namespaces: ["qa"]'))
  await waitFor(() => JSON.stringify(denyDevSources(w.current())) === '["qa"]', { what: 'a.yaml\'s change in force' })
  const s = w.current() as ConfigSnapshot
  t.same(s.authorizationPolicies.map((p) => p.ref), ['prod/deny-dev'], 'the broken policy is not in force')
  const broken = s.objects.find((o) => o.object === 'AuthorizationPolicy prod/broken')
  t.match(broken, { state: 'refused', inForce: 'none', file: join(dir, 'b.yaml') })
  t.match(formatIssue(broken!.issues[0]), `${join(dir, 'b.yaml')}:11: AuthorizationPolicy prod/broken: spec.rules[0].from[0].source.ipBlocks[0]`)
  t.equal(await metric(registry, CONFIG_METRIC_NAMES.objects, { state: 'refused' }), 1)
  t.equal(await metric(registry, CONFIG_METRIC_NAMES.objects, { state: 'accepted' }), 1)
  t.equal(ev.logLines.filter((l) => l.msg === 'configuration object refused' && l.object === 'AuthorizationPolicy prod/broken').length, 1, 'logged once though a.yaml changed since')
  rmSync(join(dir, 'b.yaml'))
  await waitFor(() => w.current()?.objects.length === 1, { what: 'b.yaml gone' })
  t.ok(ev.logLines.some((l) => l.msg === 'configuration object no longer reported' && l.object === 'AuthorizationPolicy prod/broken'))
})

t.test('a refused or degraded object is reported once, not on every poll or touch', async (t) => {
  const dir = tmp(t)
  const file = join(dir, 'p.yaml')
  writeAtomic(file, GOOD.replace('DENY', 'NOPE'))
  writeAtomic(join(dir, 'q.yaml'), policy('allow-get', 'rules:\n- from:\n  - source:\n      requestPrincipals: ["*"]'))
  const ev = new Events()
  const registry = new Registry()
  const w = start(t, dir, ev, { pollMs: 20, registry })
  await w.start(ev.listener)
  t.equal(ev.snapshots.length, 1, 'a snapshot, with the refused object left out')
  t.match(w.current()?.objects.map((o) => [o.object, o.state]), [['AuthorizationPolicy prod/deny-dev', 'refused'], ['AuthorizationPolicy prod/allow-get', 'degraded']])
  t.same(w.current()?.authorizationPolicies.map((p) => p.ref), ['prod/allow-get'])
  const later = new Date(Date.now() + 5000)
  utimesSync(file, later, later) // the poll sees a new mtime, reads the same content
  const until = Date.now() + 300
  await waitFor(() => Date.now() > until, { what: 'a few poll periods' })
  t.equal(ev.snapshots.length, 1)
  t.equal(await metric(registry, CONFIG_METRIC_NAMES.rejected), 1)
  t.equal(await metric(registry, CONFIG_METRIC_NAMES.reports, { state: 'refused' }), 1)
  t.equal(await metric(registry, CONFIG_METRIC_NAMES.reports, { state: 'degraded' }), 1)
  t.equal(ev.logLines.filter((l) => l.msg === 'configuration object refused').length, 1)
  t.equal(ev.logLines.filter((l) => l.msg === 'configuration object degraded: enforced narrower than written').length, 1)
})

// Guards the agent's saved configuration with --config-dir: what a broken file held, or
// the whole directory when it cannot be read, comes from the save, not from nothing.
t.test('a saved configuration: the objects of a file broken at start, or of a directory that cannot be read', async (t) => {
  const dir = tmp(t)
  writeAtomic(join(dir, 'a.yaml'), GOOD)
  const saved = savedConfigOf(admitDocuments([{ path: join(dir, 'a.yaml'), text: GOOD }], { origin: dir, generation: 3 }), [])
  writeAtomic(join(dir, 'a.yaml'), 'kind: [')
  const ev = new Events()
  const w = new ConfigDirectoryWatcher({ dir, log: ev.log, pollMs: 60_000, saved })
  t.teardown(() => { w.close() })
  await w.start(ev.listener)
  t.same(denyDevSources(w.current()), ['dev'], 'kept from the saved configuration')
  t.match(w.current()?.objects[0], { state: 'refused', inForce: 'earlier-version', note: /keep their last good version: AuthorizationPolicy prod\/deny-dev/ })

  const missing = join(dir, 'gone')
  const ev2 = new Events()
  const w2 = new ConfigDirectoryWatcher({ dir: missing, log: ev2.log, pollMs: 60_000, saved })
  t.teardown(() => { w2.close() })
  await w2.start(ev2.listener)
  t.equal(ev2.rejections.length, 1, 'the directory cannot be read')
  t.same(denyDevSources(w2.current()), ['dev'], 'the saved configuration serves')
  t.match(w2.current()?.origin, /^saved configuration of /)
})

t.test('the poll finds changes when the directory watch is gone', async (t) => {
  const dir = tmp(t)
  writeAtomic(join(dir, 'p.yaml'), GOOD)
  const ev = new Events()
  const w = start(t, dir, ev, { pollMs: 50 })
  await w.start(ev.listener)
  // Stands for a filesystem without inotify: close the watch, leave only the poll.
  ;(w as any).trigger.disarm() // the directory watch is gone: only the poll is left
  writeAtomic(join(dir, 'p.yaml'), GOOD.replace('"dev"', '"qa"'))
  await waitFor(() => ev.snapshots.length === 2, { what: 'the polled change' })
  t.same(ev.snapshots[1].authorizationPolicies[0].spec.rules?.[0].from?.[0].source.namespaces, ['qa'])
})

t.test('a missing directory is reported once; when it appears its configuration is loaded', async (t) => {
  const parent = tmp(t)
  const dir = join(parent, 'policies')
  const ev = new Events()
  const w = start(t, dir, ev, { pollMs: 30 })
  await w.start(ev.listener)
  t.equal(ev.rejections.length, 1)
  t.match(ev.rejections[0].message, `${dir}: cannot read (ENOENT)`)
  t.equal(w.current(), null)
  mkdirSync(dir)
  writeAtomic(join(dir, 'p.yaml'), GOOD)
  await waitFor(() => ev.snapshots.length === 1, { what: 'the first snapshot' })
  t.equal(ev.rejections.length, 1, 'reported once while missing')
  // And later changes are seen as usual.
  writeAtomic(join(dir, 'q.yaml'), policy('q', '{}'))
  await waitFor(() => ev.snapshots.length === 2, { what: 'the second snapshot' })
})

t.test('a ConfigMap-style mount: the `..data` symlink swap is one atomic change', async (t) => {
  const dir = tmp(t)
  const v1 = join(dir, '..2024_01')
  mkdirSync(v1)
  writeFileSync(join(v1, 'policies.yaml'), GOOD)
  symlinkSync('..2024_01', join(dir, '..data'))
  symlinkSync(join('..data', 'policies.yaml'), join(dir, 'policies.yaml'))
  const ev = new Events()
  const w = start(t, dir, ev)
  await w.start(ev.listener)
  t.equal(w.current()?.authorizationPolicies.length, 1)
  const v2 = join(dir, '..2024_02')
  mkdirSync(v2)
  writeFileSync(join(v2, 'policies.yaml'), GOOD + '---\n' + policy('allow-all', 'rules:\n- {}'))
  symlinkSync('..2024_02', join(dir, '..data_tmp'))
  renameSync(join(dir, '..data_tmp'), join(dir, '..data'))
  await waitFor(() => ev.snapshots.length === 2, { what: 'the swapped configuration' })
  t.same(ev.snapshots[1].authorizationPolicies.map((p) => p.ref), ['prod/allow-all', 'prod/deny-dev'])
})
