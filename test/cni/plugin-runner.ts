import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PLUGIN_BINARY } from '../../src/cni/install'

// Runs the real ferry-cni binary (build/cni/ferry-cni) the way a container runtime does:
// CNI_* in the environment, the network configuration on stdin, the result or a CNI
// error on stdout. Asynchronous, so a server in the test process can answer it; killed
// after `killAfterMs` so no test hangs on it.

export interface PluginRun {
  code: number | null
  stdout: string
  stderr: string
  /** stdout parsed, when it is JSON. */
  json: any
}

export interface PodCall {
  command: 'ADD' | 'DEL' | 'CHECK' | 'VERSION' | 'GC' | 'STATUS' | string
  namespace?: string
  name?: string
  uid?: string
  containerId?: string
  netns?: string
  ifname?: string
  /** Extra or replacement CNI_* variables (undefined removes one). */
  env?: Record<string, string | undefined>
}

export async function runPlugin (call: PodCall, stdin: string, killAfterMs = 30_000): Promise<PluginRun> {
  const args = [
    'IgnoreUnknown=1',
    ...(call.namespace === undefined ? [] : [`K8S_POD_NAMESPACE=${call.namespace}`]),
    ...(call.name === undefined ? [] : [`K8S_POD_NAME=${call.name}`]),
    `K8S_POD_INFRA_CONTAINER_ID=${call.containerId ?? 'c0ffee'}`,
    ...(call.uid === undefined ? [] : [`K8S_POD_UID=${call.uid}`])
  ].join(';')
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    CNI_COMMAND: call.command,
    CNI_CONTAINERID: call.containerId ?? 'c0ffee',
    CNI_NETNS: call.netns ?? '/var/run/netns/cni-test',
    CNI_IFNAME: call.ifname ?? 'eth0',
    CNI_ARGS: args,
    CNI_PATH: '/opt/cni/bin'
  }
  for (const [k, v] of Object.entries(call.env ?? {})) {
    if (v === undefined) delete env[k]
    else env[k] = v
  }
  return await new Promise((resolve, reject) => {
    const child = spawn(PLUGIN_BINARY, [], { env, stdio: ['pipe', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => { stdout += String(d) })
    child.stderr.on('data', (d: Buffer) => { stderr += String(d) })
    const timer = setTimeout(() => { child.kill('SIGKILL') }, killAfterMs)
    child.on('error', reject)
    child.on('close', (code) => {
      clearTimeout(timer)
      let json: any = null
      try { json = JSON.parse(stdout) } catch {}
      resolve({ code, stdout, stderr, json })
    })
    child.stdin.on('error', () => {})
    child.stdin.end(stdin)
  })
}

/** A primary plugin's result, as the runtime hands it to the next plugin of the chain. */
export function prevResult (ips: string[], opts: { hostSide?: string } = {}): Record<string, unknown> {
  return {
    cniVersion: '1.0.0',
    interfaces: [
      { name: 'cali1234', mac: '0a:58:0a:f4:01:05' },
      { name: 'eth0', mac: '0a:58:0a:f4:01:06', sandbox: '/var/run/netns/cni-test' }
    ],
    ips: [
      ...ips.map((address) => ({ address, interface: 1 })),
      ...(opts.hostSide === undefined ? [] : [{ address: opts.hostSide, interface: 0 }])
    ],
    routes: [{ dst: '0.0.0.0/0' }],
    dns: {}
  }
}

/** The network configuration the runtime feeds Ferry's entry (name and cniVersion from the list). */
export function netconf (o: { socket?: string, stateFile: string, timeoutMs?: number, logFile?: string, prev?: Record<string, unknown> | null, annotations?: Record<string, string>, cniVersion?: string }): string {
  return JSON.stringify({
    cniVersion: o.cniVersion ?? '1.0.0',
    name: 'k8s-pod-network',
    type: 'ferry-cni',
    ...(o.socket === undefined ? {} : { agentSocket: o.socket }),
    stateFile: o.stateFile,
    ...(o.timeoutMs === undefined ? {} : { timeoutMs: o.timeoutMs }),
    ...(o.logFile === undefined ? {} : { logFile: o.logFile }),
    capabilities: { 'io.kubernetes.cri.pod-annotations': true },
    ...(o.annotations === undefined ? {} : { runtimeConfig: { 'io.kubernetes.cri.pod-annotations': o.annotations } }),
    ...(o.prev === null ? {} : { prevResult: o.prev ?? prevResult(['10.244.1.5/24']) })
  })
}

/** A scratch directory for sockets, state and log files, removed by teardown. */
export function scratch (t: { teardown: (fn: () => void) => void }, prefix = 'ferry-cni-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  return dir
}

/** A state file as the agent writes it (src/cni/state-file.ts). */
export function writeState (path: string, meshedNamespaces: string[], pods: Array<{ namespace: string, name: string, uid: string, mesh: 'enabled' | 'disabled' }> = []): void {
  writeFileSync(path, JSON.stringify({ version: 1, node: 'n1', meshedNamespaces, pods }))
}
