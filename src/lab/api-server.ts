import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'

// A stand-in for the Kubernetes API server, speaking the list and watch protocol the way
// kube-apiserver does for the collections Ferry reads. The lab serves its own objects
// with it (`ferry lab up --kubernetes-api`: src/lab/api-server-main.ts), so the agents
// in the lab run the code they run on a cluster; the tests of every Kubernetes client in
// Ferry drive it directly (discovery, the controller's --kubernetes mode, the agent's
// DaemonSet check; test/helpers/kube-api.ts adds TokenReview and SubjectAccessReview).
// What it does:
//   - collections by path: pods, services and namespaces (core/v1) always, others as the
//     owner installs them (a CRD's /apis/GROUP/VERSION/PLURAL, a namespace's DaemonSets);
//     a GET of COLLECTION/NAME answers that object or 404;
//   - a JSON patch (add or replace /status) of an object's status subresource, as the
//     controller writes a verdict on a CRD: a new resourceVersion, watchers see MODIFIED;
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
// It is not Kubernetes: plain HTTP, no admission, no defaulting, no other verbs or patch
// types, no authorization beyond the one token (or none: token null, for tests whose
// subject is not the API server's authentication).

type Obj = Record<string, any>

/** The core collections every server has, by their short names. */
export type Resource = 'pods' | 'services' | 'namespaces'
/** A collection: a core one by name, or any installed one by its path ("/apis/GROUP/VERSION/PLURAL"). */
export type Collection = Resource | `/${string}`

const CORE_PATHS: Record<Resource, `/${string}`> = { pods: '/api/v1/pods', services: '/api/v1/services', namespaces: '/api/v1/namespaces' }
export const RESOURCE_KINDS: Record<Resource, string> = { pods: 'Pod', services: 'Service', namespaces: 'Namespace' }

const MAX_HISTORY = 10_000
const MAX_EVENTS = 1000
const EVENTS_PATH = /^\/api\/v1\/(?:namespaces\/([a-z0-9-]+)\/)?events$/
/** An object's status subresource: /apis/GROUP/VERSION/namespaces/NS/PLURAL/NAME/status. */
const STATUS_PATH = /^\/apis\/([^/]+)\/([^/]+)\/namespaces\/([^/]+)\/([^/]+)\/([^/]+)\/status$/

/** One collection's objects by key ("namespace/name", "/name" when cluster-scoped), and what a list of them is called. */
interface Store { readonly path: string, readonly kind: string | null, readonly apiVersion: string, readonly objects: Map<string, Obj> }

interface Change { rv: number, store: Store, type: 'ADDED' | 'MODIFIED' | 'DELETED', before: Obj | null, after: Obj }

interface Watcher { store: Store, match: (o: Obj) => boolean, res: ServerResponse, bookmarks: boolean }

export interface RecordedRequest { method: string, path: string, query: Record<string, string>, authorization: string | undefined }

/** An endpoint beyond list and watch (see route()). */
export type RouteHandler = (req: IncomingMessage, res: ServerResponse) => void

export interface ListWatchServerOptions {
  /** The bearer token every request must carry; null: any request is served. */
  readonly token: string | null
  /** The first resourceVersion is one more than this; watches from before it get 410 Gone. Default 1000. */
  readonly initialResourceVersion?: number
  /** Keep every request in `requests` (tests); default true. */
  readonly keepRequests?: boolean
  readonly onRequest?: (r: RecordedRequest) => void
}

export class ListWatchServer {
  private server: Server | null = null
  private readonly sockets = new Set<Socket>()
  /** By path. */
  private readonly stores = new Map<string, Store>()
  private readonly routes = new Map<string, RouteHandler>()
  private readonly history: Change[] = []
  private readonly watchers = new Set<Watcher>()
  private rv: number
  private compactedRv: number
  private readonly failures: Array<{ verb: 'list' | 'watch', store: Store, status: number }> = []
  readonly requests: RecordedRequest[] = []
  /** Events posted, oldest first (at most MAX_EVENTS). */
  readonly events: Obj[] = []
  /** How a too-old resourceVersion on a watch is answered. */
  gone: 'event' | 'http' = 'event'
  url = ''

  private readonly token: string | null

  /** `token` alone: the tests' form. */
  constructor (opts: ListWatchServerOptions | string) {
    const o = typeof opts === 'string' ? { token: opts } : opts
    this.opts = o
    this.token = o.token
    this.rv = o.initialResourceVersion ?? 1000
    this.compactedRv = o.initialResourceVersion ?? 0
    for (const r of Object.keys(CORE_PATHS) as Resource[]) this.install(CORE_PATHS[r], RESOURCE_KINDS[r])
  }

  /**
   * Makes a collection exist at `path` (a CRD installed, a namespace's DaemonSets), empty;
   * `kind` names its objects in lists and watch events (null: they carry their own).
   * A GET of a path nothing is installed at answers 404, as for a CRD not installed.
   */
  install (path: `/${string}`, kind: string | null = null): void {
    if (this.stores.has(path)) return
    const apiVersion = /^\/apis\/([^/]+\/[^/]+)\//.exec(path)?.[1] ?? 'v1'
    this.stores.set(path, { path, kind, apiVersion, objects: new Map() })
  }

  /** Serves `handler` for `method` on `path` (exact), after the token check: endpoints beyond list and watch. */
  route (method: string, path: string, handler: RouteHandler): void {
    this.routes.set(`${method} ${path}`, handler)
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
  get (collection: Collection, key: string): Obj | undefined { return this.storeOf(collection).objects.get(key) }

  /** Keys of the stored objects. */
  keys (collection: Collection): string[] { return [...this.storeOf(collection).objects.keys()] }

  /** The current resourceVersion (etcd's revision). */
  get resourceVersion (): number { return this.rv }

  async close (): Promise<void> {
    for (const s of this.sockets) s.destroy()
    await new Promise<void>((resolve) => this.server?.close(() => { resolve() }) ?? resolve())
  }

  /** Creates or replaces an object, as a controller's write would. */
  apply (collection: Collection, object: Obj): Obj {
    const store = this.storeOf(collection)
    const key = keyOf(object)
    const before = store.objects.get(key) ?? null
    const after = structuredClone(object)
    after.metadata.resourceVersion = String(++this.rv)
    store.objects.set(key, after)
    this.record({ rv: this.rv, store, type: before === null ? 'ADDED' : 'MODIFIED', before, after })
    return after
  }

  delete (collection: Collection, namespace: string | undefined, name: string): void {
    const store = this.storeOf(collection)
    const key = `${namespace ?? ''}/${name}`
    const before = store.objects.get(key)
    if (before === undefined) throw new Error(`no ${collection} ${key}`)
    store.objects.delete(key)
    const after = structuredClone(before)
    after.metadata.resourceVersion = String(++this.rv)
    this.record({ rv: this.rv, store, type: 'DELETED', before, after })
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
      if (w.bookmarks) write(w.res, { type: 'BOOKMARK', object: { kind: w.store.kind ?? '', apiVersion: w.store.apiVersion, metadata: { resourceVersion: String(this.rv) } } })
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

  /** The next `verb` on `collection` answers `status`. */
  failNext (verb: 'list' | 'watch', collection: Collection, status: number): void {
    this.failures.push({ verb, store: this.storeOf(collection), status })
  }

  openWatches (collection?: Collection): number {
    const store = collection === undefined ? undefined : this.storeOf(collection)
    return [...this.watchers].filter((w) => store === undefined || w.store === store).length
  }

  requestsFor (collection: Collection, verb: 'list' | 'watch'): RecordedRequest[] {
    const path = this.storeOf(collection).path
    return this.requests.filter((r) => r.path === path && (r.query.watch === 'true') === (verb === 'watch'))
  }

  private storeOf (collection: Collection): Store {
    const store = this.stores.get(collection.startsWith('/') ? collection : CORE_PATHS[collection as Resource])
    if (store === undefined) throw new Error(`${collection} is not installed`)
    return store
  }

  private record (change: Change): void {
    this.history.push(change)
    // A long-lived server keeps a bounded history, as etcd compacts: older watches re-list.
    if (this.history.length > MAX_HISTORY) this.compactedRv = (this.history.splice(0, this.history.length - MAX_HISTORY).pop() as Change).rv
    for (const w of this.watchers) if (w.store === change.store) this.send(w, change)
  }

  private send (w: Watcher, c: Change): void {
    const was = c.before !== null && c.type !== 'ADDED' && w.match(c.before)
    const is = c.type !== 'DELETED' && w.match(c.after)
    const type = c.type === 'DELETED' ? (was ? 'DELETED' : null) : was && is ? 'MODIFIED' : is ? 'ADDED' : was ? 'DELETED' : null
    if (type !== null) write(w.res, { type, object: withKind(c.store, c.after) })
  }

  private handle (req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://x')
    const query = Object.fromEntries(url.searchParams)
    const recorded = { method: req.method ?? '', path: url.pathname, query, authorization: req.headers.authorization }
    if (this.opts.keepRequests !== false) this.requests.push(recorded)
    this.opts.onRequest?.(recorded)
    if (this.token !== null && req.headers.authorization !== `Bearer ${this.token}`) { status(res, 401, 'Unauthorized', 'Unauthorized'); return }
    const route = this.routes.get(`${req.method ?? ''} ${url.pathname}`)
    if (route !== undefined) { route(req, res); return }
    const events = EVENTS_PATH.exec(url.pathname)
    if (events !== null) { this.eventsRequest(req, res, events[1]); return }
    const statusOf = STATUS_PATH.exec(url.pathname)
    if (req.method === 'PATCH' && statusOf !== null) { this.patchStatus(req, res, `/apis/${statusOf[1]}/${statusOf[2]}/${statusOf[4]}`, `${statusOf[3]}/${statusOf[5]}`); return }
    const store = this.stores.get(url.pathname)
    const parent = this.stores.get(url.pathname.slice(0, url.pathname.lastIndexOf('/')))
    if (req.method === 'GET' && store === undefined && parent !== undefined) { this.getOne(parent, url.pathname, res); return }
    if (req.method !== 'GET' || store === undefined) { status(res, 404, 'NotFound', `the server could not find the requested resource (${url.pathname})`); return }
    const watch = query.watch === 'true'
    const failure = this.failures.findIndex((f) => f.store === store && f.verb === (watch ? 'watch' : 'list'))
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
    if (watch) this.watch(store, query, match, res)
    else this.list(store, query, match, res)
  }

  /** GET COLLECTION/NAME: the object (its namespace from the collection's path), or 404. */
  private getOne (store: Store, path: string, res: ServerResponse): void {
    const name = path.slice(path.lastIndexOf('/') + 1)
    const namespace = /\/namespaces\/([^/]+)\//.exec(path)?.[1] ?? ''
    const object = store.objects.get(`${namespace}/${name}`)
    if (object === undefined) { status(res, 404, 'NotFound', `"${name}" not found`); return }
    json(res, 200, withKind(store, object))
  }

  /** PATCH of the status subresource with a JSON patch that adds or replaces /status (what the controller sends). */
  private patchStatus (req: IncomingMessage, res: ServerResponse, path: string, key: string): void {
    readBody(req, (body) => {
      const store = this.stores.get(path)
      const before = store?.objects.get(key)
      if (store === undefined || before === undefined) { status(res, 404, 'NotFound', `${key} not found`); return }
      let ops: Array<{ op: string, path: string, value: Obj }>
      try {
        ops = JSON.parse(body)
      } catch {
        status(res, 400, 'BadRequest', 'the body is not JSON')
        return
      }
      if (!String(req.headers['content-type']).startsWith('application/json-patch+json') || !Array.isArray(ops) ||
          !ops.every((o) => (o.op === 'add' || o.op === 'replace') && o.path === '/status')) {
        status(res, 415, 'UnsupportedMediaType', 'this stand-in takes a JSON patch of /status only')
        return
      }
      const after = structuredClone(before)
      for (const o of ops) after.status = o.value
      after.metadata.resourceVersion = String(++this.rv)
      store.objects.set(key, after)
      this.record({ rv: this.rv, store, type: 'MODIFIED', before, after })
      json(res, 200, withKind(store, after))
    })
  }

  private eventsRequest (req: IncomingMessage, res: ServerResponse, namespace: string | undefined): void {
    if (req.method === 'GET') {
      const items = this.events.filter((e) => namespace === undefined || e.metadata.namespace === namespace)
      json(res, 200, { kind: 'EventList', apiVersion: 'v1', metadata: { resourceVersion: String(this.rv) }, items })
      return
    }
    if (req.method !== 'POST' || namespace === undefined) { status(res, 405, 'MethodNotAllowed', `${req.method ?? '?'} is not allowed here`); return }
    readBody(req, (body) => {
      let event: Obj
      try {
        event = JSON.parse(body)
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

  private list (store: Store, query: Record<string, string>, match: (o: Obj) => boolean, res: ServerResponse): void {
    let rv = this.rv
    let offset = 0
    if (query.continue !== undefined) {
      const token = JSON.parse(Buffer.from(query.continue, 'base64url').toString()) as { rv: number, offset: number }
      if (token.rv < this.compactedRv) { status(res, 410, 'Expired', 'The provided continue parameter is too old'); return }
      rv = token.rv
      offset = token.offset
    }
    const all = [...store.objects.values()].filter(match).sort((a, b) => keyOf(a) < keyOf(b) ? -1 : 1)
    const limit = query.limit === undefined ? all.length : Number(query.limit)
    const items = all.slice(offset, offset + limit)
    const more = offset + limit < all.length
    const metadata: Obj = { resourceVersion: String(rv) }
    if (more) metadata.continue = Buffer.from(JSON.stringify({ rv, offset: offset + limit })).toString('base64url')
    json(res, 200, { kind: store.kind === null ? 'List' : `${store.kind}List`, apiVersion: store.apiVersion, metadata, items })
  }

  private watch (store: Store, query: Record<string, string>, match: (o: Obj) => boolean, res: ServerResponse): void {
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
    const w: Watcher = { store, match, res, bookmarks: query.allowWatchBookmarks === 'true' }
    if (from === 0) {
      for (const o of store.objects.values()) if (match(o)) write(res, { type: 'ADDED', object: withKind(store, o) })
    } else {
      for (const c of this.history) if (c.store === store && c.rv > from) this.send(w, c)
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

function withKind (store: Store, o: Obj): Obj {
  return store.kind === null ? o : { kind: store.kind, apiVersion: store.apiVersion, ...o }
}

function readBody (req: IncomingMessage, then: (body: string) => void): void {
  const chunks: Buffer[] = []
  req.on('data', (c: Buffer) => { chunks.push(c) })
  req.on('end', () => { then(Buffer.concat(chunks).toString('utf8')) })
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
