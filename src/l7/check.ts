import type { ClusterSnapshot, Pod } from '../discovery/model'
import { resolveTargetPort, selectorMatches } from '../discovery/service-index'
import type { L7Decision } from './decision'
import type { L7PolicyLookup } from './policy-lookup'
import { L7Table } from './table'

// What `ferry policy check` says about L7 for its --to: whether the proxy handles the
// connection's HTTP requests and why, at the source (a Service port) and at the
// destination (each pod port behind it). The same grammar as --to
// (src/policy/subjects.ts): NS/SERVICE:PORT, NS/POD:PORT, NS/KEY=VALUE,…:PORT. Names it
// cannot find give no line (the policy explanation already says why).

export interface L7CheckLine {
  /** "source: service shop/cart port 80", "destination: pod shop/cart-1 port 8080" */
  readonly subject: string
  readonly engaged: boolean
  readonly protocol: L7Decision['protocol']
  readonly reason: string
}

const TO = /^([a-z0-9-]+)\/(.+):([^:]+)$/
/** Pods listed for one Service at most; the rest are counted. */
const MAX_PODS = 10
const TERMINAL = new Set(['Succeeded', 'Failed'])

export function l7ForDestination (to: string, cluster: ClusterSnapshot | null, policy: L7PolicyLookup): L7CheckLine[] {
  const m = TO.exec(to)
  if (m === null || cluster === null) return []
  const [, namespace, target, portText] = m
  const table = L7Table.build(cluster)
  const live = cluster.pods.filter((p) => p.namespace === namespace && !p.hostNetwork && (p.phase === null || !TERMINAL.has(p.phase)))
  const atPort = (pod: Pod, port: number): L7CheckLine => line(`destination: pod ${pod.namespace}/${pod.name} port ${port}`, table.forWorkload(pod, port, policy(pod, port)))
  if (target.includes('=')) {
    const labels = Object.fromEntries(target.split(',').map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]))
    return capped(live.filter((p) => selectorMatches(labels, p.labels)).map((p) => atPort(p, Number(portText))))
  }
  const service = cluster.services.find((s) => s.namespace === namespace && s.name === target)
  if (service !== undefined) {
    const sp = service.ports.find((p) => String(p.port) === portText || p.name === portText)
    if (sp === undefined) return []
    const selected = service.selector === null ? [] : live.filter((p) => selectorMatches(service.selector as Readonly<Record<string, string>>, p.labels))
    const pods = selected.flatMap((p) => { const port = resolveTargetPort(sp, p); return port === null ? [] : [atPort(p, port)] })
    return [line(`source: service ${namespace}/${service.name} port ${sp.port}`, table.forService(service, sp)), ...capped(pods)]
  }
  const pod = live.find((p) => p.name === target)
  return pod === undefined || !/^\d{1,5}$/.test(portText) ? [] : [atPort(pod, Number(portText))]
}

/** The lines as `ferry policy check` prints them, after the policy explanation. */
export function l7CheckText (lines: readonly L7CheckLine[]): string {
  if (lines.length === 0) return ''
  return ['L7 (per-request HTTP handling):', ...lines.map((l) => `  ${l.subject}: ${l.engaged ? `L7 engaged, ${l.protocol}` : `L4 (not engaged; protocol ${l.protocol})`} — ${l.reason}`)].join('\n') + '\n'
}

function line (subject: string, d: L7Decision): L7CheckLine {
  return { subject, engaged: d.engaged, protocol: d.protocol, reason: d.reason }
}

function capped (lines: L7CheckLine[]): L7CheckLine[] {
  if (lines.length <= MAX_PODS) return lines
  const rest = lines.length - MAX_PODS
  return [...lines.slice(0, MAX_PODS), { subject: `destination: ${rest} more pod${rest === 1 ? '' : 's'}`, engaged: false, protocol: 'detect', reason: 'not listed' }]
}
