import { join } from 'node:path'
import { REPO } from './exec'
import type { Lab } from './lab'
import type { Peer } from './peer'

// What every benchmark gets: the two labs of the run, the peers (HAProxy; nginx's
// stream module when its Debian module is installed), the paths to measure and where
// to put scratch files.

export type PathId = 'direct-same' | 'direct-cross' | 'ferry-same' | 'ferry-cross' | 'haproxy-cross' | 'nginx-cross'

export interface BenchPath {
  readonly id: PathId
  readonly lab: Lab
  /** The URL the client pod uses for `path` (e.g. '/1k'). */
  readonly url: (path: string) => string
  /** The proxy processes whose CPU and memory this path costs (none for direct). */
  readonly proxyPids: () => number[]
}

export interface RunOptions {
  readonly quick: boolean
  /** Pod counts for the scale benchmark. */
  readonly podCounts: readonly number[]
  /** The mesh lab's agents run with --sockmap off (to measure what the shortcut changes). */
  readonly sockmapOff: boolean
  /** Alternated runs of each benchmark with targets (keepalive, rates, newconn, bulk) and of `workers`. */
  readonly runs: number
  /** The mesh lab's agents' --workers (null: the agent's default). */
  readonly workers: number | null
}

export interface Context {
  readonly direct: Lab
  readonly mesh: Lab
  readonly peer: Peer
  readonly nginxPeer: Peer | null
  readonly paths: readonly BenchPath[]
  readonly workDir: string
  readonly opts: RunOptions
  readonly log: (msg: string) => void
}

export const CLIENT = { namespace: 'bench', pod: 'client' } as const
export const SERVER_PORT = 8080

export function buildPaths (direct: Lab, mesh: Lab, peer: Peer, nginxPeer: Peer | null): BenchPath[] {
  const podURL = (lab: Lab, pod: string) => (p: string) => `http://${lab.pod('bench', pod).ipv4}:${SERVER_PORT}${p}`
  const svcURL = (lab: Lab, svc: string) => (p: string) => `http://${lab.serviceIP('bench', svc)}:${SERVER_PORT}${p}`
  return [
    { id: 'direct-same', lab: direct, url: podURL(direct, 'local'), proxyPids: () => [] },
    { id: 'direct-cross', lab: direct, url: podURL(direct, 'server'), proxyPids: () => [] },
    { id: 'ferry-same', lab: mesh, url: svcURL(mesh, 'local'), proxyPids: () => mesh.agentPids() },
    { id: 'ferry-cross', lab: mesh, url: svcURL(mesh, 'server'), proxyPids: () => mesh.agentPids() },
    { id: 'haproxy-cross', lab: direct, url: peer.url, proxyPids: () => peer.pids },
    ...(nginxPeer === null ? [] : [{ id: 'nginx-cross' as const, lab: direct, url: nginxPeer.url, proxyPids: () => nginxPeer.pids }])
  ]
}

/** benchmarks/lab in the source tree (the compiled runner lives in dist/benchmarks). */
export const REPO_LAB_DIR = join(REPO, 'benchmarks', 'lab')
