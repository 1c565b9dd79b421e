import t from 'tap'
import { spawn } from 'node:child_process'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { readClusterFile, updateClusterFile } from '../../src/lab/cluster-file'
import { withFileLock } from '../../src/lab/file-lock'
import { procStartTime } from '../../src/lab/proc'

// The lock several processes take for a read-modify-write of the lab's files: one holder
// at a time, a lock left by a killed process is broken, a live holder is waited for (and
// for only so long); cluster.json updates under it bump the List's resourceVersion, and
// concurrent updates lose nothing.

t.test('one holder at a time; the lock file names its owner and goes when the work is done', async (t) => {
  const file = join(t.testdir({}), 'cluster.json')
  const order: string[] = []
  await Promise.all(['a', 'b', 'c'].map(async (x) => await withFileLock(file, async () => {
    t.equal(readFileSync(`${file}.lock`, 'utf8'), `${process.pid} ${String(procStartTime(process.pid))}`)
    order.push(`${x}+`)
    await new Promise((resolve) => setTimeout(resolve, 20))
    order.push(`${x}-`)
  })))
  t.same(order, ['a+', 'a-', 'b+', 'b-', 'c+', 'c-'], 'never two at once')
  t.notOk(existsSync(`${file}.lock`))
})

t.test('a lock whose owner is dead is broken; a live owner\'s is waited for, then given up on', async (t) => {
  const file = join(t.testdir({}), 'state.json')
  const child = spawn(process.execPath, ['-e', ''])
  await new Promise((resolve) => child.once('exit', resolve))
  writeFileSync(`${file}.lock`, `${child.pid as number} 12345`)
  t.equal(await withFileLock(file, () => 'got it'), 'got it', 'a dead owner\'s lock is broken')
  writeFileSync(`${file}.lock`, `${process.pid} ${String(procStartTime(process.pid))}`)
  await t.rejects(withFileLock(file, () => 'never', { timeoutMs: 200 }), { code: 'FERRY_ERR_LAB', message: new RegExp(`state\\.json\\.lock is held by process ${process.pid} .* for more than 200 ms`) })
  writeFileSync(`${file}.lock`, `${process.pid} 1`)
  t.equal(await withFileLock(file, () => 'again'), 'again', 'a reused pid with another start time is not the owner')
})

t.test('cluster.json: concurrent updates lose nothing, each write bumps the resourceVersion, no change writes nothing', async (t) => {
  const file = join(t.testdir({}), 'cluster.json')
  writeFileSync(file, JSON.stringify({ apiVersion: 'v1', kind: 'List', metadata: { resourceVersion: '7' }, items: [] }))
  await Promise.all(Array.from({ length: 20 }, async (_, i) => await updateClusterFile(file, (list) => { list.items.push({ kind: 'Pod', i }); return true })))
  const list = readClusterFile(file)
  t.equal(list.items.length, 20)
  t.equal(list.metadata.resourceVersion, '27')
  t.equal(await updateClusterFile(file, () => false), 27)
  t.equal(readClusterFile(file).metadata.resourceVersion, '27')
})
