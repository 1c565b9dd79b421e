import t from 'tap'
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pino from 'pino'
import { createDiscoverySource, type ClusterSnapshot } from '../../src/discovery'
import { FileDiscoverySource } from '../../src/discovery/source-file'
import type { FerryError } from '../../src/errors'
import { listText, namespaceObj, podObj, sampleCluster } from './fixture'
import { waitFor } from '../helpers/wait'

const silent = pino({ level: 'silent' })

/** Collects a source's events. */
class Events {
  readonly snapshots: ClusterSnapshot[] = []
  readonly errors: FerryError[] = []
  readonly watcher = {
    onSnapshot: (s: ClusterSnapshot) => { this.snapshots.push(s) },
    onError: (e: FerryError) => { this.errors.push(e) }
  }
}

function tmp (t: { teardown: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-disc-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  return dir
}

/** The lab's way: write a temporary file, rename it over the real one. */
function writeAtomic (path: string, text: string): void {
  writeFileSync(`${path}.tmp`, text)
  renameSync(`${path}.tmp`, path)
}

t.test('the file source is registered by name and loads the file at start', async (t) => {
  const file = join(tmp(t), 'cluster.json')
  writeAtomic(file, listText(sampleCluster()))
  const src = createDiscoverySource('file', { target: file, log: silent })
  t.teardown(() => { src.close() })
  const ev = new Events()
  src.start(ev.watcher)
  await waitFor(() => ev.snapshots.length === 1, { what: 'a discovery event' })
  t.equal(ev.snapshots[0].generation, 1)
  t.equal(ev.snapshots[0].pods.length, 3)
  t.equal(src.current(), ev.snapshots[0])
})

t.test('an atomic replace is seen through the directory watch, with the next generation', async (t) => {
  const file = join(tmp(t), 'cluster.json')
  writeAtomic(file, listText(sampleCluster()))
  // Poll far slower than the test, so only the watch can see the change in time.
  const src = new FileDiscoverySource({ path: file, log: silent, pollMs: 60_000 })
  t.teardown(() => { src.close() })
  const ev = new Events()
  src.start(ev.watcher)
  await waitFor(() => ev.snapshots.length === 1, { what: 'a discovery event' })
  writeAtomic(file, listText([...sampleCluster(), podObj({ name: 'late', ips: ['10.244.0.99'] })]))
  await waitFor(() => ev.snapshots.length === 2, { what: 'a discovery event' })
  t.equal(ev.snapshots[1].generation, 2)
  t.ok(ev.snapshots[1].pods.some((p) => p.name === 'late'))
})

t.test('the slow poll notices a change when the directory watch is gone', async (t) => {
  const dir = tmp(t)
  const file = join(dir, 'cluster.json')
  writeAtomic(file, listText(sampleCluster()))
  const src = new FileDiscoverySource({ path: file, log: silent, pollMs: 100 })
  t.teardown(() => { src.close() })
  const ev = new Events()
  src.start(ev.watcher)
  await waitFor(() => ev.snapshots.length === 1, { what: 'a discovery event' })
  // Stop the watcher to stand for a filesystem without inotify; only the poll remains.
  ;(src as any).trigger.disarm() // the directory watch is gone: only the poll is left
  writeAtomic(file, listText([namespaceObj('only')]))
  await waitFor(() => ev.snapshots.length === 2, { what: 'a discovery event' })
  t.same(ev.snapshots[1].namespaces.map((n) => n.name), ['only'])
})

t.test('an invalid file is reported once and the last good snapshot stays current', async (t) => {
  const file = join(tmp(t), 'cluster.json')
  writeAtomic(file, listText(sampleCluster()))
  const src = new FileDiscoverySource({ path: file, log: silent, pollMs: 50 })
  t.teardown(() => { src.close() })
  const ev = new Events()
  src.start(ev.watcher)
  await waitFor(() => ev.snapshots.length === 1, { what: 'a discovery event' })
  const good = src.current()
  writeAtomic(file, listText([podObj({ name: 'broken', ips: ['not-an-ip'] })]))
  await waitFor(() => ev.errors.length === 1, { what: 'a discovery event' })
  t.equal(ev.errors[0].code, 'FERRY_ERR_CONFIG')
  t.match(ev.errors[0].message, `${file}: Pod app/broken (items[0]): field status.podIPs[0].ip`)
  t.equal(src.current(), good, 'last good snapshot kept')
  await new Promise((resolve) => setTimeout(resolve, 300))
  t.equal(ev.errors.length, 1, 'the same bad file is not reported on every poll')
  t.equal(ev.snapshots.length, 1, 'no snapshot from the bad file')
  writeAtomic(file, listText(sampleCluster().slice(0, 3)))
  await waitFor(() => ev.snapshots.length === 2, { what: 'a discovery event' })
  t.equal(ev.snapshots[1].generation, 2, 'generation continues from the last good one')
})

t.test('a missing file is an error until it appears; an unchanged rewrite is not a new generation', async (t) => {
  const file = join(tmp(t), 'cluster.json')
  const src = new FileDiscoverySource({ path: file, log: silent, pollMs: 50 })
  t.teardown(() => { src.close() })
  const ev = new Events()
  src.start(ev.watcher)
  await waitFor(() => ev.errors.length === 1, { what: 'a discovery event' })
  t.match(ev.errors[0].message, /cannot read the cluster file \(ENOENT\)/)
  t.equal(src.current(), null)
  const text = listText(sampleCluster())
  writeAtomic(file, text)
  await waitFor(() => ev.snapshots.length === 1, { what: 'a discovery event' })
  writeAtomic(file, text)
  await new Promise((resolve) => setTimeout(resolve, 300))
  t.equal(ev.snapshots.length, 1, 'same content, same generation')
})

t.test('an unknown source name is a FERRY_ERR_INVALID_ARG naming the known ones', async (t) => {
  t.throws(() => createDiscoverySource('consul', { target: 'x', log: silent }), { code: 'FERRY_ERR_INVALID_ARG', message: /unknown discovery source "consul" \(known: file\)/ })
})
