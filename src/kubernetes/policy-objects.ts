import { ferryError, type FerryError, isFerryError } from '../errors'
import type { ResourceKind } from '../resources/documents'
import { type BackoffPolicy, RECONNECT_BACKOFF } from '../identity/backoff'
import type { Random } from '../identity/clock'
import { BOUNDED_WATCH_DEFAULTS } from './bounded-watch'
import { httpStatusOf, type K8s, type KubeConfigSource, loadKubeConfig, loadKubernetesClient } from './client'
import { Reflector } from './reflector'

// The configuration objects of the cluster, as the API server has them: AuthorizationPolicy,
// PeerAuthentication and RateLimit of Ferry's group (security.ferry.dev/v1alpha1, the
// CRDs Ferry installs), AuthorizationPolicy and PeerAuthentication of Istio's
// (security.istio.io/v1), and the routes: HTTPRoute and GRPCRoute of Gateway API
// (gateway.networking.k8s.io/v1), VirtualService and DestinationRule of Istio
// (networking.istio.io/v1). Each collection is listed and watched with the discovery
// source's reflector, in one version (the API server serves every version of an object
// from the same storage; a document keeps the version it was read in).
//
// Istio's and Gateway API's CRDs are optional: when the API server answers 404 for one, it counts as
// empty (so the rest is not held back) and is probed again every probeMs (one small
// list), so Istio installed later is picked up. A 404 for Ferry's own CRDs is an error,
// retried with backoff: they are part of the install.
//
// patchStatus() writes an object's status subresource (the controller's verdict on it,
// src/controller/policy-status.ts) with a JSON patch of /status.

export interface PolicyCollection {
  readonly group: string
  readonly version: string
  readonly kind: ResourceKind
  readonly plural: string
  readonly optional: boolean
}

export const POLICY_COLLECTIONS: readonly PolicyCollection[] = Object.freeze([
  { group: 'security.ferry.dev', version: 'v1alpha1', kind: 'AuthorizationPolicy', plural: 'authorizationpolicies', optional: false },
  { group: 'security.ferry.dev', version: 'v1alpha1', kind: 'PeerAuthentication', plural: 'peerauthentications', optional: false },
  { group: 'security.istio.io', version: 'v1', kind: 'AuthorizationPolicy', plural: 'authorizationpolicies', optional: true },
  { group: 'security.istio.io', version: 'v1', kind: 'PeerAuthentication', plural: 'peerauthentications', optional: true },
  { group: 'security.ferry.dev', version: 'v1alpha1', kind: 'RateLimit', plural: 'ratelimits', optional: false },
  { group: 'gateway.networking.k8s.io', version: 'v1', kind: 'HTTPRoute', plural: 'httproutes', optional: true },
  { group: 'gateway.networking.k8s.io', version: 'v1', kind: 'GRPCRoute', plural: 'grpcroutes', optional: true },
  { group: 'networking.istio.io', version: 'v1', kind: 'VirtualService', plural: 'virtualservices', optional: true },
  { group: 'networking.istio.io', version: 'v1', kind: 'DestinationRule', plural: 'destinationrules', optional: true }
].map((c) => Object.freeze(c as PolicyCollection)))

export const POLICY_OBJECTS_DEFAULTS = Object.freeze({
  debounceMs: 100,
  /** How often an absent optional CRD is looked for again. */
  probeMs: 60_000,
  pageSize: 500,
  backoff: RECONNECT_BACKOFF,
  watch: BOUNDED_WATCH_DEFAULTS
})

export interface PolicyObjects {
  readonly collection: PolicyCollection
  /** As the API server sent them (list items lack kind and apiVersion). */
  readonly objects: readonly object[]
}

export interface PolicyObjectsWatcher {
  /** Every collection is synced (or absent); called again, debounced, on every change. */
  onObjects (all: readonly PolicyObjects[]): void
  onError (err: FerryError): void
}

export interface PolicyObjectsOptions {
  readonly kubeconfig?: KubeConfigSource
  readonly debounceMs?: number
  readonly probeMs?: number
  readonly backoff?: BackoffPolicy
  readonly random?: Random
  readonly watch?: Partial<{ readonly [K in keyof typeof BOUNDED_WATCH_DEFAULTS]: number }>
  readonly collections?: readonly PolicyCollection[]
}

interface Entry {
  readonly collection: PolicyCollection
  /** null while an optional CRD is absent. */
  reflector: Reflector<K8s.KubernetesObject> | null
  /** An optional CRD found absent (404) at its last probe. */
  absent: boolean
  probeTimer: NodeJS.Timeout | null
}

export class KubernetesPolicyObjects {
  origin = 'kubernetes'
  private entries: Entry[] = []
  private api: K8s.CustomObjectsApi | null = null
  private watcher: PolicyObjectsWatcher | null = null
  private timer: NodeJS.Timeout | null = null
  private lastError = ''
  private closed = false

  constructor (private readonly opts: PolicyObjectsOptions = {}) {}

  start (watcher: PolicyObjectsWatcher): void {
    this.watcher = watcher
    this.connect().catch((err: unknown) => {
      this.report(isFerryError(err) ? err : ferryError('FERRY_ERR_KUBE_API', `policies: cannot start: ${(err as Error).message}`, { cause: err }))
    })
  }

  close (): void {
    this.closed = true
    if (this.timer !== null) clearTimeout(this.timer)
    for (const e of this.entries) {
      e.reflector?.stop()
      if (e.probeTimer !== null) clearTimeout(e.probeTimer)
    }
  }

  private async connect (): Promise<void> {
    const client = await loadKubernetesClient()
    const kc = await loadKubeConfig(this.opts.kubeconfig)
    if (this.closed) return
    this.origin = `kubernetes ${kc.getCurrentCluster()?.server ?? '?'}`
    const api = kc.makeApiClient(client.CustomObjectsApi)
    this.api = api
    const list = async (c: PolicyCollection, p: { limit: number, _continue?: string }): Promise<any> =>
      await api.listClusterCustomObject({ group: c.group, version: c.version, plural: c.plural, ...p })
    const startReflector = (e: Entry): void => {
      const c = e.collection
      e.reflector = new Reflector<K8s.KubernetesObject>({
        name: `${c.plural}.${c.group}`,
        path: `/apis/${c.group}/${c.version}/${c.plural}`,
        list: async (p) => await list(c, p),
        pageSize: POLICY_OBJECTS_DEFAULTS.pageSize,
        backoff: this.opts.backoff ?? POLICY_OBJECTS_DEFAULTS.backoff,
        random: this.opts.random ?? Math.random,
        watch: { ...POLICY_OBJECTS_DEFAULTS.watch, ...this.opts.watch },
        onChange: () => { this.schedule() },
        onError: (err) => { this.report(err) }
      })
      e.reflector.start(client, kc)
    }
    const probe = async (e: Entry): Promise<void> => {
      e.probeTimer = null
      if (this.closed) return
      try {
        await list(e.collection, { limit: 1 })
      } catch (err) {
        if (httpStatusOf(err) === 404) {
          if (!e.absent) { e.absent = true; this.schedule() }
          e.probeTimer = setTimeout(() => { void probe(e) }, this.opts.probeMs ?? POLICY_OBJECTS_DEFAULTS.probeMs)
          e.probeTimer.unref()
          return
        }
        // Anything else: the reflector reports it and retries.
      }
      if (this.closed) return
      e.absent = false
      startReflector(e)
    }
    for (const c of this.opts.collections ?? POLICY_COLLECTIONS) {
      const e: Entry = { collection: c, reflector: null, absent: false, probeTimer: null }
      this.entries.push(e)
      if (c.optional) void probe(e)
      else startReflector(e)
    }
  }

  /** Replaces the status of one object (its status subresource). Throws FERRY_ERR_KUBE_API. */
  async patchStatus (c: PolicyCollection, namespace: string, name: string, status: Record<string, unknown>): Promise<void> {
    if (this.api === null) throw ferryError('FERRY_ERR_KUBE_API', 'policies: not connected to the API server yet')
    try {
      await this.api.patchNamespacedCustomObjectStatus({ group: c.group, version: c.version, namespace, plural: c.plural, name, body: [{ op: 'add', path: '/status', value: status }] })
    } catch (err) {
      throw ferryError('FERRY_ERR_KUBE_API', `policies: cannot write the status of ${c.plural}.${c.group} ${namespace}/${name}: HTTP ${String(httpStatusOf(err) ?? '?')}`, { cause: err })
    }
  }

  private schedule (): void {
    if (this.closed || this.timer !== null) return
    this.timer = setTimeout(() => { this.timer = null; this.emit() }, this.opts.debounceMs ?? POLICY_OBJECTS_DEFAULTS.debounceMs)
    this.timer.unref()
  }

  private emit (): void {
    const ready = (e: Entry): boolean => e.absent || e.reflector?.synced === true
    if (this.closed || this.entries.length === 0 || !this.entries.every(ready)) return
    this.lastError = ''
    this.watcher?.onObjects(this.entries.map((e) => ({ collection: e.collection, objects: e.reflector?.objects() ?? [] })))
  }

  private report (err: FerryError): void {
    if (this.closed || err.message === this.lastError) return
    this.lastError = err.message
    this.watcher?.onError(err)
  }
}
