import { getAgentText, labAgentEndpoint } from '../agent-admin'
import { sleep } from '../clock'
import type { EventLog } from './events'

// Certificate rotation, seen from the agents' admin port: each agent's /metrics has the
// notAfter of the certificate it serves for each identity
// (ferry_certificate_expiry_timestamp_seconds, src/identity/metrics.ts). Read every
// poll, an identity whose notAfter moved later since the previous read was rotated; one
// that appeared or went (a pod created or deleted) was not. A read that fails is a
// failed event: the admin port must answer throughout.

const EXPIRY = /^ferry_certificate_expiry_timestamp_seconds\{spiffe_id="([^"]+)"\} (\d+)$/gm

/** spiffe_id → notAfter (Unix seconds), from a /metrics text. */
export function certificateExpiries (metricsText: string): Map<string, number> {
  const out = new Map<string, number>()
  for (const m of metricsText.matchAll(EXPIRY)) out.set(m[1], Number(m[2]))
  return out
}

/** The identities rotated between two reads: present in both, notAfter later. */
export function rotatedBetween (before: ReadonlyMap<string, number>, after: ReadonlyMap<string, number>): string[] {
  return [...after].filter(([id, notAfter]) => { const was = before.get(id); return was !== undefined && notAfter > was }).map(([id]) => id)
}

export async function watchRotations (lab: string, nodes: readonly string[], everyMs: number, events: EventLog, signal: AbortSignal): Promise<void> {
  const last = new Map<string, Map<string, number>>()
  for (;;) {
    for (const node of nodes) {
      let now: Map<string, number>
      try {
        now = certificateExpiries(await metricsOf(lab, node))
      } catch (err) {
        events.record('rotation', false, `${node}: /metrics: ${(err as Error).message}`)
        continue
      }
      const before = last.get(node)
      if (before !== undefined) for (const id of rotatedBetween(before, now)) events.record('rotation', true, `${node} ${id}`)
      last.set(node, now)
    }
    try { await sleep(everyMs, signal) } catch { return }
  }
}

async function metricsOf (lab: string, node: string): Promise<string> {
  const endpoint = labAgentEndpoint(lab, node)
  try {
    const r = await getAgentText(endpoint, '/metrics', { timeoutMs: 10_000 })
    if (r.status !== 200) throw new Error(`answered ${r.status}`)
    return r.body
  } finally {
    endpoint.close()
  }
}
