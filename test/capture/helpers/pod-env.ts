import { execFileSync, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { PATHS } from '../../../src/config/env'
import { uniqueName } from '../../helpers/names'

// A throwaway "pod" on the real kernel: a network namespace with lo up and a veth
// to a peer namespace (10.x and fd00: addresses exist only inside these two), and a
// cgroup v2 directory. Everything has a unique fct-<random> name and is removed by
// the test's teardown, even when the test fails.

export interface Teardownable { teardown: (fn: () => unknown) => void }

export interface PodEnv {
  id: string
  podNs: string
  peerNs: string
  podNsPath: string
  peerNsPath: string
  cgroupPath: string
  podIP4: string
  peerIP4: string
  podIP6: string
  peerIP6: string
  /** Runs argv in the pod's cgroup and netns; resolves with its output. */
  runInPod: (argv: string[], opts?: { netnsPath?: string, cgroupPath?: string, timeoutMs?: number }) => Promise<RunResult>
}

export interface RunResult { code: number | null, stdout: string, stderr: string }

function ip (args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] })
}

export function makePodEnv (t: Teardownable): PodEnv {
  const id = uniqueName('fct')
  const podNs = `${id}-pod`
  const peerNs = `${id}-peer`
  const a = 1 + randomBytes(1)[0]! % 250
  const b = 1 + randomBytes(1)[0]! % 250
  const env: Omit<PodEnv, 'runInPod'> = {
    id,
    podNs,
    peerNs,
    podNsPath: join(PATHS.netnsDir, podNs),
    peerNsPath: join(PATHS.netnsDir, peerNs),
    cgroupPath: join(PATHS.cgroup2, id),
    podIP4: `10.${a}.${b}.2`,
    peerIP4: `10.${a}.${b}.1`,
    podIP6: `fd00:${a.toString(16)}:${b.toString(16)}::2`,
    peerIP6: `fd00:${a.toString(16)}:${b.toString(16)}::1`
  }
  const children = new Set<ReturnType<typeof spawn>>()
  t.teardown(() => {
    for (const c of children) c.kill('SIGKILL')
    for (const ns of [podNs, peerNs]) { try { ip(['netns', 'del', ns]) } catch {} }
    removeCgroup(env.cgroupPath)
  })
  ip(['netns', 'add', podNs])
  ip(['netns', 'add', peerNs])
  ip(['-n', podNs, 'link', 'set', 'lo', 'up'])
  ip(['-n', peerNs, 'link', 'set', 'lo', 'up'])
  // Both ends are created inside the namespaces: the host never sees them.
  ip(['-n', podNs, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', peerNs])
  ip(['-n', podNs, 'addr', 'add', `${env.podIP4}/24`, 'dev', 'eth0'])
  ip(['-n', peerNs, 'addr', 'add', `${env.peerIP4}/24`, 'dev', 'eth0'])
  ip(['-n', podNs, 'addr', 'add', `${env.podIP6}/64`, 'dev', 'eth0', 'nodad'])
  ip(['-n', peerNs, 'addr', 'add', `${env.peerIP6}/64`, 'dev', 'eth0', 'nodad'])
  ip(['-n', podNs, 'link', 'set', 'eth0', 'up'])
  ip(['-n', peerNs, 'link', 'set', 'eth0', 'up'])
  mkdirSync(env.cgroupPath)

  const runInPod: PodEnv['runInPod'] = async (argv, opts = {}) => {
    const cg = opts.cgroupPath ?? env.cgroupPath
    const ns = opts.netnsPath ?? env.podNsPath
    const [cmd, ...args] = [...enterPod(cg, ns), ...argv]
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    children.add(child)
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => { stdout += String(d) })
    child.stderr.on('data', (d: Buffer) => { stderr += String(d) })
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 10_000)
    return await new Promise((resolve) => {
      child.on('close', (code) => {
        clearTimeout(timer)
        children.delete(child)
        resolve({ code, stdout, stderr })
      })
    })
  }
  return { ...env, runInPod }
}

/**
 * argv prefix that runs the rest of argv in a cgroup and a network namespace (the same
 * process: sh and nsenter exec it). The cgroup is joined first: `ip netns exec` would hide
 * /sys/fs/cgroup/unified.
 */
export function enterPod (cgroupPath: string, netnsPath: string): string[] {
  return ['sh', '-c', `echo $$ > ${cgroupPath}/cgroup.procs && exec nsenter --net=${netnsPath} "$@"`, 'sh']
}

/** An empty cgroup v2 directory with a unique name (a stand-in kubelet's, a hostNetwork pod's), removed by teardown. */
export function makeCgroup (t: Teardownable, prefix = 'fct'): string {
  const path = join(PATHS.cgroup2, uniqueName(prefix))
  t.teardown(() => { removeCgroup(path) })
  mkdirSync(path)
  return path
}

/** rmdir of a cgroup fails while processes are still leaving it: retry briefly. */
export function removeCgroup (path: string): void {
  if (!existsSync(path)) return
  for (let i = 0; i < 50; i++) {
    try {
      rmdirSync(path)
      return
    } catch {
      const procs = readFileSync(join(path, 'cgroup.procs'), 'utf8').trim()
      for (const pid of procs.split('\n').filter(Boolean)) {
        try { writeFileSync(join(PATHS.cgroup2, 'cgroup.procs'), pid) } catch {}
      }
      execFileSync('sleep', ['0.05'])
    }
  }
}

/**
 * A Node one-liner for runInPod: connects to host:port (from localPort when given),
 * prints one JSON line with what it received, getpeername() and its own port, then
 * exits.
 */
export function nodeClient (host: string, port: number, opts: { localPort?: number } = {}): string[] {
  const src = `
const net = require('net')
const s = net.connect({ host: ${JSON.stringify(host)}, port: ${port}${opts.localPort === undefined ? '' : `, localPort: ${opts.localPort}`} })
let data = ''
s.on('data', (d) => { data += d })
s.on('connect', () => { s.peer = { address: s.remoteAddress, port: s.remotePort }; s.local = s.localPort })
s.on('error', (e) => { console.log(JSON.stringify({ error: e.code })); process.exit(0) })
s.on('end', () => { console.log(JSON.stringify({ data, peer: s.peer, localPort: s.local })); process.exit(0) })
setTimeout(() => { console.log(JSON.stringify({ error: 'TIMEOUT' })); process.exit(0) }, 5000)
`
  return [process.execPath, '-e', src]
}
