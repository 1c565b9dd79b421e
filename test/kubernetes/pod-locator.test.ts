import t from 'tap'
import { type ChildProcess, spawn } from 'node:child_process'
import { randomBytes, randomUUID } from 'node:crypto'
import { existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PATHS } from '../../src/config/env'
import { createPodLocator, type Pod } from '../../src/discovery'
import { isFerryError } from '../../src/errors'
import '../../src/kubernetes'
import { expandSlice, podCgroupCandidates } from '../../src/kubernetes/cgroup-layout'
import { KubeletPodLocator } from '../../src/kubernetes/pod-locator-kubelet'
import { uniqueName } from '../helpers/names'

// The kubelet-style pod locator on this machine's real cgroup v2 hierarchy and real
// processes: the test makes a private tree under the cgroup2 mount laid out as the
// kubelet lays out pods (systemd and cgroupfs drivers, each QoS class, containerd's and
// CRI-O's container cgroups, CRI-O's conmon), starts real `sleep` processes in those
// cgroups, each pod's in a network namespace of its own (unshare -n, then nsenter for
// its second container), and checks that the locator finds each pod's cgroup directory
// and a /proc/<pid>/ns/net that is the pod's namespace. The tree stands in for the
// host's /sys/fs/cgroup (the locator is pointed at it), the processes are real.

const ROOT = join(PATHS.cgroup2, uniqueName('ferry-locator'))
const children: ChildProcess[] = []

function skipReason (): string | false {
  if (process.getuid?.() !== 0) return 'needs root (cgroups, network namespaces)'
  if (!existsSync(join(PATHS.cgroup2, 'cgroup.procs'))) return `no cgroup v2 at ${PATHS.cgroup2}`
  return false
}

t.teardown(async () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL')
  await Promise.all(children.map(async (c) => await new Promise<void>((resolve) => { if (c.exitCode !== null || c.signalCode !== null) resolve(); else c.once('exit', () => { resolve() }) })))
  removeTree(ROOT)
})

function removeTree (dir: string): void {
  if (!existsSync(dir)) return
  for (const line of readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n')) if (line !== '') try { process.kill(Number(line), 'SIGKILL') } catch {}
  for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) removeTree(join(dir, e.name))
  for (let i = 0; i < 50; i++) {
    try { rmdirSync(dir); return } catch { /* processes still exiting */ }
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20)
  }
}

/** Starts `argv` as a real process that joins `cgroup` first (the shell writes its pid, then execs). */
async function startIn (cgroup: string, argv: string[]): Promise<number> {
  mkdirSync(cgroup, { recursive: true })
  const child = spawn('sh', ['-c', 'echo $$ > "$0" && exec "$@"', join(cgroup, 'cgroup.procs'), ...argv], { stdio: 'ignore' })
  children.push(child)
  const pid = child.pid!
  // Wait until the exec has happened: the process is in its cgroup and runs `sleep`.
  for (let i = 0; i < 200; i++) {
    try {
      if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'sleep') return pid
    } catch {}
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  throw new Error(`${argv.join(' ')} did not start in ${cgroup}`)
}

/** A pod's sandbox process: `sleep` in a new network namespace. */
async function sandbox (cgroup: string): Promise<number> {
  return await startIn(cgroup, ['unshare', '--net', 'sleep', '60'])
}

/** Another container of the same pod: `sleep` entering the sandbox's network namespace. */
async function container (cgroup: string, sandboxPid: number): Promise<number> {
  return await startIn(cgroup, ['nsenter', `--net=/proc/${sandboxPid}/ns/net`, 'sleep', '60'])
}

function podOf (uid: string, name: string): Pod {
  return { uid, name, namespace: 'shop', nodeName: 'n1', serviceAccountName: 'default', labels: {}, annotations: {}, podIPs: [], hostIPs: [], ports: [], probePorts: [], ready: true, phase: 'Running', hostNetwork: false, workload: name }
}

const cid = (): string => randomBytes(32).toString('hex')
const u = (uid: string): string => uid.replace(/-/g, '_')

t.test('the kubelet\'s cgroup paths, from the UID alone', async (t) => {
  const uid = '1f2e3d4c-0000-4aaa-8bbb-0123456789ab'
  t.equal(expandSlice('kubepods-burstable-pod1f2e_x.slice'), 'kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1f2e_x.slice')
  t.same(podCgroupCandidates(uid), [
    `kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${u(uid)}.slice`, `kubepods/burstable/pod${uid}`,
    `kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${u(uid)}.slice`, `kubepods/besteffort/pod${uid}`,
    `kubepods.slice/kubepods-pod${u(uid)}.slice`, `kubepods/pod${uid}`
  ])
  t.ok(podCgroupCandidates(uid, ['/kubelet']).includes(`kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod${u(uid)}.slice`), 'a kubelet --cgroup-root (kind\'s /kubelet)')
})

t.test('real cgroups and processes in every kubelet layout', { skip: skipReason() }, async (t) => {
  mkdirSync(ROOT)
  const locator = new KubeletPodLocator({ cgroupMount: ROOT, procRoot: '/proc' })
  const layouts: Array<{ name: string, uid: string, pod: (uid: string) => string, containers: (uid: string) => { sandbox: string, app: string, conmon?: string }, kubeletRoot?: string }> = [
    {
      name: 'systemd driver, containerd, Burstable',
      uid: randomUUID(),
      pod: (uid) => `kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${u(uid)}.slice`,
      containers: () => ({ sandbox: `cri-containerd-${cid()}.scope`, app: `cri-containerd-${cid()}.scope` })
    },
    {
      name: 'cgroupfs driver, containerd, BestEffort',
      uid: randomUUID(),
      pod: (uid) => `kubepods/besteffort/pod${uid}`,
      containers: () => ({ sandbox: cid(), app: cid() })
    },
    {
      name: 'systemd driver, CRI-O, Guaranteed (directly under kubepods), conmon in the host netns',
      uid: randomUUID(),
      pod: (uid) => `kubepods.slice/kubepods-pod${u(uid)}.slice`,
      containers: () => { const id = cid(); return { conmon: `crio-conmon-${id}.scope`, sandbox: `crio-${id}.scope`, app: `crio-${cid()}.scope` } }
    },
    {
      name: 'cgroupfs driver, CRI-O, Burstable, conmon in the host netns',
      uid: randomUUID(),
      pod: (uid) => `kubepods/burstable/pod${uid}`,
      containers: () => { const id = cid(); return { conmon: `crio-conmon-${id}`, sandbox: `crio-${id}`, app: `crio-${cid()}` } }
    },
    {
      name: 'a kubelet --cgroup-root of /kubelet (kind), found through the pod\'s processes',
      uid: randomUUID(),
      pod: (uid) => `kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod${u(uid)}.slice`,
      containers: () => ({ sandbox: `cri-containerd-${cid()}.scope`, app: `cri-containerd-${cid()}.scope` })
    }
  ]
  const ownNetns = readlinkSync('/proc/self/ns/net')
  for (const layout of layouts) {
    const podDir = join(ROOT, layout.pod(layout.uid))
    const c = layout.containers(layout.uid)
    // CRI-O starts conmon before the container: its pid is the lowest of the pod's.
    const conmonPid = c.conmon === undefined ? null : await startIn(join(podDir, c.conmon), ['sleep', '60'])
    const sandboxPid = await sandbox(join(podDir, c.sandbox))
    const appPid = await container(join(podDir, c.app), sandboxPid)
    const podNetns = readlinkSync(`/proc/${sandboxPid}/ns/net`)
    t.not(podNetns, ownNetns, `${layout.name}: the pod has a network namespace of its own`)
    t.equal(readlinkSync(`/proc/${appPid}/ns/net`), podNetns, `${layout.name}: its second container shares it`)
    if (conmonPid !== null) t.equal(readlinkSync(`/proc/${conmonPid}/ns/net`), ownNetns, `${layout.name}: conmon stays in the host's`)

    const location = locator.locate(podOf(layout.uid, layout.name))
    t.equal(location.cgroupPath, podDir, `${layout.name}: the pod-level cgroup`)
    t.equal(readlinkSync(location.netnsPath), podNetns, `${layout.name}: the pod's network namespace (${location.netnsPath})`)
    t.match(location.netnsPath, /^\/proc\/\d+\/ns\/net$/)
  }
})

t.test('not located yet: no cgroup, or only processes in the host\'s network namespace', { skip: skipReason() }, async (t) => {
  mkdirSync(ROOT, { recursive: true })
  const locator = new KubeletPodLocator({ cgroupMount: ROOT, procRoot: '/proc' })
  const missing = randomUUID()
  const e1 = catchEnroll(() => locator.locate(podOf(missing, 'ghost')))
  t.match(e1, /pod shop\/ghost \(uid [-0-9a-f]+\): no pod cgroup under .*ferry-locator-/)
  const early = randomUUID()
  const podDir = join(ROOT, `kubepods/burstable/pod${early}`)
  await startIn(join(podDir, `crio-conmon-${cid()}`), ['sleep', '60'])
  await startIn(join(podDir, cid()), ['sleep', '60'])
  const e2 = catchEnroll(() => locator.locate(podOf(early, 'starting')))
  t.match(e2, /no process of the pod in a network namespace of its own under \/proc yet \(2 process\(es\) in its cgroup\)/, 'conmon and a host-netns process are never taken for the pod')
})

t.test('located again: the same process while it stays, even when a lower pid joins the pod (no re-enrollment on every snapshot)', { skip: skipReason() }, async (t) => {
  mkdirSync(ROOT, { recursive: true })
  const uid = randomUUID()
  const podDir = join(ROOT, `kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${u(uid)}.slice`)
  const pidFile = join(tmpdir(), `ferry-locator-${uid}.pid`)
  // An early process of the pod, in the host's netns until told which netns to join (a lower pid than the sandbox's).
  const earlyDir = join(podDir, `cri-containerd-${cid()}.scope`)
  mkdirSync(earlyDir, { recursive: true })
  const early = spawn('sh', ['-c', 'echo $$ > "$0" && while [ ! -s "$1" ]; do sleep 0.05; done; exec nsenter --net=/proc/$(cat "$1")/ns/net sleep 60', join(earlyDir, 'cgroup.procs'), pidFile], { stdio: 'ignore' })
  children.push(early)
  t.teardown(() => { rmSync(pidFile, { force: true }) })
  const sandboxPid = await sandbox(join(podDir, `cri-containerd-${cid()}.scope`))
  t.ok((early.pid as number) < sandboxPid, 'the early process has the lower pid')
  const locator = new KubeletPodLocator({ cgroupMount: ROOT, procRoot: '/proc' })
  const pod = podOf(uid, 'sticky')
  t.equal(locator.locate(pod).netnsPath, `/proc/${sandboxPid}/ns/net`, 'the only process in a netns of its own')
  writeFileSync(pidFile, String(sandboxPid))
  for (let i = 0; i < 200 && readlinkSync(`/proc/${early.pid as number}/ns/net`) !== readlinkSync(`/proc/${sandboxPid}/ns/net`); i++) await new Promise((resolve) => setTimeout(resolve, 10))
  t.equal(new KubeletPodLocator({ cgroupMount: ROOT, procRoot: '/proc' }).locate(pod).netnsPath, `/proc/${early.pid as number}/ns/net`, 'a fresh locator takes the lowest pid')
  t.equal(locator.locate(pod).netnsPath, `/proc/${sandboxPid}/ns/net`, 'the locator that chose keeps its choice')
  process.kill(sandboxPid, 'SIGKILL')
  for (let i = 0; i < 200 && existsSync(`/proc/${sandboxPid}/cgroup`) && readFileSync(`/proc/${sandboxPid}/cgroup`, 'utf8').includes(u(uid)); i++) await new Promise((resolve) => setTimeout(resolve, 10))
  t.equal(locator.locate(pod).netnsPath, `/proc/${early.pid as number}/ns/net`, 'its process gone: another of the pod\'s')
})

t.test('registered as the "kubelet" pod locator, with the host paths it is given', async (t) => {
  t.ok(createPodLocator('kubelet') instanceof KubeletPodLocator)
  const located = createPodLocator('kubelet', { procRoot: '/nonexistent-proc', cgroupRoot: '/nonexistent-cgroup' })
  t.match(catchEnroll(() => located.locate(podOf(randomUUID(), 'x'))), /no pod cgroup under \/nonexistent-cgroup/)
})

function catchEnroll (fn: () => unknown): string {
  try {
    fn()
  } catch (err) {
    if (isFerryError(err, 'FERRY_ERR_ENROLL')) return err.message
    throw err
  }
  return 'located'
}
