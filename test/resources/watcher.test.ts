import t from 'tap'
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pino from 'pino'
import { Registry } from 'prom-client'
import type { ConfigError } from '../../src/resources/issues'
import { CONFIG_METRIC_NAMES } from '../../src/resources/metrics'
import type { ConfigSnapshot } from '../../src/resources/snapshot'
import { ConfigDirectoryWatcher } from '../../src/resources/watcher'

// The directory watcher with real files, real fs events and a real poll: a new snapshot
// only when the whole directory is valid; a bad change rejected with file, line and
// field, counted, logged, and the last good snapshot kept.

class Events {
  readonly snapshots: ConfigSnapshot[] = []
  readonly rejections: ConfigError[] = []
  readonly logLines: Array<Record<string, any>> = []
  readonly log = pino({ level: 'info' }, { write: (line: string) => { this.logLines.push(JSON.parse(line)) } })
  readonly listener = {
    onSnapshot: (s: ConfigSnapshot) => { this.snapshots.push(s) },
    onRejected: (e: ConfigError) => { this.rejections.push(e) }
  }

  /** Polls (never a bare sleep) until cond holds, bounded. */
  async until (cond: () => boolean, what: string, ms = 5000): Promise<void> {
    const deadline = Date.now() + ms
    while (!cond()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
      await new Promise((resolve) => setTimeout(resolve, 5))
    }
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

async function metric (registry: Registry, name: string): Promise<number> {
  const m = registry.getSingleMetric(name)
  if (m === undefined) throw new Error(`no metric ${name}`)
  return (await m.get()).values[0]?.value ?? 0
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
  await ev.until(() => ev.snapshots.length === 2, 'the second snapshot')
  t.comment(`change on disk → new snapshot in ${Date.now() - written} ms`)
  t.equal(ev.snapshots[1].generation, 2)
  t.same(ev.snapshots[1].authorizationPolicies.map((p) => p.ref), ['prod/allow-all', 'prod/deny-dev'])
  t.equal(w.current(), ev.snapshots[1])
  t.ok(ev.logLines.some((l) => l.msg === 'configuration applied' && l.generation === 2))
})

// Each malformed change the issue names, with the file, line and field it must report.
const MALFORMED: Array<{ name: string, text: string, where: string }> = [
  { name: 'bad YAML', text: GOOD.replace('namespaces: ["dev"]', 'namespaces: ["dev"'), where: ':12: YAML error' },
  { name: 'unknown field', text: GOOD.replace('namespaces:', 'namespace:'), where: ':11: AuthorizationPolicy prod/deny-dev: spec.rules[0].from[0].source.namespace: unknown field' },
  { name: 'Istio field Ferry lacks', text: GOOD + '  - to:\n    - operation:\n        hosts: ["db.prod"]\n', where: ':14: AuthorizationPolicy prod/deny-dev: spec.rules[1].to[0].operation.hosts: not supported by Ferry' },
  { name: 'wrong type', text: GOOD.replace('namespaces: ["dev"]', 'namespaces: dev'), where: ':11: AuthorizationPolicy prod/deny-dev: spec.rules[0].from[0].source.namespaces: must be array' },
  { name: 'unknown action', text: GOOD.replace('action: DENY', 'action: REJECT'), where: ':7: AuthorizationPolicy prod/deny-dev: spec.action: "REJECT" is not one of "ALLOW", "DENY"' },
  { name: 'bad CIDR', text: GOOD.replace('namespaces: ["dev"]', 'ipBlocks: ["10.0.0.0/8", "fd00::/200"]'), where: ':11: AuthorizationPolicy prod/deny-dev: spec.rules[0].from[0].source.ipBlocks[1]: "fd00::/200" is not an IP address or CIDR block' }
]

t.test('each malformed change is rejected naming file, line and field; the last good snapshot keeps serving', async (t) => {
  const dir = tmp(t)
  const file = join(dir, 'policies.yaml')
  writeAtomic(file, GOOD)
  const ev = new Events()
  const registry = new Registry()
  const w = start(t, dir, ev, { registry })
  await w.start(ev.listener)
  const good = w.current()
  t.ok(good)
  for (const [i, bad] of MALFORMED.entries()) {
    writeAtomic(file, bad.text)
    await ev.until(() => ev.rejections.length === i + 1, `the rejection of ${bad.name}`)
    const err = ev.rejections[i]
    t.equal(err.code, 'FERRY_ERR_CONFIG', bad.name)
    t.match(err.message, `${file}${bad.where}`, bad.name)
    t.equal(w.current(), good, `${bad.name}: the last good snapshot is still current`)
    t.equal(await metric(registry, CONFIG_METRIC_NAMES.rejected), i + 1, `${bad.name}: counted`)
    t.equal(await metric(registry, CONFIG_METRIC_NAMES.stale), 1)
    const line = ev.logLines.filter((l) => l.msg === 'configuration rejected; the last good configuration keeps serving')[i]
    t.match(line, { level: 40, dir, code: 'FERRY_ERR_CONFIG', generation: 1, issues: [new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\\d+: `)] }, `${bad.name}: logged`)
  }
  t.equal(ev.snapshots.length, 1, 'no snapshot from a bad state')
  // Back to exactly what is serving: no new generation, no longer stale.
  writeAtomic(file, GOOD)
  await ev.until(() => ev.logLines.some((l) => l.msg === 'configuration valid again, unchanged'), 'the good state to be seen')
  t.equal(await metric(registry, CONFIG_METRIC_NAMES.stale), 0)
  t.equal(ev.snapshots.length, 1)
  writeAtomic(file, GOOD.replace('"dev"', '"dev", "test"'))
  await ev.until(() => ev.snapshots.length === 2, 'a new good snapshot')
  t.equal(ev.snapshots[1].generation, 2, 'generations continue from the last good one')
})

t.test('one bad file rejects the whole directory change, even with good changes beside it', async (t) => {
  const dir = tmp(t)
  writeAtomic(join(dir, 'a.yaml'), GOOD)
  const ev = new Events()
  const w = start(t, dir, ev)
  await w.start(ev.listener)
  writeAtomic(join(dir, 'b.yaml'), policy('broken', 'action: DENY\nrules:\n- from:\n  - source:\n      ipBlocks: ["300.0.0.1"]'))
  writeAtomic(join(dir, 'a.yaml'), policy('deny-dev', 'action: DENY\nrules:\n- {}'))
  await ev.until(() => ev.rejections.length >= 1 && ev.rejections.at(-1)?.message.includes('300.0.0.1') === true, 'the rejection')
  t.match(ev.rejections.at(-1)?.message, `${join(dir, 'b.yaml')}:11: AuthorizationPolicy prod/broken: spec.rules[0].from[0].source.ipBlocks[0]`)
  t.same(w.current()?.authorizationPolicies[0].spec.rules?.[0].from?.[0].source.namespaces, ['dev'], 'a.yaml\'s change is not applied either')
  rmSync(join(dir, 'b.yaml'))
  await ev.until(() => ev.snapshots.length === 2, 'the directory to be valid again')
  t.same(ev.snapshots[1].authorizationPolicies[0].spec.rules?.[0], {}, 'now a.yaml\'s change applies')
})

t.test('a rejection is reported once, not on every poll or touch', async (t) => {
  const dir = tmp(t)
  const file = join(dir, 'p.yaml')
  writeAtomic(file, GOOD.replace('DENY', 'NOPE'))
  const ev = new Events()
  const registry = new Registry()
  const w = start(t, dir, ev, { pollMs: 20, registry })
  await w.start(ev.listener)
  t.equal(ev.rejections.length, 1)
  t.equal(w.current(), null, 'no good snapshot yet')
  const later = new Date(Date.now() + 5000)
  utimesSync(file, later, later) // the poll sees a new mtime, reads the same content
  const until = Date.now() + 300
  await ev.until(() => Date.now() > until, 'a few poll periods')
  t.equal(ev.rejections.length, 1)
  t.equal(await metric(registry, CONFIG_METRIC_NAMES.rejected), 1)
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
  await ev.until(() => ev.snapshots.length === 2, 'the polled change')
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
  await ev.until(() => ev.snapshots.length === 1, 'the first snapshot')
  t.equal(ev.rejections.length, 1, 'reported once while missing')
  // And later changes are seen as usual.
  writeAtomic(join(dir, 'q.yaml'), policy('q', '{}'))
  await ev.until(() => ev.snapshots.length === 2, 'the second snapshot')
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
  await ev.until(() => ev.snapshots.length === 2, 'the swapped configuration')
  t.same(ev.snapshots[1].authorizationPolicies.map((p) => p.ref), ['prod/allow-all', 'prod/deny-dev'])
})
