import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { TUNNEL_DEFAULTS } from '../tunnel/defaults'

// What a hostile peer can make the agent hold through the tunnel (the buffer budget,
// src/tunnel/buffer-budget.ts: every stream's window and objects, and the buffers of the
// backed-up ones) must fit in the agent's memory limit with room to spare: an OOM kill
// takes the whole node's traffic down. The budget is therefore at most a fixed share of
// the limit of the agent's own cgroup (the DaemonSet's 512 Mi → 256 MiB), and at most
// TUNNEL_DEFAULTS.nodeBufferBytes where there is no limit. The rest covers the agent's own
// memory (≈ 100–150 MiB with its workers) and the tunnel port's unverified connections
// (≈ 66 MiB at their bound; see docs/security.md).

/** The share of the agent's memory limit the tunnel buffer budget may take. */
export const TUNNEL_BUFFER_MEMORY_SHARE = 0.5

/** Past this a "limit" means none (cgroup v1 writes 2^63 rounded to a page). */
const NO_LIMIT = 2 ** 60

/**
 * The memory limit of this process's cgroup in bytes, or null: cgroup v2's memory.max
 * (mounted at /sys/fs/cgroup, or /sys/fs/cgroup/unified in hybrid mode), else v1's
 * memory.limit_in_bytes.
 */
export function memoryLimit (proc = '/proc/self/cgroup', root = '/sys/fs/cgroup'): number | null {
  let lines: string[]
  try {
    lines = readFileSync(proc, 'utf8').split('\n')
  } catch {
    return null
  }
  const candidates: string[] = []
  const v2 = lines.find((l) => l.startsWith('0::'))
  if (v2 !== undefined) {
    const path = v2.slice(3)
    candidates.push(join(root, path, 'memory.max'), join(root, 'unified', path, 'memory.max'))
  }
  const v1 = lines.find((l) => /^\d+:(?:[^:]*,)?memory(?:,[^:]*)?:/.test(l))
  if (v1 !== undefined) candidates.push(join(root, 'memory', v1.slice(v1.lastIndexOf(':') + 1), 'memory.limit_in_bytes'), join(root, 'memory', 'memory.limit_in_bytes'))
  for (const file of candidates) {
    let text: string
    try {
      text = readFileSync(file, 'utf8').trim()
    } catch {
      continue
    }
    if (text === 'max') return null
    const n = Number(text)
    if (Number.isSafeInteger(n) && n > 0) return n >= NO_LIMIT ? null : n
  }
  return null
}

/** The node's tunnel buffer budget for a memory limit. */
export function bufferBudgetFor (limitBytes: number | null): number {
  const ceiling = TUNNEL_DEFAULTS.nodeBufferBytes
  const floor = TUNNEL_DEFAULTS.sessionBufferBytes
  return limitBytes === null ? ceiling : Math.max(floor, Math.min(ceiling, Math.floor(limitBytes * TUNNEL_BUFFER_MEMORY_SHARE)))
}
