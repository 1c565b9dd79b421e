import { ferryError, type FerryError, isFerryError } from '../errors'
import { backoffDelay, type BackoffPolicy } from '../identity/backoff'
import type { Random } from '../identity/clock'
import { BoundedWatch, type BoundedWatchOptions } from './bounded-watch'
import { httpStatusOf, type K8s, type KubernetesClient } from './client'

// One resource kept current from the API server: the client's ListWatch (list, then
// watch from the list's resourceVersion; on 410 Gone it lists again and replaces its
// cache only when the new list has arrived, so nothing known is dropped in between),
// plus what ListWatch leaves to its user:
//   - after any other error ListWatch stops; the reflector reports it and restarts it
//     with backoff, resuming the watch from the last resourceVersion (no re-list unless
//     the server answers 410);
//   - lists are fetched in pages (limit/continue), all of one resourceVersion;
//   - `synced` turns true once the first list is in the cache, so a snapshot is never
//     built from a half-known cluster.

export interface ListPage<T> { items: T[], metadata?: { resourceVersion?: string, _continue?: string } }

export interface ReflectorOptions<T> {
  /** For messages: "pods on node-1". */
  readonly name: string
  /** The collection's URL path, e.g. /api/v1/pods. */
  readonly path: string
  /** Lists one page. */
  readonly list: (page: { limit: number, _continue?: string }) => Promise<ListPage<T>>
  readonly fieldSelector?: string
  readonly labelSelector?: string
  readonly pageSize: number
  readonly backoff: BackoffPolicy
  readonly random: Random
  readonly watch: Omit<BoundedWatchOptions, 'backoff' | 'random' | 'onEvent'>
  /** The cache changed, or the reflector became synced. */
  readonly onChange: () => void
  readonly onError: (err: FerryError) => void
}

export class Reflector<T extends K8s.KubernetesObject> {
  private lw: K8s.ListWatch<T> | null = null
  private watch: BoundedWatch | null = null
  private attempts = 0
  private restartTimer: NodeJS.Timeout | null = null
  private stopped = false
  private syncedFlag = false
  /** Lists done (the first one and every re-list): tests and metrics read it. */
  lists = 0

  constructor (private readonly opts: ReflectorOptions<T>) {}

  get synced (): boolean { return this.syncedFlag }

  start (client: KubernetesClient, kc: K8s.KubeConfig): void {
    const watch = new BoundedWatch(new client.Watch(kc), { ...this.opts.watch, backoff: this.opts.backoff, random: this.opts.random, onEvent: () => { this.attempts = 0 } })
    this.watch = watch
    const lw = new client.ListWatch<T>(this.opts.path, watch as unknown as K8s.Watch, async () => await this.listAll(), false, this.opts.labelSelector, this.opts.fieldSelector)
    const changed = (): void => { if (!this.stopped) this.opts.onChange() }
    lw.on('add', changed)
    lw.on('update', changed)
    lw.on('delete', changed)
    lw.on('error', (err?: unknown) => { this.failed(err) })
    this.lw = lw
    void lw.start()
  }

  /** The cached objects (the last good view while a watch is down). */
  objects (): readonly T[] { return this.lw?.list() ?? [] }

  stop (): void {
    this.stopped = true
    if (this.restartTimer !== null) clearTimeout(this.restartTimer)
    this.restartTimer = null
    void this.lw?.stop()
    this.watch?.close()
  }

  private async listAll (): Promise<K8s.KubernetesListObject<T>> {
    const items: T[] = []
    let resourceVersion: string | undefined
    let cont: string | undefined
    do {
      let page: ListPage<T>
      try {
        page = await this.opts.list({ limit: this.opts.pageSize, ...(cont === undefined ? {} : { _continue: cont }) })
      } catch (err) {
        throw ferryError('FERRY_ERR_KUBE_API', `${this.opts.name}: list ${this.opts.path} failed: ${describeError(err)}`, { cause: err })
      }
      items.push(...page.items)
      resourceVersion ??= page.metadata?.resourceVersion
      cont = page.metadata?._continue === '' ? undefined : page.metadata?._continue
    } while (cont !== undefined)
    this.lists++
    this.attempts = 0
    // ListWatch puts the items in its cache right after this promise resolves, in the
    // same turn: by the time this runs, the cache holds the list.
    setImmediate(() => {
      if (this.stopped) return
      this.syncedFlag = true
      this.opts.onChange()
    })
    return { apiVersion: 'v1', kind: 'List', items, metadata: { resourceVersion } } as unknown as K8s.KubernetesListObject<T>
  }

  private failed (err: unknown): void {
    if (this.stopped) return
    const error = isFerryError(err) ? err : ferryError('FERRY_ERR_KUBE_API', `${this.opts.name}: watch ${this.opts.path} failed: ${describeError(err)}`, { cause: err })
    this.opts.onError(error)
    this.attempts++
    const delay = backoffDelay(this.attempts, this.opts.backoff, this.opts.random)
    if (this.restartTimer !== null) clearTimeout(this.restartTimer)
    this.restartTimer = setTimeout(() => {
      this.restartTimer = null
      if (!this.stopped) void this.lw?.start()
    }, delay)
    this.restartTimer.unref()
  }
}

function describeError (err: unknown): string {
  const status = httpStatusOf(err)
  const message = err instanceof Error ? err.message.split('\n')[0] : String(err)
  return status === undefined ? message : `HTTP ${status}${message === '' ? '' : ` (${message.slice(0, 200)})`}`
}
