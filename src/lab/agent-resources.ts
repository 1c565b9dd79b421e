import { execFile } from 'node:child_process'
import { readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { ferryError } from '../errors'
import { BpfLink, BpfMap } from '../native'
import { getAgentJson, labAgentEndpoint } from './agent-admin'
import { loadLab } from './labs'

// What a lab node's agent holds, read from outside it where the kernel tells: its
// descriptors and RSS from /proc, the entries of the maps pinned under its pin root (by
// opening the pins), the links pinned there, and the programs attached to the cgroups
// below the node's (bpftool's view of the kernel). Only the heap after a garbage
// collection needs the agent: POST /debug/memory (src/agent/admin-server.ts), with the
// lab's admin token. A churn run compares two of these (src/lab/churn/drift.ts).

export interface AgentResources {
  readonly pid: number
  readonly fds: number
  /** The descriptors by what they are (socket, bpf-map, bpf-link, bpf-prog, pipe, file, anon: other anonymous inodes). */
  readonly fdKinds: Readonly<Record<string, number>>
  readonly rssBytes: number
  /** Every thread's JavaScript heap summed, after a full collection of each; null when the agent did not answer. */
  readonly heapUsedAfterGcBytes: number | null
  /** Entries of each map pinned under the node's pin root, by map name (arrays: elements not all zero; sockmaps: indexes holding a socket). */
  readonly mapEntries: Readonly<Record<string, number>>
  /** Links pinned under the node's pin root (per pod and node-wide). */
  readonly pinnedLinks: number
  /** Programs attached to the node's cgroup and every cgroup below it. */
  readonly cgroupAttachments: number
}

/** Where one agent's resources are. */
export interface AgentTarget {
  readonly pid: number
  readonly pinRoot: string
  /** The cgroup whose subtree holds everything the agent attaches to (a lab node's). */
  readonly cgroup: string
  /** The heap after a full collection (null: not available). */
  readonly heapAfterGc: () => Promise<number | null>
}

/** enum bpf_map_type values counted other than by keys. */
const MAP_TYPE = Object.freeze({ array: 2, sockmap: 15, skStorage: 24 })
/** A pinned map whose entries cannot be counted from outside (socket storage: no keys to walk). */
const UNCOUNTED = -1
const MEMORY_TIMEOUT_MS = 15_000
const BPFTOOL_TIMEOUT_MS = 30_000

/** `node`'s agent in the lab named. */
export function labAgentTarget (lab: string, node: string): AgentTarget {
  const state = loadLab(lab)
  const pid = state.pids[`node/${node}`]
  const n = state.plan.nodes.find((x) => x.name === node)
  if (n === undefined) throw ferryError('FERRY_ERR_INVALID_ARG', `lab ${lab} has no node ${node}`)
  if (pid === undefined) throw ferryError('FERRY_ERR_AGENT_UNAVAILABLE', `lab ${lab}: no agent runs on ${node}`)
  return { pid, pinRoot: n.pinRoot, cgroup: n.cgroup, heapAfterGc: async () => await labHeapAfterGc(lab, node) }
}

export async function labAgentResources (lab: string, node: string): Promise<AgentResources> {
  return await readAgentResources(labAgentTarget(lab, node))
}

export async function readAgentResources (t: AgentTarget): Promise<AgentResources> {
  // The heap first: the collection it runs frees descriptors only garbage still held.
  const heapUsedAfterGcBytes = await t.heapAfterGc()
  const fdKinds = countFdKinds(t.pid)
  return {
    pid: t.pid,
    fds: Object.values(fdKinds).reduce((a, b) => a + b, 0),
    fdKinds,
    rssBytes: rssOf(t.pid),
    heapUsedAfterGcBytes,
    ...countPins(t.pinRoot),
    cgroupAttachments: await countCgroupAttachments(t.cgroup)
  }
}

/** POST /debug/memory on the lab node's agent: its heaps after a full collection, summed. */
export async function labHeapAfterGc (lab: string, node: string): Promise<number | null> {
  const endpoint = labAgentEndpoint(lab, node)
  try {
    const r = await getAgentJson(endpoint, '/debug/memory', { timeoutMs: MEMORY_TIMEOUT_MS, method: 'POST' })
    const used = (r.body as { heapUsedBytes?: unknown } | null)?.heapUsedBytes
    return r.status === 200 && typeof used === 'number' ? used : null
  } catch {
    return null
  } finally {
    endpoint.close()
  }
}

function countFdKinds (pid: number): Record<string, number> {
  const dir = `/proc/${pid}/fd`
  const kinds: Record<string, number> = {}
  for (const fd of readdirSync(dir)) {
    let target: string
    try {
      target = readlinkSync(join(dir, fd))
    } catch {
      continue // closed meanwhile
    }
    const kind = fdKind(target)
    kinds[kind] = (kinds[kind] ?? 0) + 1
  }
  return kinds
}

/** "socket:[123]" → socket, "anon_inode:bpf-map" → bpf-map, "anon_inode:[eventfd]" → anon, "/dev/null" → file. */
export function fdKind (target: string): string {
  const typed = /^(socket|pipe):\[/.exec(target)
  if (typed !== null) return typed[1]
  const anon = /^anon_inode:(bpf-[a-z]+)$/.exec(target)
  if (anon !== null) return anon[1]
  return target.startsWith('anon_inode:') ? 'anon' : 'file'
}

function rssOf (pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  if (m === null) throw ferryError('FERRY_ERR_INVALID_ARG', `no VmRSS for pid ${pid}`)
  return Number(m[1]) * 1024
}

/** Every pin below `root`: maps counted by entries, links counted; other pins (programs) ignored. */
function countPins (root: string): { mapEntries: Record<string, number>, pinnedLinks: number } {
  const mapEntries: Record<string, number> = {}
  let pinnedLinks = 0
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name)
      if (statSync(path).isDirectory()) { walk(path); continue }
      const entries = mapEntriesAt(path)
      if (entries === UNCOUNTED) continue
      if (entries !== null) { mapEntries[name] = entries; continue }
      if (isLinkPin(path)) pinnedLinks++
    }
  }
  walk(root)
  return { mapEntries, pinnedLinks }
}

/**
 * The entries of the map pinned at `path`, null when the pin is no map, UNCOUNTED for
 * socket storage: the kernel has no key walk for it (ENOTSUPP), and its entries live and
 * go with their sockets, so they cannot outlive a pod.
 */
function mapEntriesAt (path: string): number | null {
  let map: BpfMap<Buffer, Buffer>
  try {
    map = BpfMap.openPinnedBytes(path)
  } catch {
    return null
  }
  try {
    const { type, maxEntries, keySize } = map.info
    if (type === MAP_TYPE.skStorage) return UNCOUNTED
    const key = (i: number): Buffer => { const b = Buffer.alloc(keySize); b.writeUInt32LE(i); return b }
    if (type === MAP_TYPE.sockmap) {
      // Every index is a key: count the ones holding a socket.
      let n = 0
      for (let i = 0; i < maxEntries; i++) if (map.get(key(i)) !== null) n++
      return n
    }
    if (type === MAP_TYPE.array) {
      let n = 0
      for (let i = 0; i < maxEntries; i++) if (map.get(key(i))?.some((b) => b !== 0) === true) n++
      return n
    }
    return map.keys().length
  } finally {
    map.close()
  }
}

/** Whether the pin at `path` is a link (the kernel opens any pin as one: the descriptor says what it is). */
function isLinkPin (path: string): boolean {
  let link: BpfLink
  try {
    link = BpfLink.openPinned(path)
  } catch {
    return false
  }
  try {
    return readlinkSync(`/proc/self/fd/${link.fd}`) === 'anon_inode:bpf-link'
  } finally {
    link.close()
  }
}

/** Programs attached below `cgroup` (bpftool cgroup tree: the kernel's list per cgroup). */
async function countCgroupAttachments (cgroup: string): Promise<number> {
  const { stdout } = await promisify(execFile)('bpftool', ['cgroup', 'tree', cgroup, '-j'], { timeout: BPFTOOL_TIMEOUT_MS, maxBuffer: 64 << 20 })
  const tree = JSON.parse(stdout.trim() === '' ? '[]' : stdout) as Array<{ programs?: unknown[] }>
  return tree.reduce((n, c) => n + (c.programs?.length ?? 0), 0)
}
