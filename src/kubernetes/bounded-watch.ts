import { backoffDelay, type BackoffPolicy } from '../identity/backoff'
import type { Random } from '../identity/clock'
import { ferryError } from '../errors'
import type { K8s } from './client'

// The client's Watch with the settings a long-lived watch needs, as the client's
// ListWatch calls it (a layer between the two, never a change to either):
//   - allowWatchBookmarks: the server sends BOOKMARK events with fresh resourceVersions,
//     so a restarted watch resumes close to now instead of hitting 410 Gone;
//   - timeoutSeconds, jittered: the server ends each watch after a few minutes and
//     ListWatch resumes from the last resourceVersion; agents that started together do
//     not all come back together;
//   - an idle deadline: a watch that hears nothing (not even a bookmark) for longer than
//     the server timeout is dead (a vanished peer, a dropped NAT entry) and is aborted,
//     which ListWatch reports as an error and the reflector restarts it;
//   - a watch that ends at once without an event, again and again (a proxy that closes
//     it), is restarted with backoff rather than in a tight loop.

export interface BoundedWatchOptions {
  /** Server-side watch timeout, before jitter. */
  readonly timeoutSeconds: number
  /** Fraction of timeoutSeconds added at random, in [0, 1]. */
  readonly jitter: number
  /** Abort a watch silent for this long (should exceed timeoutSeconds · (1 + jitter)). */
  readonly idleMs: number
  /** A watch shorter than this without events counts as ending "at once". */
  readonly minHealthyMs: number
  readonly backoff: BackoffPolicy
  readonly random: Random
  /** Every event (bookmarks included): the reflector resets its error backoff. */
  readonly onEvent?: () => void
}

export const BOUNDED_WATCH_DEFAULTS = Object.freeze({ timeoutSeconds: 300, jitter: 0.5, idleMs: 480_000, minHealthyMs: 1000 })

type Callback = (phase: string, apiObj: any, watchObj?: any) => void
type QueryParams = Record<string, string | number | boolean | undefined>

export class BoundedWatch {
  /** ListWatch reads `config` only through Watch; kept for type compatibility. */
  readonly config: K8s.KubeConfig
  private quickEnds = 0
  private closed = false
  private current: AbortController | undefined

  constructor (private readonly inner: K8s.Watch, private readonly opts: BoundedWatchOptions) {
    this.config = inner.config
  }

  /**
   * No more watches: aborts the open one. ListWatch.stop() cannot abort a watch whose
   * response headers have not arrived yet (it has no handle on it until then); this
   * aborts it as soon as they do.
   */
  close (): void {
    this.closed = true
    this.current?.abort()
  }

  async watch (path: string, query: QueryParams, callback: Callback, done: (err: any) => void): Promise<AbortController> {
    if (this.quickEnds > 0) await sleep(backoffDelay(this.quickEnds, this.opts.backoff, this.opts.random))
    if (this.closed) {
      const aborted = new AbortController()
      aborted.abort()
      return aborted
    }
    const timeoutSeconds = Math.round(this.opts.timeoutSeconds * (1 + this.opts.jitter * this.opts.random()))
    const startedAt = Date.now()
    let events = 0
    let idle: NodeJS.Timeout | undefined
    let idled = false
    let finished = false
    let controller: AbortController | undefined
    const arm = (): void => {
      clearTimeout(idle)
      idle = setTimeout(() => { idled = true; controller?.abort() }, this.opts.idleMs)
      idle.unref()
    }
    const finish = (err: unknown): void => {
      if (finished) return
      finished = true
      clearTimeout(idle)
      this.quickEnds = err === null && events === 0 && Date.now() - startedAt < this.opts.minHealthyMs ? this.quickEnds + 1 : 0
      done(idled ? ferryError('FERRY_ERR_KUBE_API', `${path}: the watch heard nothing for ${this.opts.idleMs} ms and was restarted`) : err)
    }
    arm()
    controller = await this.inner.watch(path, { ...query, allowWatchBookmarks: true, timeoutSeconds }, (phase, obj, raw) => {
      events++
      arm()
      this.opts.onEvent?.()
      callback(phase, obj, raw)
    }, finish)
    if (finished) clearTimeout(idle)
    this.current = controller
    if (this.closed) controller.abort()
    return controller
  }
}

async function sleep (ms: number): Promise<void> {
  await new Promise((resolve) => { setTimeout(resolve, ms).unref() })
}
