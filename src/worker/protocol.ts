import type { MetricObjectWithValues, MetricValue } from 'prom-client'
import type { ClusterSnapshot, Pod } from '../discovery/model'
import type { Svid } from '../identity/svid'
import type { ListenTarget } from '../proxy/listener'
import type { ConfigSnapshot } from '../resources/snapshot'
import type { TunnelServerStats, TunnelPoolStats } from '../tunnel'
import type { HeapFigures } from '../telemetry/heap'
import type { SpanBatch } from '../telemetry/tracing/span-batcher'
import type { Router } from '../routing/router'

// What the main thread and a data-path worker say to each other (Envoy's model: the main
// thread owns configuration, discovery, certificates, enrollment and the admin server;
// a worker owns its listeners, connections, tunnel sessions and pools).
//
// Everything here is plain data: in a worker thread it is structured-cloned, so a worker
// holds its own copy of each snapshot and never shares a mutable object with the main
// thread. A worker never waits on the main thread: publications are one-way; the main
// thread's requests are answered when the worker has done what they ask.

/** A network namespace the main thread holds open (its fd is valid in every thread of the process). */
export interface NetnsRef {
  readonly fd: number
  readonly path: string
  readonly cookie: bigint
}

/** One listener of a pod, for one worker. */
export interface PodListener {
  readonly role: 'outbound' | 'inbound'
  readonly family: 4 | 6
  readonly address: string
  readonly port: number
  /** What to serve: a listening fd (the worker's own duplicate in a worker thread), or an address (test platforms). */
  readonly target: ListenTarget
}

/** A pod to serve: the worker makes its handlers and serves these listeners. */
export interface PodToServe {
  readonly uid: string
  readonly pod: Pod
  readonly netns: NetnsRef
  readonly listeners: readonly PodListener[]
}

/** Published to every worker, the latest of each kind replayed to a restarted one. */
export type Publication =
  | { readonly kind: 'cluster', readonly snapshot: ClusterSnapshot }
  /**
   * A policy snapshot to compile and swap in (without its source locator, a function: the
   * main thread explains policies, workers only enforce them); `rejected`: the source's
   * newer state was refused (issues, formatted).
   */
  | { readonly kind: 'config', readonly snapshot: Omit<ConfigSnapshot, 'locate'> | null, readonly rejected: readonly string[] | null }
  /**
   * The certificates the worker may present (tunnel server and client), by SPIFFE ID, all
   * of them (a restarted worker gets the latest); sent when one comes, goes or is rotated.
   * `served`: the identities the tunnel server answers for.
   */
  | { readonly kind: 'svids', readonly svids: ReadonlyArray<readonly [string, Svid]>, readonly served: readonly string[] }

export type Request =
  | { readonly kind: 'serve-pod', readonly pod: PodToServe }
  | { readonly kind: 'unserve-pod', readonly uid: string }
  | { readonly kind: 'serve-tunnel', readonly target: { readonly fd: number, readonly backlog: number } | { readonly host: string, readonly port: number, readonly backlog: number } }
  /**
   * Closes every pod listener (connections go on). A drain also refuses new tunnel streams
   * to this node's pods; after a handoff (`handedOff`) the tunnel server instead stops
   * accepting and sends GOAWAY (peers open new sessions, which reach the new agent), and
   * the streams already coming over our sessions are still served, until the drain ends.
   */
  | { readonly kind: 'stop-accepting', readonly handedOff?: boolean }
  /**
   * The drain grace period is over: every connection the worker still holds is reset
   * (a peer never takes a cut stream for a complete one); answers how many there were.
   */
  | { readonly kind: 'close-connections' }
  /** The generation of the policy snapshot in force (0: none), after every publication sent before it. */
  | { readonly kind: 'sync' }
  | { readonly kind: 'stats' }
  /** This worker's heap (src/telemetry/heap.ts), after a full collection when `gc` (POST /debug/memory). */
  | { readonly kind: 'memory', readonly gc: boolean }
  /** The backends this worker's router has used: endpoints with its latency estimates, ejections (/debug/config `routes`). */
  | { readonly kind: 'routing' }
  | { readonly kind: 'metrics' }
  | { readonly kind: 'close' }
  /**
   * Hold: pods and the tunnel port given from now on are served only at 'resume'. A new
   * agent holds while the agent before it still serves the same sockets, so it accepts
   * nothing before it has its certificates and policies.
   */
  | { readonly kind: 'hold' }
  | { readonly kind: 'resume' }
  /** Fail as an uncaught exception would: the worker's drill (POST /debug/workers/crash). */
  | { readonly kind: 'crash' }

export interface WorkerStats {
  readonly worker: number
  /** Connections accepted on this worker's pod listeners and not closed yet. */
  readonly connections: number
  readonly pods: number
  readonly policyGeneration: number
  /** `heldBytes`: what its streams hold now; `secureContexts`: made by this worker's thread, one per SVID a session of it presented (and again after a rotation). */
  readonly tunnel: { readonly port: number, readonly server: TunnelServerStats, readonly pool: TunnelPoolStats, readonly heldBytes: number, readonly secureContexts: number } | null
}

export type Reply =
  | { readonly kind: 'ok' }
  | { readonly kind: 'served', readonly addresses: ReadonlyArray<{ address: string, port: number } | null> }
  | { readonly kind: 'tunnel', readonly port: number }
  | { readonly kind: 'sync', readonly policyGeneration: number }
  | { readonly kind: 'stats', readonly stats: WorkerStats }
  | { readonly kind: 'memory', readonly worker: number, readonly heap: HeapFigures }
  | { readonly kind: 'routing', readonly worker: number, readonly backends: ReturnType<Router['describe']> }
  | { readonly kind: 'closed', readonly connections: number }
  | { readonly kind: 'metrics', readonly metrics: Array<MetricObjectWithValues<MetricValue<string>>> }

/** A FerryError (or any error) crossing a thread boundary. */
export interface WireError { readonly message: string, readonly code?: string, readonly errno?: string }

export type ToWorker =
  | { readonly type: 'publish', readonly publication: Publication }
  | { readonly type: 'request', readonly id: number, readonly request: Request }

export type FromWorker =
  | { readonly type: 'reply', readonly id: number, readonly reply?: Reply, readonly error?: WireError }
  | { readonly type: 'ready' }
  /** Finished spans for the agent's one exporter (src/telemetry/tracing/span-batcher.ts). */
  | ({ readonly type: 'spans' } & SpanBatch)
