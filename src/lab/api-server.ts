import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'

// A stand-in for the Kubernetes API server, speaking the list and watch protocol the way
// kube-apiserver does for the collections Ferry reads. The lab serves its own objects
// with it (`ferry lab up --kubernetes-api`: src/lab/api-server-main.ts), so the agents
// in the lab run the code they run on a cluster; the discovery tests drive it directly
// (test/kubernetes/). What it does:
//   - one resourceVersion counter for everything (as etcd's revision), set on every
//     object and on every list;
//   - lists with field selectors on spec.nodeName (= and !=), limit/continue paging
//     (a continue token older than the compaction answers 410 Gone);
//   - watch=true from a resourceVersion: the changes after it, then live changes, as
//     newline-delimited JSON events in a chunked response (ADDED, MODIFIED, DELETED,
//     BOOKMARK when allowWatchBookmarks); an object that starts or stops matching the
//     field selector arrives as ADDED or DELETED, as the watch cache sends it;
//   - a resourceVersion older than the compaction answers 410 Gone, either as an ERROR
//     event in a 200 response (what kube-apiserver does) or as an HTTP 410 (what a
//     proxy or an older server may do), as the test chooses;
//   - bearer tokens are checked, and every request is recorded (kept for tests, or
//     handed to a callback);
//   - resourceVersions start where the owner says: a server restarted with a higher
//     start answers a watch from its predecessor's resourceVersions with 410 Gone, as
//     kube-apiserver does once etcd has compacted them.
//   - Events (core/v1) are accepted as the API server takes them (POST to a namespace's
//     events, a name made from generateName) and listed (GET /api/v1/events, or a
//     namespace's), the last MAX_EVENTS of them: what `kubectl get events` shows.
// It is not Kubernetes: plain HTTP, no admission, no defaulting, no other verbs, no
// authorization beyond the one token.

type Obj = Record<string, any>

export type Resource = 'pods' | 'services' | 'namespaces'

const PATHS: Record<string, Resource> = { '/api/v1/pods': 'pods', '/api/v1/services': 'services', '/api/v1/namespaces': 'namespaces' }
export const RESOURCE_KINDS: Record<Resource, string> = { pods: 'Pod', services: 'Service', namespaces: 'Namespace' }

const MAX_HISTORY = 10_000
const MAX_EVENTS = 1000
const EVENTS_PATH = /^\/api\/v1\/(?:namespaces\/([a-z0-9-]+)\/)?events$/

interface Change { rv: number, resource: Resource, type: 'ADDED' | 'MODIFIED' | 'DELETED', before: Obj | null, after: Obj }

interface Watcher { resource: Resource, match: (o: Obj) => boolean, res: ServerResponse, bookmarks: boolean }

export interface RecordedRequest { path: string, query: Record<string, string>, authorization: string | undefined }

export interface ListWatchServerOptions {
  /** The bearer token every request must carry. */
  readonly token: string
  /** The first resourceVersion is one more than this; watches from before it get 410 Gone. Default 1000. */
  readonly initialResourceVersion?: number
  /** Keep every request in `requests` (tests); default true. */
  readonly keepRequests?: boolean
  readonly onRequest?: (r: RecordedRequest) => void
}

export class ListWatchServer {
  private server: Server | null = null
  private readonly sockets = new Set<Socket>()
  private readonly stores: Record<Resource, Map<string, Obj>> = { pods: new Map(), services: new Map(), namespaces: new Map() }
  private readonly history: Change[] = []
  private readonly watchers = new Set<Watcher>()
  private rv: number
  private compactedRv: number
  private readonly failures: Array<{ verb: 'list' | 'watch', resource: Resource, status: number }> = []
  readonly requests: RecordedRequest[] = []
  /** Events posted, oldest first (at most MAX_EVENTS). */
  readonly events: Obj[] = []
  /** How a too-old resourceVersion on a watch is answered. */
  gone: 'event' | 'http' = 'event'
  url = ''

  private readonly token: string

  /** `token` alone: the tests' form. */
  constructor (opts: ListWatchServerOptions | string) {
    const o = typeof opts === 'string' ? { token: opts } : opts
    this.opts = o
    this.token = o.token
    this.rv = o.initialResourceVersion ?? 1000
    this.compactedRv = o.initialResourceVersion ?? 0
  }

  private readonly opts: ListWatchServerOptions

  async start (host = '127.0.0.1', port = 0): Promise<string> {
    this.server = createServer((req, res) => { this.handle(req, res) })
    this.server.on('connection', (s) => { this.sockets.add(s); s.on('close', () => this.sockets.delete(s)) })
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject)
      this.server!.listen(port, host, () => { this.server!.off('error', reject); resolve() })
    })
    const a = this.server.address() as AddressInfo
    this.url = `http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`
    return this.url
  }

  /** The stored object of that key ("namespace/name", "/name" for cluster-scoped), or undefined. */
  get (resource: Resource, key: string): Obj | undefined { return this.stores[resource].get(key) }

  /** Keys of the stored objects. */
  keys (resource: Resource): string[] { return [...this.stores[resource].keys()] }

  /** The current resourceVersion (etcd's revision). */
  get resourceVersion (): number { return this.rv }

  async close (): Promise<void> {
    for (const s of this.sockets) s.destroy()
    await new Promise<void>((resolve) => this.server?.close(() => { resolve() }) ?? resolve())
  }

  /** Creates or replaces an object, as a controller's write would. */
  apply (resource: Resource, object: Obj): Obj {
    const key = keyOf(object)
    const before = this.stores[resource].get(key) ?? null
    const after = structuredClone(object)
    after.metadata.resourceVersion = String(++this.rv)
    this.stores[resource].set(key, after)
    this.record({ rv: this.rv, resource, type: before === null ? 'ADDED' : 'MODIFIED', before, after })
    return after
  }

  delete (resource: Resource, namespace: string | undefined, name: string): void {
    const key = `${namespace ?? ''}/${name}`
    const before = this.stores[resource].get(key)
    if (before === undefined) throw new Error(`no ${resource} ${key}`)
    this.stores[resource].delete(key)
    const after = structuredClone(before)
    after.metadata.resourceVersion = String(++this.rv)
    this.record({ rv: this.rv, resource, type: 'DELETED', before, after })
  }

  /** Forgets history up to now: a watch from an older resourceVersion gets 410 Gone. */
  compact (): void {
    this.compactedRv = this.rv
    this.history.length = 0
  }

  /** BOOKMARK events to every watcher that asked for them. */
  bookmark (): void {
    this.rv++
    for (const w of this.watchers) {
      if (w.bookmarks) write(w.res, { type: 'BOOKMARK', object: { kind: RESOURCE_KINDS[w.resource], apiVersion: 'v1', metadata: { resourceVersion: String(this.rv) } } })
    }
  }

  /** Cuts every open watch connection, as a network failure would. */
  breakWatches (): void {
    for (const w of this.watchers) w.res.socket?.destroy()
    this.watchers.clear()
  }

  /** Ends every open watch normally, as the server's timeout does. */
  endWatches (): void {
    for (const w of this.watchers) w.res.end()
    this.watchers.clear()
  }

  /** The next `verb` on `resource` answers `status`. */
  failNext (verb: 'list' | 'watch', resource: Resource, status: number): void {
    this.failures.push({ verb, resource, status })
  }

  openWatches (resource?: Resource): number {
    return [...this.watchers].filter((w) => resource === undefined || w.resource === resource).length
  }

  requestsFor (resource: Resource, verb: 'list' | 'watch'): RecordedRequest[] {
    const path = Object.keys(PATHS).find((p) => PATHS[p] === resource)
    return this.requests.filter((r) => r.path === path && (r.query.watch === 'true') === (verb === 'watch'))
  }

  private record (change: Change): void {
    this.history.push(change)
    // A long-lived server keeps a bounded history, as etcd compacts: older watches re-list.
    if (this.history.length > MAX_HISTORY) this.compactedRv = (this.history.splice(0, this.history.length - MAX_HISTORY).pop() as Change).rv
    for (const w of this.watchers) if (w.resource === change.resource) this.send(w, change)
  }

  private send (w: Watcher, c: Change): void {
    const was = c.before !== null && c.type !== 'ADDED' && w.match(c.before)
    const is = c.type !== 'DELETED' && w.match(c.after)
    const type = c.type === 'DELETED' ? (was ? 'DELETED' : null) : was && is ? 'MODIFIED' : is ? 'ADDED' : was ? 'DELETED' : null
    if (type !== null) write(w.res, { type, object: withKind(c.resource, c.after) })
  }

  private handle (req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://x')
    const query = Object.fromEntries(url.searchParams)
    const recorded = { path: url.pathname, query, authorization: req.headers.authorization }
    if (this.opts.keepRequests !== false) this.requests.push(recorded)
    this.opts.onRequest?.(recorded)
    if (req.headers.authorization !== `Bearer ${this.token}`) { status(res, 401, 'Unauthorized', 'Unauthorized'); return }
    const events = EVENTS_PATH.exec(url.pathname)
    if (events !== null) { this.eventsRequest(req, res, events[1]); return }
    const resource = PATHS[url.pathname]
    if (req.method !== 'GET' || resource === undefined) { status(res, 404, 'NotFound', `the server could not find the requested resource (${url.pathname})`); return }
    const watch = query.watch === 'true'
    const failure = this.failures.findIndex((f) => f.resource === resource && f.verb === (watch ? 'watch' : 'list'))
    if (failure >= 0) {
      const f = this.failures.splice(failure, 1)[0]
      status(res, f.status, f.status === 410 ? 'Expired' : 'InternalError', `injected failure ${f.status}`)
      return
    }
    let match: (o: Obj) => boolean
    try {
      match = selector(query.fieldSelector)
    } catch (err) {
      status(res, 400, 'BadRequest', (err as Error).message)
      return
    }
    if (watch) this.watch(resource, query, match, res)
    else this.list(resource, query, match, res)
  }

  private eventsRequest (req: IncomingMessage, res: ServerResponse, namespace: string | undefined): void {
    if (req.method === 'GET') {
      const items = this.events.filter((e) => namespace === undefined || e.metadata.namespace === namespace)
      json(res, 200, { kind: 'EventList', apiVersion: 'v1', metadata: { resourceVersion: String(this.rv) }, items })
      return
    }
    if (req.method !== 'POST' || namespace === undefined) { status(res, 405, 'MethodNotAllowed', `${req.method ?? '?'} is not allowed here`); return }
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => { chunks.push(c) })
    req.on('end', () => {
      let event: Obj
      try {
        event = JSON.parse(Buffer.concat(chunks).toString('utf8'))
      } catch {
        status(res, 400, 'BadRequest', 'the body is not JSON')
        return
      }
      if (typeof event?.metadata !== 'object' || event.metadata === null) { status(res, 422, 'Invalid', 'metadata is required'); return }
      const name = typeof event.metadata.name === 'string' ? event.metadata.name : `${String(event.metadata.generateName ?? 'event.')}${(++this.rv).toString(36)}`
      const stored = { kind: 'Event', apiVersion: 'v1', ...event, metadata: { ...event.metadata, name, namespace, resourceVersion: String(++this.rv) } }
      this.events.push(stored)
      if (this.events.length > MAX_EVENTS) this.events.splice(0, this.events.length - MAX_EVENTS)
      json(res, 201, stored)
    })
  }

  private list (resource: Resource, query: Record<string, string>, match: (o: Obj) => boolean, res: ServerResponse): void {
    let rv = this.rv
    let offset = 0
    if (query.continue !== undefined) {
      const token = JSON.parse(Buffer.from(query.continue, 'base64url').toString()) as { rv: number, offset: number }
      if (token.rv < this.compactedRv) { status(res, 410, 'Expired', 'The provided continue parameter is too old'); return }
      rv = token.rv
      offset = token.offset
    }
    const all = [...this.stores[resource].values()].filter(match).sort((a, b) => keyOf(a) < keyOf(b) ? -1 : 1)
    const limit = query.limit === undefined ? all.length : Number(query.limit)
    const items = all.slice(offset, offset + limit)
    const more = offset + limit < all.length
    const metadata: Obj = { resourceVersion: String(rv) }
    if (more) metadata.continue = Buffer.from(JSON.stringify({ rv, offset: offset + limit })).toString('base64url')
    json(res, 200, { kind: `${RESOURCE_KINDS[resource]}List`, apiVersion: 'v1', metadata, items })
  }

  private watch (resource: Resource, query: Record<string, string>, match: (o: Obj) => boolean, res: ServerResponse): void {
    const from = Number(query.resourceVersion ?? '0')
    if (from !== 0 && from < this.compactedRv) {
      const message = `too old resource version: ${from} (${this.compactedRv})`
      if (this.gone === 'http') { status(res, 410, 'Expired', message); return }
      res.writeHead(200, { 'content-type': 'application/json' })
      write(res, { type: 'ERROR', object: { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason: 'Expired', code: 410 } })
      res.end()
      return
    }
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' })
    res.flushHeaders() // as kube-apiserver does: the client sees the watch open before the first event
    const w: Watcher = { resource, match, res, bookmarks: query.allowWatchBookmarks === 'true' }
    if (from === 0) {
      for (const o of this.stores[resource].values()) if (match(o)) write(res, { type: 'ADDED', object: withKind(resource, o) })
    } else {
      for (const c of this.history) if (c.resource === resource && c.rv > from) this.send(w, c)
    }
    this.watchers.add(w)
    const timeout = Number(query.timeoutSeconds ?? '0')
    const timer = timeout > 0 ? setTimeout(() => { this.watchers.delete(w); res.end() }, timeout * 1000) : null
    res.on('close', () => { if (timer !== null) clearTimeout(timer); this.watchers.delete(w) })
  }
}

export function keyOf (o: Obj): string {
  return `${(o.metadata.namespace as string | undefined) ?? ''}/${o.metadata.name as string}`
}

function withKind (resource: Resource, o: Obj): Obj {
  return { kind: RESOURCE_KINDS[resource], apiVersion: 'v1', ...o }
}

/** Field selectors the way the API server reads spec.nodeName: "a=b", "a!=b", comma-joined. */
function selector (text: string | undefined): (o: Obj) => boolean {
  if (text === undefined || text === '') return () => true
  const terms = text.split(',').map((t) => {
    const m = /^([a-zA-Z.]+)(!=|==|=)(.*)$/.exec(t)
    if (m === null || m[1] !== 'spec.nodeName') throw new Error(`field label not supported: ${t}`)
    return { negate: m[2] === '!=', value: m[3] }
  })
  return (o) => terms.every((t) => ((o.spec?.nodeName ?? '') === t.value) !== t.negate)
}

function write (res: ServerResponse, event: Obj): void {
  res.write(JSON.stringify(event) + '\n')
}

function json (res: ServerResponse, code: number, body: Obj): void {
  res.writeHead(code, { 'content-type': 'application/json' })
  res.end(JSON.stringify(body))
}

function status (res: ServerResponse, code: number, reason: string, message: string): void {
  json(res, code, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code })
}
