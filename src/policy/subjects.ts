import { isIP } from 'node:net'
import type { ClusterSnapshot, Pod } from '../discovery/model'
import { resolveTargetPort } from '../discovery/service-index'
import { canonicalIP } from '../discovery/ip'
import { ferryError } from '../errors'
import { selects } from '../resources/documents'
import { formatSpiffeId, parseSpiffeId } from '../identity/spiffe-id'
import type { AuthzSource, WorkloadRef } from './model'

// Turns what a person types after --from and --to into evaluation inputs, using the
// cluster snapshot when a name has to be looked up. The same strings will be accepted by
// the agent's explain endpoint, against its live snapshot.
//
//   --from  cluster.local/ns/dev/sa/web | spiffe://…   an identity (no address)
//           dev/web                                     a pod: its identity and address
//           10.244.0.5                                  an address (its pod's identity, if any)
//   --to    prod/app=db,tier=data:5432                  a workload by labels, port as seen by it
//           prod/db:5432 | prod/db:postgres             a Service and service port: each
//                                                       workload behind it, at its target port
//           prod/db-0:5432                              a pod

export interface ResolvedSource extends AuthzSource {
  readonly principal: string | null
  readonly namespace: string | null
  readonly ip: string | null
  /** "pod dev/web (spiffe://…, 10.244.0.5)" */
  readonly description: string
}

export interface ResolvedDestination extends WorkloadRef {
  readonly port: number
  readonly description: string
}

export interface SubjectOptions {
  readonly cluster: ClusterSnapshot | null
  readonly trustDomain: string
}

const TERMINAL = new Set(['Succeeded', 'Failed'])

export function resolveSource (text: string, opts: SubjectOptions): ResolvedSource {
  if (text.includes('/ns/') && text.includes('/sa/')) {
    const id = parseSpiffeId(text.startsWith('spiffe://') ? text : `spiffe://${text}`)
    return { principal: id.uri, namespace: id.namespace, ip: null, description: `identity ${id.uri} (no address)` }
  }
  if (isIP(text) !== 0) {
    const ip = canonicalIP(text) as string
    const pod = opts.cluster?.pods.find((p) => live(p) && !p.hostNetwork && p.podIPs.includes(ip))
    if (pod === undefined) return { principal: null, namespace: null, ip, description: `address ${ip} (no identity${opts.cluster === null ? '' : ': no pod has it'})` }
    return fromPod(pod, opts.trustDomain, ip)
  }
  const m = /^([a-z0-9-]+)\/([a-z0-9.-]+)$/.exec(text)
  if (m === null) throw invalid('--from', text, 'an identity (cluster.local/ns/NS/sa/SA), a pod (NS/POD) or an IP address')
  const cluster = needCluster(opts.cluster, '--from', text)
  const pod = cluster.pods.find((p) => p.namespace === m[1] && p.name === m[2])
  if (pod === undefined) throw notFound(`--from ${text}: no pod ${m[2]} in namespace ${m[1]} in ${cluster.origin}`)
  return fromPod(pod, opts.trustDomain, pod.podIPs[0] ?? null)
}

export function resolveDestinations (text: string, opts: SubjectOptions): ResolvedDestination[] {
  const m = /^([a-z0-9-]+)\/(.+):([^:]+)$/.exec(text)
  if (m === null) throw invalid('--to', text, 'NS/LABELS:PORT (prod/app=db:5432), NS/SERVICE:PORT or NS/POD:PORT')
  const [, namespace, target, portText] = m
  if (target.includes('=')) {
    const labels = parseLabels(target, text)
    return [{ namespace, labels, port: parsePort(portText, text), description: `workload ${namespace}/{${target}}` }]
  }
  const cluster = needCluster(opts.cluster, '--to', text)
  const service = cluster.services.find((s) => s.namespace === namespace && s.name === target)
  if (service !== undefined) {
    const sp = service.ports.find((p) => String(p.port) === portText || p.name === portText)
    if (sp === undefined) throw notFound(`--to ${text}: service ${namespace}/${target} has no port ${portText} (ports: ${service.ports.map((p) => p.name ?? p.port).join(', ')})`)
    const pods = service.selector === null ? [] : cluster.pods.filter((p) => p.namespace === namespace && live(p) && selects(service.selector as Record<string, string>, p.labels))
    const seen = new Map<string, ResolvedDestination>()
    for (const pod of pods) {
      const port = resolveTargetPort(sp, pod)
      if (port === null) continue
      const key = `${JSON.stringify(Object.entries(pod.labels).sort())}:${port}`
      if (!seen.has(key)) seen.set(key, { namespace, labels: pod.labels, port, description: `service ${namespace}/${target}:${sp.port} → pod ${pod.name} (workload ${pod.workload}) port ${port}` })
    }
    if (seen.size === 0) throw notFound(`--to ${text}: service ${namespace}/${target} selects no running pod with port ${String(sp.targetPort)}; name the workload by its labels instead (${namespace}/app=…:PORT)`)
    return [...seen.values()]
  }
  const pod = cluster.pods.find((p) => p.namespace === namespace && p.name === target)
  if (pod === undefined) throw notFound(`--to ${text}: no service or pod ${target} in namespace ${namespace} in ${cluster.origin}`)
  return [{ namespace, labels: pod.labels, port: parsePort(portText, text), description: `pod ${namespace}/${pod.name} (workload ${pod.workload})` }]
}

function fromPod (pod: Pod, trustDomain: string, ip: string | null): ResolvedSource {
  const principal = formatSpiffeId({ trustDomain, namespace: pod.namespace, serviceAccount: pod.serviceAccountName })
  return { principal, namespace: pod.namespace, ip, description: `pod ${pod.namespace}/${pod.name} (${principal}${ip === null ? '' : `, ${ip}`})` }
}

function parseLabels (text: string, whole: string): Record<string, string> {
  const labels: Record<string, string> = {}
  for (const part of text.split(',')) {
    const eq = part.indexOf('=')
    if (eq <= 0) throw invalid('--to', whole, 'labels as key=value[,key=value]')
    labels[part.slice(0, eq)] = part.slice(eq + 1)
  }
  return labels
}

function parsePort (text: string, whole: string): number {
  const port = /^\d{1,5}$/.test(text) ? Number(text) : NaN
  if (!(port >= 1 && port <= 65535)) throw invalid('--to', whole, 'a port number from 1 to 65535 after the last ":"')
  return port
}

function live (p: Pod): boolean {
  return p.phase === null || !TERMINAL.has(p.phase)
}

function needCluster (cluster: ClusterSnapshot | null, option: string, text: string): ClusterSnapshot {
  if (cluster === null) throw ferryError('FERRY_ERR_INVALID_ARG', `ferry policy check: ${option} ${text} names a pod or service: give --cluster-file to look it up`)
  return cluster
}

function invalid (option: string, value: string, expected: string): Error {
  return ferryError('FERRY_ERR_INVALID_ARG', `ferry policy check: ${option} "${value}" is invalid: expected ${expected}`)
}

function notFound (message: string): Error {
  return ferryError('FERRY_ERR_WORKLOAD_NOT_FOUND', `ferry policy check: ${message}`)
}
