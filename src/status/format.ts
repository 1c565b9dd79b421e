import { table } from '../lab/table'
import type { MeshStatus } from './mesh-status'
import type { NodeCertificate } from './node-status'

// `ferry status` as text: one table of nodes, one of certificates.

export function formatMeshStatus (s: MeshStatus): string {
  const nodes = table(['NODE', 'READY', 'PODS', 'CONFIG GEN', 'CLUSTER GEN', 'NOTE'], s.nodes.map((n) => [
    n.node,
    n.reachable ? (n.ready ? 'yes' : 'no') : '?',
    n.reachable ? `${n.pods.length}${n.pendingPods > 0 ? ` (+${n.pendingPods} pending)` : ''}` : '-',
    n.configGeneration === null ? '-' : String(n.configGeneration),
    n.clusterGeneration === null ? '-' : String(n.clusterGeneration),
    n.reachable ? n.notReady.join('; ') : `unreachable: ${n.error ?? ''}`
  ]))
  const certRows = s.nodes.flatMap((n) => (n.certificates ?? []).map((c) => [n.node, c.spiffeId, c.serial ?? '-', expiry(c), lastAttempt(c), renewal(c)]))
  const certs = certRows.length === 0 ? '' : '\n' + table(['NODE', 'IDENTITY', 'SERIAL', 'EXPIRES', 'LAST ATTEMPT', 'RENEWAL'], certRows)
  return `${s.mesh} at ${s.at}\n\n${nodes}${certs}`
}

function expiry (c: NodeCertificate): string {
  if (c.notAfter === null || c.expiresInSeconds === null) return 'none yet'
  return c.expired ? `EXPIRED ${c.notAfter}` : `${c.notAfter} (in ${seconds(c.expiresInSeconds)})`
}

function lastAttempt (c: NodeCertificate): string {
  if (c.lastAttempt === null) return '-'
  return `${c.lastAttempt.at} ${c.lastAttempt.ok ? 'ok' : 'failed'}`
}

function renewal (c: NodeCertificate): string {
  const next = c.nextAttemptAt === null ? 'a request under way' : `next ${c.nextAttemptAt}`
  if (c.failures === null) return `ok, ${next}`
  return `FAILING: ${c.failures.count} failure(s) since ${c.failures.since}, ${next}, last ${c.failures.code}: ${c.failures.error}`
}

function seconds (n: number): string {
  if (n < 120) return `${n}s`
  if (n < 7200) return `${Math.floor(n / 60)}m${n % 60 === 0 ? '' : `${n % 60}s`}`
  return `${Math.floor(n / 3600)}h${Math.floor((n % 3600) / 60)}m`
}
