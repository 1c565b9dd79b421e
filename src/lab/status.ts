import { PORTS } from '../config/env'
import { readClusterFile } from './cluster-file'
import { kubeletRecordsPath, readKubeletRecords } from './kubelet/records'
import { isPodReady } from './pod-status'
import { endpointsOf } from './endpoints'
import { Prober } from './probe'
import { isAliveIn } from './proc'
import { READY_PATH } from './readiness'
import type { LabState } from './state'
import { table } from './table'
import { netnsPath } from './topology'

// `ferry lab status`: the lab as recorded, checked against the host — is each recorded
// process alive and still in its cgroup (a container's current process from its
// kubelet's records), does each agent answer its readiness probe, does the controller
// accept connections — and each pod as its kubelet published it (phase, readiness,
// restarts).

export interface LabStatus {
  readonly name: string
  readonly phase: string
  readonly mesh: boolean
  readonly createdAt: string
  readonly stateDir: string
  readonly error?: string
  /** The lab's CA; null without the mesh. */
  readonly controller: { readonly address: string, readonly pid: number | null, readonly alive: boolean, readonly ready: boolean | null } | null
  readonly nodes: ReadonlyArray<{
    readonly name: string
    readonly netns: string
    readonly ipv4: string
    readonly ipv6: string
    readonly podCIDRs: readonly string[]
    readonly agent: { readonly pid: number | null, readonly alive: boolean, readonly ready: boolean | null } | null
    /** Null for a lab from before the lab ran kubelets. */
    readonly kubelet: { readonly pid: number | null, readonly alive: boolean } | null
  }>
  readonly pods: ReadonlyArray<{
    readonly namespace: string
    readonly name: string
    readonly uid: string
    readonly node: string
    readonly netns: string
    readonly ipv4: string
    readonly ipv6: string
    readonly status: 'Running' | 'Failed' | 'Pending'
    /** As its kubelet published it (cluster.json): phase, Ready condition, containers ready and restarts. */
    readonly phase: string | null
    readonly ready: boolean
    readonly readyContainers: string
    readonly restarts: number
    readonly containers: ReadonlyArray<{ readonly name: string, readonly pid: number | null, readonly alive: boolean, readonly ready: boolean, readonly restartCount: number }>
  }>
  readonly services: ReadonlyArray<{
    readonly namespace: string
    readonly name: string
    readonly clusterIPs: readonly string[]
    readonly ports: readonly string[]
    readonly endpoints: readonly string[]
  }>
}

const PROBE_TIMEOUT_MS = 500

export async function labStatus (state: LabState, opts: { probe?: boolean } = {}): Promise<LabStatus> {
  const { plan, spec } = state
  const cg2 = plan.paths.cgroup2
  const prober = opts.probe === false || !plan.mesh ? null : new Prober()
  try {
    const nodes = []
    for (const n of plan.nodes) {
      let agent = null
      if (plan.mesh) {
        const pid = state.pids[`node/${n.name}`] ?? null
        const alive = pid !== null && isAliveIn(pid, n.agentCgroup, cg2)
        let ready: boolean | null = null
        if (prober !== null && alive) {
          const reply = await prober.httpGet(netnsPath(plan.paths, n.netns), '127.0.0.1', PORTS.ready, READY_PATH, PROBE_TIMEOUT_MS)
          ready = reply?.status === 200
        }
        agent = { pid, alive, ready }
      }
      const kpid = state.pids[`kubelet/${n.name}`] ?? null
      const kubelet = n.kubeletCgroup === undefined ? null : { pid: kpid, alive: kpid !== null && isAliveIn(kpid, n.kubeletCgroup, cg2) }
      nodes.push({ name: n.name, netns: n.netns, ipv4: n.ipv4, ipv6: n.ipv6, podCIDRs: [n.podCIDRv4, n.podCIDRv6], agent, kubelet })
    }
    const ca = plan.controller ?? null
    let controller: LabStatus['controller'] = null
    if (ca !== null) {
      const pid = state.pids.controller ?? null
      const alive = pid !== null && isAliveIn(pid, ca.cgroup, cg2)
      const ready = prober !== null && alive ? await prober.tcp(netnsPath(plan.paths, plan.underlay.netns), ca.address, ca.port, PROBE_TIMEOUT_MS) : null
      controller = { address: `${ca.address}:${ca.port}`, pid, alive, ready }
    }
    const published = publishedPods(plan.clusterFile)
    const records = new Map(plan.nodes.map((n) => [n.name, readKubeletRecords(kubeletRecordsPath(plan, n.name))]))
    const pods = plan.pods.map((p) => {
      const item = published.get(p.uid)
      const statuses: any[] = item?.status?.containerStatuses ?? []
      const containers = p.containers.map((c) => {
        // The kubelet's record names the current run's process once it has seen it (or restarted it).
        const rec = records.get(p.node)?.pods[p.uid]?.[c.name]
        const pid = rec !== undefined && rec.pid > 0 ? rec.pid : (state.pids[`pod/${p.namespace}/${p.name}/${c.name}`] ?? null)
        const cs = statuses.find((x) => x.name === c.name)
        return { name: c.name, pid, alive: pid !== null && isAliveIn(pid, c.cgroup ?? p.cgroup, cg2), ready: cs?.ready === true, restartCount: Number(cs?.restartCount ?? 0) }
      })
      const status: 'Running' | 'Failed' | 'Pending' = containers.every((c) => c.alive) ? 'Running' : containers.some((c) => c.pid !== null) ? 'Failed' : 'Pending'
      return {
        namespace: p.namespace,
        name: p.name,
        uid: p.uid,
        node: p.node,
        netns: p.netns,
        ipv4: p.ipv4,
        ipv6: p.ipv6,
        status,
        phase: typeof item?.status?.phase === 'string' ? item.status.phase : null,
        ready: isPodReady(item?.status),
        readyContainers: `${containers.filter((c) => c.ready).length}/${containers.length}`,
        restarts: containers.reduce((n, c) => n + c.restartCount, 0),
        containers
      }
    })
    const services = spec.services.map((s, i) => ({
      namespace: s.namespace,
      name: s.name,
      clusterIPs: s.headless ? ['None'] : plan.services[i].clusterIPs,
      ports: s.ports.map((p) => `${p.name === undefined ? '' : `${p.name}:`}${p.port}→${p.targetPort}`),
      endpoints: endpointsOf(spec, plan, s).map((p) => `${p.namespace}/${p.name}`)
    }))
    return {
      name: state.name,
      phase: state.phase,
      mesh: plan.mesh,
      createdAt: state.createdAt,
      stateDir: plan.stateDir,
      ...(state.error === undefined ? {} : { error: state.error }),
      controller,
      nodes,
      pods,
      services
    }
  } finally {
    prober?.close()
  }
}

export function formatStatus (s: LabStatus): string {
  const agentCell = (a: LabStatus['nodes'][number]['agent']): string => {
    if (a === null) return '(no mesh)'
    if (a.pid === null) return 'not started'
    return `pid ${a.pid} ${a.alive ? (a.ready === null ? 'alive' : a.ready ? 'ready' : 'not ready') : 'dead'}`
  }
  const out = [`lab ${s.name}: ${s.phase}, ${s.mesh ? 'mesh' : 'no mesh'}, since ${s.createdAt} (state: ${s.stateDir})\n`]
  if (s.error !== undefined) out.push(`error: ${s.error}\n`)
  const c = s.controller
  if (c !== null) out.push(`controller (CA): ${c.address}, ${c.pid === null ? 'not started' : `pid ${c.pid} ${c.alive ? (c.ready === null ? 'alive' : c.ready ? 'ready' : 'not ready') : 'dead'}`}\n`)
  const kubeletCell = (k: LabStatus['nodes'][number]['kubelet']): string => k === null ? '-' : k.pid === null ? 'not started' : `pid ${k.pid} ${k.alive ? 'alive' : 'dead'}`
  out.push('\n', table(['NODE', 'NETNS', 'IPV4', 'IPV6', 'POD CIDRS', 'AGENT', 'KUBELET'],
    s.nodes.map((n) => [n.name, n.netns, n.ipv4, n.ipv6, n.podCIDRs.join(','), agentCell(n.agent), kubeletCell(n.kubelet)])))
  out.push('\n', table(['POD', 'NODE', 'IPV4', 'IPV6', 'STATUS', 'PHASE', 'READY', 'RESTARTS', 'PROCESSES'],
    s.pods.map((p) => [`${p.namespace}/${p.name}`, p.node, p.ipv4, p.ipv6, p.status, p.phase ?? '-', p.readyContainers, String(p.restarts),
      p.containers.map((c) => `${c.name}=${c.pid === null ? '-' : c.pid}${c.alive ? '' : '(dead)'}`).join(' ')])))
  if (s.services.length > 0) {
    out.push('\n', table(['SERVICE', 'CLUSTER-IPS', 'PORTS', 'ENDPOINTS'],
      s.services.map((v) => [`${v.namespace}/${v.name}`, v.clusterIPs.join(','), v.ports.join(' '), v.endpoints.join(',') || '<none>'])))
  }
  return out.join('')
}

/** The pods of cluster.json by uid (empty when it cannot be read: a lab being made or removed). */
function publishedPods (clusterFile: string): Map<string, Record<string, any>> {
  try {
    return new Map(readClusterFile(clusterFile).items.filter((o) => o.kind === 'Pod').map((o) => [o.metadata?.uid as string, o]))
  } catch {
    return new Map()
  }
}
