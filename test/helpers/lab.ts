import { readFileSync, readdirSync, existsSync } from 'node:fs'
import { join } from 'node:path'
import { PATHS } from '../../src/config/env'
import { netnsPrefix } from '../../src/lab/names'
import { ferry, ferryOk } from './cli'
import { waitFor } from './wait'
export { counter } from '../telemetry/prom-text'

// Read-only views of a running lab for assertions: the lab's own published files
// (cluster.json, node logs) and commands run through `ferry lab exec`.

export interface LabPod { name: string, namespace: string, uid: string, ips: string[], annotations: Record<string, string> }

export function labDir (lab: string): string { return join(PATHS.labStateDir, lab) }

/**
 * The lab's network namespaces still named in /var/run/netns. Read from the directory:
 * `ip netns list` also prints an error for a namespace another test is deleting meanwhile.
 */
export function labNetns (lab: string): string[] {
  return readdirSync(PATHS.netnsDir).filter((n) => n.startsWith(netnsPrefix(lab)))
}

export function clusterObjects (lab: string): any[] {
  return JSON.parse(readFileSync(join(labDir(lab), 'cluster.json'), 'utf8')).items
}

export function pod (lab: string, namespace: string, name: string): LabPod {
  const p = clusterObjects(lab).find((o) => o.kind === 'Pod' && o.metadata.name === name && o.metadata.namespace === namespace)
  if (p === undefined) throw new Error(`no pod ${namespace}/${name} in lab ${lab}`)
  const ips: string[] = (p.status.podIPs ?? [{ ip: p.status.podIP }]).map((x: { ip: string }) => x.ip)
  return { name, namespace, uid: p.metadata.uid, ips, annotations: p.metadata.annotations ?? {} }
}

export function serviceIPs (lab: string, namespace: string, name: string): string[] {
  const s = clusterObjects(lab).find((o) => o.kind === 'Service' && o.metadata.name === name && o.metadata.namespace === namespace)
  if (s === undefined) throw new Error(`no service ${namespace}/${name} in lab ${lab}`)
  return s.spec.clusterIPs ?? [s.spec.clusterIP]
}

/** The JSON lines a node's agent has logged so far. */
export function nodeLog (lab: string, node: string): any[] {
  const file = join(labDir(lab), 'logs', `node-${node}.log`)
  if (!existsSync(file)) return []
  const out: any[] = []
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line.startsWith('{')) continue
    try { out.push(JSON.parse(line)) } catch {}
  }
  return out
}

export function accessLines (lab: string, node: string): any[] {
  return nodeLog(lab, node).filter((l) => l.msg === 'access')
}

export async function execInPod (lab: string, namespace: string, name: string, cmd: string[]): Promise<{ code: number, stdout: string, stderr: string }> {
  return await ferry(['lab', 'exec', '--lab', lab, name, '-n', namespace, '--', ...cmd], { timeoutMs: 30_000 })
}

export async function execInNode (lab: string, node: string, cmd: string[]): Promise<{ code: number, stdout: string, stderr: string }> {
  return await ferry(['lab', 'exec', '--lab', lab, '--node', node, '--', ...cmd], { timeoutMs: 30_000 })
}

export async function metrics (lab: string, node: string): Promise<string> {
  return await ferryOk(['lab', 'exec', '--lab', lab, '--node', node, '--', 'curl', '-sf', 'http://127.0.0.1:15020/metrics'])
}

/** Pids of agents running with this --pin-root (read from /proc, so no shell matches itself). */
export function agentPids (pinRoot: string): number[] {
  const out: number[] = []
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue
    try {
      const argv = readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0')
      const i = argv.indexOf('--pin-root')
      if (argv.includes('agent') && i >= 0 && argv[i + 1] === pinRoot) out.push(Number(d))
    } catch { /* exited meanwhile */ }
  }
  return out
}

/**
 * curl from app/client (a one-node fixture's client pod) to target:8080, then wait for
 * n1's outbound access line of it: the request went through the proxy.
 */
export async function capturedRequest (lab: string, target: string): Promise<void> {
  const before = accessLines(lab, 'n1').length
  const r = await execInPod(lab, 'app', 'client', ['curl', '-sS', '--max-time', '5', `http://${target}:8080/`])
  if (r.code !== 0) throw new Error(`curl exited ${r.code}: ${r.stderr}`)
  await waitFor(() => accessLines(lab, 'n1').slice(before).some((l) => l.direction === 'outbound' && l.source?.pod === 'client' && l.original_destination === `${target}:8080`),
    { what: `an outbound access line for ${target}` })
}
