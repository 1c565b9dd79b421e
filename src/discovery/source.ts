import { ferryError, type FerryError } from '../errors'
import type { Logger } from '../telemetry/logger'
import type { ClusterSnapshot } from './model'

// Discovery sources are registered by name, like grpc-js resolvers: `file` reads a
// Kubernetes List from disk; `kubernetes` (src/kubernetes, registered by importing it)
// lists and watches the API server.

export interface DiscoveryWatcher {
  /** A new, frozen, validated snapshot (generation strictly increasing). */
  onSnapshot (snapshot: ClusterSnapshot): void
  /** The source could not produce a snapshot; the last good one stays current. */
  onError (err: FerryError): void
}

export interface DiscoverySource {
  start (watcher: DiscoveryWatcher): void
  /** The last good snapshot, or null before the first. */
  current (): ClusterSnapshot | null
  close (): void
}

export interface DiscoverySourceOptions {
  /** What to watch; its meaning is the source's (a path for `file`). */
  readonly target: string
  readonly log: Logger
  /** `kubernetes` only: a kubeconfig file (absent: in-cluster, $KUBECONFIG or ~/.kube/config). */
  readonly kubeconfig?: string
}

export type DiscoverySourceFactory = (opts: DiscoverySourceOptions) => DiscoverySource

const registry = new Map<string, DiscoverySourceFactory>()

export function registerDiscoverySource (name: string, factory: DiscoverySourceFactory): void {
  registry.set(name, factory)
}

export function createDiscoverySource (name: string, opts: DiscoverySourceOptions): DiscoverySource {
  const factory = registry.get(name)
  if (factory === undefined) {
    throw ferryError('FERRY_ERR_INVALID_ARG', `unknown discovery source "${name}" (known: ${[...registry.keys()].join(', ')})`)
  }
  return factory(opts)
}
