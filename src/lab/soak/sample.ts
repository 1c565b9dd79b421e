import { readdirSync } from 'node:fs'
import { join } from 'node:path'
import type { AgentResources } from '../agent-resources'
import { loadLab } from '../labs'
import { BpfMap } from '../../native'
import type { AgentSample, SampleAgent } from './run'

// What the soak records of an agent each window, from its resources (src/lab/agent-resources.ts):
// RSS, descriptors, heap after GC, and its maps' entries in two sums. Maps whose entries
// someone removes (a pod's on deletion, a socket's on close, a lookup's once read) are
// where a leak shows: their sum is judged for a trend. LRU hashes are filled by design
// and never emptied — entries of closed connections stay until evicted
// (bpf/ferry_maps.h: ferry_conn_by_cookie, ferry_sock_peers) — so their sum rises with
// the connections made until it reaches their capacity: reported, with the capacity,
// and not judged.

/** enum bpf_map_type: the kernel evicts from these when full. */
const LRU_TYPES: ReadonlySet<number> = new Set([9, 10])

export interface LruMaps {
  /** Capacity by map name. */
  readonly capacity: ReadonlyMap<string, number>
}

/** The LRU maps pinned directly under `pinRoot` (the node-wide maps), by name, with their max_entries. */
export function lruMapsAt (pinRoot: string): LruMaps {
  const capacity = new Map<string, number>()
  for (const name of readdirSync(pinRoot)) {
    let map: BpfMap<Buffer, Buffer>
    try { map = BpfMap.openPinnedBytes(join(pinRoot, name)) } catch { continue }
    try {
      if (LRU_TYPES.has(map.info.type)) capacity.set(name, map.info.maxEntries)
    } finally {
      map.close()
    }
  }
  return { capacity }
}

export function soakSample (r: AgentResources, lru: LruMaps): AgentSample {
  let mapEntries = 0
  let lruEntries = 0
  for (const [name, n] of Object.entries(r.mapEntries)) {
    if (lru.capacity.has(name)) lruEntries += n
    else mapEntries += n
  }
  return {
    rssBytes: r.rssBytes,
    fds: r.fds,
    mapEntries,
    lruEntries,
    lruCapacity: [...lru.capacity.values()].reduce((a, b) => a + b, 0),
    ...(r.heapUsedAfterGcBytes === null ? {} : { heapUsedAfterGcBytes: r.heapUsedAfterGcBytes })
  }
}

/** The soak's sampler for the lab's agents, reading each one's resources with `read`. */
export function soakSampler (lab: string, read: (node: string) => Promise<AgentResources>): SampleAgent {
  const lru = new Map<string, LruMaps>()
  return async (node) => {
    let maps = lru.get(node)
    if (maps === undefined) {
      const n = loadLab(lab).plan.nodes.find((x) => x.name === node)
      if (n === undefined) throw new Error(`lab ${lab} has no node ${node}`)
      maps = lruMapsAt(n.pinRoot)
      lru.set(node, maps)
    }
    return soakSample(await read(node), maps)
  }
}
