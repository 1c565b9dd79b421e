import { ferryError, type FerryError, isFerryError } from '../errors'
import { type BackoffPolicy, RECONNECT_BACKOFF } from '../identity/backoff'
import type { Random } from '../identity/clock'
import { BOUNDED_WATCH_DEFAULTS } from './bounded-watch'
import { type K8s, type KubeConfigSource, loadKubeConfig, loadKubernetesClient } from './client'
import { Reflector } from './reflector'

// Where the cluster's pods run, for the controller's node authorization ("may node n1
// hold the identity ns/sa?"): every pod of every namespace, listed and watched with the
// reflector the discovery source uses (paging, bookmarks, 410 Gone re-lists, backoff),
// reduced to node, namespace, service account and phase. Unscheduled pods are left out.
// The first list is reported only once it is complete; until then nothing is authorized.

export const POD_PLACEMENT_DEFAULTS = Object.freeze({
  debounceMs: 50,
  pageSize: 500,
  backoff: RECONNECT_BACKOFF,
  watch: BOUNDED_WATCH_DEFAULTS
})

/** Structurally the controller's PodPlacement (src/controller/pod-placement.ts). */
export interface PodPlacementRecord {
  readonly node: string
  readonly namespace: string
  readonly serviceAccount: string
  readonly phase: string | null
}

export interface KubernetesPodPlacementOptions {
  readonly kubeconfig?: KubeConfigSource
  readonly debounceMs?: number
  readonly backoff?: BackoffPolicy
  readonly random?: Random
  readonly watch?: Partial<{ readonly [K in keyof typeof BOUNDED_WATCH_DEFAULTS]: number }>
}

interface PodLike { metadata?: { namespace?: string }, spec?: { nodeName?: string, serviceAccountName?: string }, status?: { phase?: string } }

export class KubernetesPodPlacement {
  origin = 'kubernetes pods'
  private reflector: Reflector<K8s.KubernetesObject> | null = null
  private watcher: { onPlacements: (p: readonly PodPlacementRecord[], generation: number) => void, onError: (err: FerryError) => void } | null = null
  private timer: NodeJS.Timeout | null = null
  private generation = 0
  private lastKey = ''
  private lastError = ''
  private closed = false

  constructor (private readonly opts: KubernetesPodPlacementOptions = {}) {}

  start (watcher: { onPlacements: (p: readonly PodPlacementRecord[], generation: number) => void, onError: (err: FerryError) => void }): void {
    this.watcher = watcher
    this.connect().catch((err: unknown) => {
      this.report(isFerryError(err) ? err : ferryError('FERRY_ERR_KUBE_API', `pods: cannot start: ${(err as Error).message}`, { cause: err }))
    })
  }

  close (): void {
    this.closed = true
    if (this.timer !== null) clearTimeout(this.timer)
    this.reflector?.stop()
  }

  private async connect (): Promise<void> {
    const client = await loadKubernetesClient()
    const kc = await loadKubeConfig(this.opts.kubeconfig)
    if (this.closed) return
    this.origin = `kubernetes ${kc.getCurrentCluster()?.server ?? '?'} pods`
    const core = kc.makeApiClient(client.CoreV1Api)
    this.reflector = new Reflector<K8s.KubernetesObject>({
      name: 'pods (node authorization)',
      path: '/api/v1/pods',
      list: async (p) => await core.listPodForAllNamespaces(p),
      pageSize: POD_PLACEMENT_DEFAULTS.pageSize,
      backoff: this.opts.backoff ?? POD_PLACEMENT_DEFAULTS.backoff,
      random: this.opts.random ?? Math.random,
      watch: { ...POD_PLACEMENT_DEFAULTS.watch, ...this.opts.watch },
      onChange: () => { this.schedule() },
      onError: (err) => { this.report(err) }
    })
    this.reflector.start(client, kc)
  }

  private schedule (): void {
    if (this.closed || this.timer !== null) return
    this.timer = setTimeout(() => { this.timer = null; this.rebuild() }, this.opts.debounceMs ?? POD_PLACEMENT_DEFAULTS.debounceMs)
    this.timer.unref()
  }

  private rebuild (): void {
    const r = this.reflector
    if (this.closed || r === null || !r.synced) return
    const placements: PodPlacementRecord[] = []
    for (const o of r.objects() as PodLike[]) {
      const node = o.spec?.nodeName
      const namespace = o.metadata?.namespace
      if (node === undefined || node === '' || namespace === undefined) continue
      placements.push({ node, namespace, serviceAccount: o.spec?.serviceAccountName ?? 'default', phase: o.status?.phase ?? null })
    }
    placements.sort((a, b) => key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0)
    const k = placements.map(key).join('\n')
    if (k === this.lastKey) return
    this.lastKey = k
    this.lastError = ''
    this.watcher?.onPlacements(Object.freeze(placements.map((p) => Object.freeze(p))), ++this.generation)
  }

  private report (err: FerryError): void {
    if (this.closed || err.message === this.lastError) return
    this.lastError = err.message
    this.watcher?.onError(err)
  }
}

function key (p: PodPlacementRecord): string {
  return `${p.node}/${p.namespace}/${p.serviceAccount}/${p.phase ?? ''}`
}
