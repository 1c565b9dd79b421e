import type { AgentResources } from '../agent-resources'

// Whether an agent's resources came back to a baseline after a churn: the descriptors
// and the heap after a full collection within a tolerance (a fraction of the baseline,
// 5 % for the churn guarantee), and the kernel objects — pinned links, cgroup
// attachments, each pinned map's entries — exactly: each is one pod's, so one more is
// a pod's leftover, however many there are. The per-connection records of two LRU maps are the exception: they
// are written for every connection a captured pod makes and never deleted (the kernel
// evicts the oldest when the map is full; its memory is allocated whole when it is made),
// so they follow the connections made, not the pods; they are reported, not compared.
// So is RSS: it holds what the allocators keep after a collection (V8's young generation,
// malloc's arenas) and the file pages of the node binary the agent happened to touch, so
// it measures the allocators, not what the agent holds; the heap after a full collection
// (every thread's) is the memory compared.

/** Per-connection LRU records (bpf/ferry_maps.h): bounded by the map, not by pods. */
export const CONNECTION_RECORD_MAPS: readonly string[] = Object.freeze(['ferry_conn_by_cookie', 'ferry_sock_peers'])

/**
 * Maps holding an entry per end of a live connection (bpf/ferry_maps.h), removed when the
 * connection closes: a surviving pod's connection may be being set up or torn down at a
 * reading (a splice is written after the connection's first bytes), so each may differ
 * by one connection's two ends; a leak of churned pods' connections shows as more.
 */
export const LIVE_CONNECTION_MAPS: readonly string[] = Object.freeze(['ferry_socks', 'ferry_splice'])
const LIVE_CONNECTION_SLACK = 2

export interface ResourceDrift {
  /** "fds", "rssBytes", "heapUsedAfterGcBytes", "pinnedLinks", "cgroupAttachments", "map ferry_pods"… */
  readonly resource: string
  readonly baseline: number
  readonly after: number
  /** The most `after` may differ from `baseline`. */
  readonly allowed: number
  /** False when compared and out of bounds; true when within (or only reported). */
  readonly ok: boolean
  /** True when reported without being compared (RSS, CONNECTION_RECORD_MAPS). */
  readonly reportedOnly: boolean
}

/** Every resource of `after` against `baseline` (`tolerance`: for fds and the heap), in a stable order. */
export function compareResources (baseline: AgentResources, after: AgentResources, tolerance: number): ResourceDrift[] {
  const out: ResourceDrift[] = []
  const add = (resource: string, b: number | null, a: number | null, mode: 'relative' | 'exact' | 'connection' | 'reported'): void => {
    const reportedOnly = mode === 'reported'
    if (b === null || a === null) {
      // A measurement missing on either side cannot be called within bounds.
      out.push({ resource, baseline: b ?? NaN, after: a ?? NaN, allowed: 0, ok: reportedOnly, reportedOnly })
      return
    }
    const allowed = mode === 'exact' ? 0 : mode === 'connection' ? LIVE_CONNECTION_SLACK : Math.abs(b) * tolerance
    out.push({ resource, baseline: b, after: a, allowed, ok: reportedOnly || Math.abs(a - b) <= allowed, reportedOnly })
  }
  add('fds', baseline.fds, after.fds, 'relative')
  add('rssBytes', baseline.rssBytes, after.rssBytes, 'reported')
  add('heapUsedAfterGcBytes', baseline.heapUsedAfterGcBytes, after.heapUsedAfterGcBytes, 'relative')
  add('pinnedLinks', baseline.pinnedLinks, after.pinnedLinks, 'exact')
  add('cgroupAttachments', baseline.cgroupAttachments, after.cgroupAttachments, 'exact')
  const maps = [...new Set([...Object.keys(baseline.mapEntries), ...Object.keys(after.mapEntries)])].sort()
  for (const m of maps) add(`map ${m}`, baseline.mapEntries[m] ?? 0, after.mapEntries[m] ?? 0, CONNECTION_RECORD_MAPS.includes(m) ? 'reported' : LIVE_CONNECTION_MAPS.includes(m) ? 'connection' : 'exact')
  return out
}

/** The drifts out of bounds. */
export function leaks (drifts: readonly ResourceDrift[]): ResourceDrift[] {
  return drifts.filter((d) => !d.ok)
}
