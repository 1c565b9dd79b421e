import t from 'tap'
import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { PATHS } from '../../src/config/env'
import { findKubeletCgroup } from '../../src/kubernetes/kubelet-cgroup'
import { makeCgroup, removeCgroup } from '../capture/helpers/pod-env'
import { REPO } from '../helpers/cli'
import { uniqueName } from '../helpers/names'

// `--kubelet-cgroup auto` on this machine's real cgroup v2 hierarchy: real processes
// named `kubelet` (a copy of sleep) run in test cgroups, and the finder reads their
// /proc entries. The procfs it is pointed at holds links to the test's processes only,
// so another program called kubelet on this host cannot disturb it. The containerised
// case runs the finder in a child process inside a cgroup namespace of its own, where
// /proc shows the kubelet's cgroup as "/../<path>", as a DaemonSet agent sees it.

const children: ChildProcess[] = []
t.teardown(() => { for (const c of children) c.kill('SIGKILL') })

/** The cgroup2 mount's parent on a hybrid host (the finder takes the host's /sys/fs/cgroup and finds "unified" itself). */
const MOUNT = PATHS.cgroup2.endsWith('/unified') ? dirname(PATHS.cgroup2) : PATHS.cgroup2

async function kubeletIn (t: { teardown: (fn: () => void) => void }, cgroup: string): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'fct-kubelet-bin-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  const bin = join(dir, 'kubelet')
  copyFileSync('/bin/sleep', bin)
  const child = spawn('sh', ['-c', 'echo $$ > "$0" && exec "$@"', join(cgroup, 'cgroup.procs'), bin, '60'], { stdio: 'ignore' })
  children.push(child)
  const pid = child.pid as number
  for (let i = 0; i < 200; i++) {
    try { if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'kubelet') return pid } catch {}
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  throw new Error('the kubelet stand-in did not start')
}

/** A procfs view with only these pids (links to /proc/<pid>) and, optionally, fake entries. */
function procOf (t: { teardown: (fn: () => void) => void }, pids: number[], fake: Record<string, { comm: string, cgroup: string }> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'fct-proc-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  for (const pid of pids) symlinkSync(`/proc/${pid}`, join(dir, String(pid)))
  for (const [pid, e] of Object.entries(fake)) {
    mkdirSync(join(dir, pid))
    writeFileSync(join(dir, pid, 'comm'), `${e.comm}\n`)
    writeFileSync(join(dir, pid, 'cgroup'), `0::${e.cgroup}\n`)
  }
  return dir
}

t.test('the cgroup of the process named kubelet, under the host\'s cgroup2 mount', async (t) => {
  const cg = makeCgroup(t, 'fct-kubelet')
  const a = await kubeletIn(t, cg)
  const b = await kubeletIn(t, cg)
  t.equal(findKubeletCgroup({ procRoot: procOf(t, [a, b]), cgroupMount: MOUNT }), cg, 'two processes of one kubelet cgroup')
})

t.test('refused: no kubelet, kubelets in two cgroups, the root cgroup, a path that is not there', async (t) => {
  const one = makeCgroup(t, 'fct-kubelet')
  const two = makeCgroup(t, 'fct-kubelet')
  const a = await kubeletIn(t, one)
  const b = await kubeletIn(t, two)
  const cases: Array<[string, string, RegExp]> = [
    ['none', procOf(t, [], { 1: { comm: 'systemd', cgroup: '/init.scope' } }), /no process named kubelet/],
    ['two cgroups', procOf(t, [a, b]), /processes named kubelet in 2 cgroups/],
    ['root', procOf(t, [], { 7: { comm: 'kubelet', cgroup: '/' } }), /the kubelet runs in the root cgroup/],
    ['missing', procOf(t, [], { 7: { comm: 'kubelet', cgroup: '/../../no-such.slice/kubelet.service' } }), /is not at .*no-such\.slice\/kubelet\.service/]
  ]
  for (const [what, proc, message] of cases) {
    t.throws(() => findKubeletCgroup({ procRoot: proc, cgroupMount: MOUNT }), { code: 'FERRY_ERR_KUBELET_CGROUP', message }, what)
  }
})

t.test('from a container\'s cgroup namespace: "/../…" paths are re-rooted under the host mount', async (t) => {
  const kubelet = makeCgroup(t, 'fct-kubelet')
  const pid = await kubeletIn(t, kubelet)
  // The agent pod's container cgroup, one level down (removed before its parent).
  const agentPod = join(PATHS.cgroup2, uniqueName('fct-agentpod'))
  const agentCgroup = join(agentPod, 'container')
  mkdirSync(agentCgroup, { recursive: true })
  t.teardown(() => { removeCgroup(agentCgroup); removeCgroup(agentPod) })
  const proc = procOf(t, [pid])
  const script = `const { findKubeletCgroup } = require(${JSON.stringify(join(REPO, 'dist', 'src', 'kubernetes', 'kubelet-cgroup.js'))})
const seen = require('fs').readFileSync('/proc/${pid}/cgroup', 'utf8').trim()
console.log(JSON.stringify({ seen, found: findKubeletCgroup({ procRoot: ${JSON.stringify(proc)}, cgroupMount: ${JSON.stringify(MOUNT)} }) }))`
  // Join the agent's cgroup, then a new cgroup namespace rooted there (unshare -C).
  const r = spawnSync('sh', ['-c', 'echo $$ > "$0" && exec unshare -C "$@"', join(agentCgroup, 'cgroup.procs'), process.execPath, '-e', script], { encoding: 'utf8', timeout: 30_000 })
  t.equal(r.status, 0, r.stderr)
  const out = JSON.parse(r.stdout) as { seen: string, found: string }
  t.match(out.seen, /^0::\/\.\.\/\.\.\/fct-kubelet-/m, 'the agent sees a path relative to its own cgroup namespace')
  t.equal(out.found, kubelet)
})
