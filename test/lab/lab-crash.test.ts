import t, { type Test } from 'tap'
import { spawn } from 'node:child_process'
import { existsSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { labDown } from '../../src/lab/down'
import { defaultPaths } from '../../src/lab/labs'
import { readState } from '../../src/lab/state'
import { labUp } from '../../src/lab/up'
import { everythingLeft, labFerryArgv, forceDown, labCli, manifestFile, recordedPids, ROOT_ONLY } from './helpers'
import { uniqueLabName } from '../helpers/names'

// `down` after a crash: the CLI killed in the middle of `up`, or the state file lost or
// torn. The intent log and the lab's name prefix are enough to remove everything.

const LAB = 'apiVersion: v1\nkind: Node\nmetadata: {name: node1}\n---\napiVersion: v1\nkind: Node\nmetadata: {name: node2}\n---\n' +
  'apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n  nodeName: node1\n  containers: [{name: main, command: [sleep, infinity]}]\n---\n' +
  'apiVersion: v1\nkind: Pod\nmetadata: {name: b}\nspec:\n  nodeName: node2\n  containers: [{name: main, command: [sleep, infinity], ports: [{containerPort: 9999}]}]\n'

const stateFile = (name: string): string => join(defaultPaths().labStateDir, name, 'state.json')

/** Starts `ferry lab up` in a child and resolves once its containers are being spawned. */
async function upUntilSpawning (name: string, file: string, t: Test): Promise<ReturnType<typeof spawn>> {
  const [cmd, ...args] = labFerryArgv()
  const child = spawn(cmd, [...args, 'lab', 'up', '--no-mesh', '--timeout', '60', '--name', name, file], { stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr?.on('data', (b: Buffer) => { stderr += b.toString() })
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL') })
  const deadline = Date.now() + 30_000
  for (;;) {
    const s = readState(stateFile(name))
    if (s !== null && Object.keys(s.pids).filter((k) => k.startsWith('pod/')).length === 2) return child
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`up did not reach the spawn step (exit ${String(child.exitCode)}): ${stderr}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

async function exitOf (child: ReturnType<typeof spawn>): Promise<{ code: number | null, signal: NodeJS.Signals | null }> {
  if (child.exitCode !== null || child.signalCode !== null) return { code: child.exitCode, signal: child.signalCode }
  return await new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })))
}

t.test('the CLI killed (SIGKILL) in the middle of up: down still removes everything', ROOT_ONLY, async (t) => {
  const name = uniqueLabName('lcrk')
  t.teardown(async () => { await forceDown(name) })
  const child = await upUntilSpawning(name, manifestFile(LAB), t)
  const pids = recordedPids(name)
  child.kill('SIGKILL')
  t.equal((await exitOf(child)).signal, 'SIGKILL')
  t.ok(everythingLeft(name, pids).length > 0, 'the half-made lab is there')
  t.equal(readState(stateFile(name))?.phase, 'creating', 'and its state says so')
  const r = await labCli(['down', name])
  t.equal(r.code, 0, r.stderr)
  t.same(everythingLeft(name, pids), [])
})

t.test('SIGTERM to a running up: it rolls itself back', ROOT_ONLY, async (t) => {
  const name = uniqueLabName('lcrt')
  t.teardown(async () => { await forceDown(name) })
  const child = await upUntilSpawning(name, manifestFile(LAB), t)
  const pids = recordedPids(name)
  child.kill('SIGTERM')
  t.equal((await exitOf(child)).code, 1)
  t.same(everythingLeft(name, pids), [])
  await labDown(name) // the kept logs
})

t.test('down during an up: the up is stopped and everything removed', ROOT_ONLY, async (t) => {
  const name = uniqueLabName('lcrd')
  t.teardown(async () => { await forceDown(name) })
  const child = await upUntilSpawning(name, manifestFile(LAB), t)
  const pids = recordedPids(name)
  await labDown(name)
  t.equal((await exitOf(child)).code, 1, 'the up gave up')
  t.same(everythingLeft(name, pids), [])
})

for (const [what, damage] of [
  ['deleted', (f: string) => { rmSync(f) }],
  ['torn in half', (f: string) => { truncateSync(f, Math.floor(readFileSync(f).length / 2)) }],
  ['replaced by garbage', (f: string) => { writeFileSync(f, '{"version": 99}') }],
  ['and its whole state dir deleted', (f: string) => { rmSync(join(f, '..'), { recursive: true }) }]
] as const) {
  t.test(`state file ${what}: down sweeps the lab by name`, ROOT_ONLY, async (t) => {
    const name = uniqueLabName('lcrs')
    t.teardown(async () => { await forceDown(name) })
    await labUp({ name, files: [manifestFile(LAB.replace(', ports: [{containerPort: 9999}]', ''))], mesh: false, timeoutMs: 30_000 })
    const pids = recordedPids(name)
    t.equal(pids.length, 2 + 2, 'two containers, two kubelets')
    damage(stateFile(name))
    t.ok(everythingLeft(name, pids).length > 0)
    const report = await labDown(name)
    t.ok(report.found)
    t.equal(report.netns.length, 5, 'underlay, two nodes, two pods found by name')
    t.same(everythingLeft(name, pids), [])
    t.notOk(existsSync(join(defaultPaths().labStateDir, name)))
  })
}
