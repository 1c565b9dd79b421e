import type { AgentResources } from '../agent-resources'

// Whether an agent's resources came back to a baseline after a churn: every resource
// within a tolerance (a fraction of its baseline, 5 % for the churn guarantee) — fds,
// RSS, heap after a full collection, pinned links, cgroup attachments and each pinned
// map's entries. A count whose baseline is small must come back exactly (5 % of 40 is
// less than one). The per-connection records of two LRU maps are the exception: they
// are written for every connection a captured pod makes and never deleted (the kernel
// evicts the oldest when the map is full; its memory is allocated whole when it is made),
// so they follow the connections made, not the pods; they are reported, not compared.

/** Per-connection LRU records (bpf/ferry_maps.h): bounded by the map, not by pods. */
export const CONNECTION_RECORD_MAPS: readonly string[] = Object.freeze(['ferry_conn_by_cookie', 'ferry_sock_addrs'])

export interface ResourceDrift {
  /** "fds", "rssBytes", "heapUsedAfterGcBytes", "pinnedLinks", "cgroupAttachments", "map ferry_pods"… */
  readonly resource: string
  readonly baseline: number
  readonly after: number
  /** The most `after` may differ from `baseline`. */
  readonly allowed: number
  /** False when compared and out of bounds; true when within (or only reported). */
  readonly ok: boolean
  /** True when reported without being compared (CONNECTION_RECORD_MAPS). */
  readonly reportedOnly: boolean
}

/** Every resource of `after` against `baseline`, in a stable order. */
export function compareResources (baseline: AgentResources, after: AgentResources, tolerance: number): ResourceDrift[] {
  const out: ResourceDrift[] = []
  const add = (resource: string, b: number | null, a: number | null, reportedOnly = false): void => {
    if (b === null || a === null) {
      // A measurement missing on either side cannot be called within bounds.
      out.push({ resource, baseline: b ?? NaN, after: a ?? NaN, allowed: 0, ok: reportedOnly, reportedOnly })
      return
    }
    const allowed = Math.abs(b) * tolerance
    out.push({ resource, baseline: b, after: a, allowed, ok: reportedOnly || Math.abs(a - b) <= allowed, reportedOnly })
  }
  add('fds', baseline.fds, after.fds)
  add('rssBytes', baseline.rssBytes, after.rssBytes)
  add('heapUsedAfterGcBytes', baseline.heapUsedAfterGcBytes, after.heapUsedAfterGcBytes)
  add('pinnedLinks', baseline.pinnedLinks, after.pinnedLinks)
  add('cgroupAttachments', baseline.cgroupAttachments, after.cgroupAttachments)
  const maps = [...new Set([...Object.keys(baseline.mapEntries), ...Object.keys(after.mapEntries)])].sort()
  for (const m of maps) add(`map ${m}`, baseline.mapEntries[m] ?? 0, after.mapEntries[m] ?? 0, CONNECTION_RECORD_MAPS.includes(m))
  return out
}

/** The drifts out of bounds. */
export function leaks (drifts: readonly ResourceDrift[]): ResourceDrift[] {
  return drifts.filter((d) => !d.ok)
}
