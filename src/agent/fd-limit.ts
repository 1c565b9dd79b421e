import { readFileSync } from 'node:fs'
import { TUNNEL_DEFAULTS } from '../tunnel/defaults'

// File descriptors are what a connection flood exhausts first: at the limit, accept()
// fails and so does every socket the node's own traffic needs (pod listeners, upstream
// connections, tunnel sessions). So the unverified connections on the tunnel port —
// the only sockets an unauthenticated client can make the agent hold — are bounded to a
// fixed share of the process's limit, and the rest stays for the node's own traffic.
// (Node raises the soft limit to the hard one at start; Ferry reads what it got.)

/** The share of the open-files limit unverified tunnel connections may take. */
export const UNAUTHENTICATED_FD_SHARE = 0.25

/** The soft limit on open files of this process, or null when unknown or unlimited. */
export function openFilesLimit (limitsFile = '/proc/self/limits'): number | null {
  let text: string
  try {
    text = readFileSync(limitsFile, 'utf8')
  } catch {
    return null
  }
  const m = /^Max open files\s+(\S+)\s+(\S+)/m.exec(text)
  if (m === null || m[1] === 'unlimited') return null
  const soft = Number(m[1])
  return Number.isSafeInteger(soft) && soft > 0 ? soft : null
}

/** The node-wide bound on unverified tunnel connections for an open-files limit. */
export function pendingLimitFor (fdLimit: number | null): number {
  const ceiling = TUNNEL_DEFAULTS.pendingHandshakesMax
  return fdLimit === null ? ceiling : Math.max(1, Math.min(ceiling, Math.floor(fdLimit * UNAUTHENTICATED_FD_SHARE)))
}
