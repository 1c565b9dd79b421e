import t from 'tap'
import { mkdtempSync, readFileSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { RESOLV_CONF, writePodEtc } from '../../src/lab/hosts'
import type { LabPlan } from '../../src/lab/topology'

// /etc/netns files are rewritten in place: `ip netns exec` bind-mounts the inode, so a
// rename would leave running pods reading the old file.

t.test('hosts files are rewritten in place (same inode) and resolv.conf names no server', async (t) => {
  const etc = mkdtempSync(join(tmpdir(), 'ferry-etc-netns-'))
  const plan = { paths: { etcNetnsDir: etc } } as unknown as LabPlan
  writePodEtc(plan, 'fl-x-p', '10.96.0.10\tcart\n')
  const file = join(etc, 'fl-x-p', 'hosts')
  const ino = statSync(file).ino
  writePodEtc(plan, 'fl-x-p', '10.96.0.11\tcart\n')
  t.equal(statSync(file).ino, ino, 'same inode')
  t.equal(readFileSync(file, 'utf8'), '10.96.0.11\tcart\n')
  t.equal(readFileSync(join(etc, 'fl-x-p', 'resolv.conf'), 'utf8'), RESOLV_CONF)
  t.notMatch(RESOLV_CONF, /^nameserver/m)
})

t.test('a rewrite never shows a reader an empty file, and unchanged files are not written', async (t) => {
  const { Worker } = await import('node:worker_threads')
  const etc = mkdtempSync(join(tmpdir(), 'ferry-etc-netns-'))
  const plan = { paths: { etcNetnsDir: etc } } as unknown as LabPlan
  const kept = '10.96.0.10\tbackend\n'
  const versions = [kept, `${kept}10.96.0.11\tchurn\n`]
  writePodEtc(plan, 'fl-x-p', versions[0])
  const file = join(etc, 'fl-x-p', 'hosts')

  // A pod's resolver reads the file while the lab rewrites it (another thread, as another process would).
  const reader = new Worker(`
    const { readFileSync } = require('node:fs')
    const { parentPort, workerData } = require('node:worker_threads')
    let reads = 0, missing = 0, stop = false
    parentPort.on('message', () => { stop = true })
    ;(function loop () {
      for (let i = 0; i < 500; i++) { reads++; if (!readFileSync(workerData.file, 'utf8').includes(workerData.kept)) missing++ }
      if (stop) parentPort.postMessage({ reads, missing }); else setImmediate(loop)
    })()`, { eval: true, workerData: { file, kept } })
  for (let i = 0; i < 5000; i++) writePodEtc(plan, 'fl-x-p', versions[i % 2])
  const seen = await new Promise<{ reads: number, missing: number }>((resolve) => { reader.once('message', resolve); reader.postMessage('stop') })
  await reader.terminate()
  t.ok(seen.reads > 0)
  t.equal(seen.missing, 0, `every one of ${seen.reads} reads found the line both versions have`)

  const before = statSync(file).mtimeMs
  await new Promise((resolve) => setTimeout(resolve, 20))
  writePodEtc(plan, 'fl-x-p', versions[1])
  t.equal(statSync(file).mtimeMs, before, 'the same text again: not written')
  t.equal(readFileSync(file, 'utf8'), versions[1])
})
