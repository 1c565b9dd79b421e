import type { ClusterSnapshot } from '../discovery/model'
import type { DiscoverySource, DiscoveryWatcher } from '../discovery/source'
import { ferryError, type FerryError, isFerryError } from '../errors'
import { type BackoffPolicy, RECONNECT_BACKOFF } from '../identity/backoff'
import type { Random } from '../identity/clock'
import type { Logger } from '../telemetry/logger'
import { trace } from '../telemetry/trace'
import { digestOf } from '../util/digest'
import { BOUNDED_WATCH_DEFAULTS } from './bounded-watch'
import { type K8s, type KubeConfigSource, loadKubeConfig, loadKubernetesClient } from './client'
import { clusterView } from './cluster-view'
import { Reflector, type ReflectorOptions } from './reflector'

// The `kubernetes` discovery source: the cluster as the API server says it is, kept
// current by list + watch with the official client, producing the same frozen snapshot
// as the `file` source.
//
//   pods on this node     field selector spec.nodeName=<node>: the pods to enroll
//   pods on other nodes   field selector spec.nodeName!=<node>: endpoints and peer
//                         identities for routing (see docs/install.md on scale)
//   services, namespaces  all (Service VIPs; the ferry.dev/mesh namespace label)
//
// The first snapshot waits until every list has arrived, so the agent never acts on a
// half-known cluster (it would unenroll pods it simply had not heard of yet). After
// that, changes are coalesced for debounceMs and a new generation is published only
// when the snapshot differs. Watch errors are reported (FERRY_ERR_KUBE_API) and retried
// with backoff; the last snapshot stays current meanwhile. A 410 Gone re-lists, and a
// pod leaves the snapshot only when a fresh list no longer has it.

const TRACE = trace('discovery')

export const KUBERNETES_SOURCE_DEFAULTS = Object.freeze({
  debounceMs: 50,
  pageSize: 500,
  backoff: RECONNECT_BACKOFF,
  watch: BOUNDED_WATCH_DEFAULTS
})

export interface KubernetesSourceOptions {
  /** This node's name: its pods are the ones to enroll. */
  readonly node: string
  readonly log: Logger
  /** Where the API server is; default: in-cluster, $KUBECONFIG or ~/.kube/config. */
  readonly kubeconfig?: KubeConfigSource
  readonly debounceMs?: number
  readonly pageSize?: number
  readonly backoff?: BackoffPolicy
  readonly watch?: Partial<{ readonly [K in keyof typeof BOUNDED_WATCH_DEFAULTS]: number }>
  readonly random?: Random
}

type Obj = K8s.KubernetesObject

export class KubernetesDiscoverySource implements DiscoverySource {
  private readonly opts: KubernetesSourceOptions
  private watcher: DiscoveryWatcher | null = null
  private reflectors: { localPods: Reflector<Obj>, otherPods: Reflector<Obj>, services: Reflector<Obj>, namespaces: Reflector<Obj> } | null = null
  private snapshot: ClusterSnapshot | null = null
  /** digestOf the List text and of the snapshot last built (the texts are not kept). */
  private lastText = ''
  private lastKey = ''
  private lastErrorKey = ''
  private timer: NodeJS.Timeout | null = null
  private closed = false
  private origin: string

  constructor (opts: KubernetesSourceOptions) {
    this.opts = opts
    this.origin = `kubernetes (node ${opts.node})`
  }

  start (watcher: DiscoveryWatcher): void {
    if (this.watcher !== null) throw ferryError('FERRY_ERR_INVALID_ARG', `discovery source ${this.origin} already started`)
    this.watcher = watcher
    this.connect().catch((err: unknown) => {
      this.report(isFerryError(err) ? err : ferryError('FERRY_ERR_KUBE_API', `${this.origin}: cannot start: ${(err as Error).message}`, { cause: err }))
    })
  }

  current (): ClusterSnapshot | null { return this.snapshot }

  /** Lists made so far per resource (the first list and every re-list after 410 Gone). */
  listCounts (): Record<string, number> {
    const r = this.reflectors
    return r === null ? {} : Object.fromEntries(Object.entries(r).map(([k, v]) => [k, v.lists]))
  }

  close (): void {
    this.closed = true
    if (this.timer !== null) clearTimeout(this.timer)
    this.timer = null
    for (const r of Object.values(this.reflectors ?? {})) r.stop()
  }

  private async connect (): Promise<void> {
    const client = await loadKubernetesClient()
    const kc = await loadKubeConfig(this.opts.kubeconfig)
    if (this.closed) return
    this.origin = `kubernetes ${kc.getCurrentCluster()?.server ?? '?'} (node ${this.opts.node})`
    const core = kc.makeApiClient(client.CoreV1Api)
    const node = this.opts.node
    const common = {
      pageSize: this.opts.pageSize ?? KUBERNETES_SOURCE_DEFAULTS.pageSize,
      backoff: this.opts.backoff ?? KUBERNETES_SOURCE_DEFAULTS.backoff,
      random: this.opts.random ?? Math.random,
      watch: { ...KUBERNETES_SOURCE_DEFAULTS.watch, ...this.opts.watch },
      onChange: () => { this.schedule() },
      onError: (err: FerryError) => { this.report(err) }
    }
    const reflector = (o: Pick<ReflectorOptions<Obj>, 'name' | 'path' | 'list' | 'fieldSelector'>): Reflector<Obj> => new Reflector<Obj>({ ...common, ...o })
    const localSelector = `spec.nodeName=${node}`
    const otherSelector = `spec.nodeName!=${node}`
    this.reflectors = {
      localPods: reflector({ name: `pods on ${node}`, path: '/api/v1/pods', fieldSelector: localSelector, list: async (p) => await core.listPodForAllNamespaces({ ...p, fieldSelector: localSelector }) }),
      otherPods: reflector({ name: `pods on other nodes than ${node}`, path: '/api/v1/pods', fieldSelector: otherSelector, list: async (p) => await core.listPodForAllNamespaces({ ...p, fieldSelector: otherSelector }) }),
      services: reflector({ name: 'services', path: '/api/v1/services', list: async (p) => await core.listServiceForAllNamespaces(p) }),
      namespaces: reflector({ name: 'namespaces', path: '/api/v1/namespaces', list: async (p) => await core.listNamespace(p) })
    }
    for (const r of Object.values(this.reflectors)) r.start(client, kc)
  }

  private schedule (): void {
    if (this.closed || this.timer !== null) return
    this.timer = setTimeout(() => { this.timer = null; this.rebuild() }, this.opts.debounceMs ?? KUBERNETES_SOURCE_DEFAULTS.debounceMs)
    this.timer.unref()
  }

  private rebuild (): void {
    const r = this.reflectors
    if (this.closed || r === null || !Object.values(r).every((x) => x.synced)) return
    const view = clusterView({
      namespaces: r.namespaces.objects(),
      localPods: r.localPods.objects(),
      otherPods: r.otherPods.objects(),
      services: r.services.objects()
    }, this.origin)
    const text = digestOf(view.text)
    if (text === this.lastText) return
    this.lastText = text
    const generation = (this.snapshot?.generation ?? 0) + 1
    const { snapshot, dropped } = view.build(generation)
    for (const err of dropped) this.report(err)
    const key = digestOf(JSON.stringify({ ...snapshot, generation: 0 }))
    if (key === this.lastKey) return
    this.lastKey = key
    this.lastErrorKey = ''
    this.snapshot = snapshot
    if (TRACE.on) TRACE('snapshot', { origin: this.origin, generation, pods: snapshot.pods.length, services: snapshot.services.length })
    this.watcher?.onSnapshot(snapshot)
  }

  /** Reports an error once per distinct message, so a flapping watch does not flood the log. */
  private report (err: FerryError): void {
    if (this.closed || err.message === this.lastErrorKey) return
    this.lastErrorKey = err.message
    this.watcher?.onError(err)
  }
}
