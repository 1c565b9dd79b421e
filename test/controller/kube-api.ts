import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'

// NOT Kubernetes: a small local HTTP server that answers the few API calls the
// controller makes in --kubernetes mode, in the shapes kube-apiserver uses:
//   - POST /apis/authentication.k8s.io/v1/tokenreviews: the TokenReview object back with
//     the status the test set for that token (see REVIEWS below);
//   - POST /apis/authorization.k8s.io/v1/subjectaccessreviews: allowed when the test
//     granted that user exactly the review's resource attributes (a stand-in for RBAC);
//   - GET of a collection (pods; Ferry's and Istio's policy CRDs): a List with a
//     resourceVersion, and with watch=true the changes after the given resourceVersion,
//     then live ones, as newline-delimited JSON events in a chunked response;
//   - GET of one object of an installed collection (<collection>/<name>): the object, or
//     a 404 Status once it is gone (the agent asks for its own DaemonSet);
//   - 404 for a collection the test has not "installed" (Istio's CRDs, say);
//   - PATCH of an object's status subresource (…/namespaces/NS/PLURAL/NAME/status) with a
//     JSON patch (application/json-patch+json) that adds or replaces /status, as the
//     controller writes its verdict: the status changes, the resourceVersion moves on, and
//     watchers see MODIFIED — as kube-apiserver does for a CRD with a status subresource.
// No selectors, paging, bookmarks, admission, defaulting or other patch types.

type Obj = Record<string, any>

interface Change { rv: number, path: string, type: 'ADDED' | 'MODIFIED' | 'DELETED', object: Obj }

export const TOKEN_REVIEW_PATH = '/apis/authentication.k8s.io/v1/tokenreviews'
export const ACCESS_REVIEW_PATH = '/apis/authorization.k8s.io/v1/subjectaccessreviews'

/**
 * TokenReview statuses in the shape kube-apiserver (1.30+) gives them for a projected,
 * pod-bound service-account token. The error strings are the ones kube-apiserver
 * formats ("[invalid bearer token, …]"). Written after the API's documented shape, not
 * captured from a live cluster (none can run here).
 */
export const REVIEWS = Object.freeze({
  agentOn (node: string, opts: { audience?: string, user?: string, pod?: string } = {}): Obj {
    return {
      authenticated: true,
      user: {
        username: opts.user ?? 'system:serviceaccount:ferry-system:ferry-agent',
        uid: '5a1c2f0e-3f4b-4a55-9b8e-2f6f1a9d7c31',
        groups: ['system:serviceaccounts', 'system:serviceaccounts:ferry-system', 'system:authenticated'],
        extra: {
          'authentication.kubernetes.io/credential-id': ['JTI=7f9a1b2c-0d3e-4f5a-8b6c-9d0e1f2a3b4c'],
          'authentication.kubernetes.io/node-name': [node],
          'authentication.kubernetes.io/node-uid': ['0b7e2d4c-6a8f-4e1d-9c3b-5a7f2e8d1c6b'],
          'authentication.kubernetes.io/pod-name': [opts.pod ?? `ferry-agent-${node}`],
          'authentication.kubernetes.io/pod-uid': ['c3d4e5f6-a7b8-4c9d-8e0f-1a2b3c4d5e6f']
        }
      },
      audiences: [opts.audience ?? 'ferry-ca']
    }
  },
  expired (): Obj {
    return { user: {}, error: '[invalid bearer token, service account token has expired]' }
  },
  wrongAudience (tokenAudience: string, asked: string): Obj {
    return { user: {}, error: `[invalid bearer token, token audiences ["${tokenAudience}"] is invalid for the target audiences ["${asked}"]]` }
  }
})

export class FakeKubeApi {
  private server: Server | null = null
  private readonly sockets = new Set<Socket>()
  private readonly stores = new Map<string, Map<string, Obj>>()
  private readonly history: Change[] = []
  private readonly watchers = new Set<{ path: string, res: ServerResponse }>()
  private rv = 100
  /** token → TokenReview status; a token not here gets the "invalid token" answer. */
  readonly reviews = new Map<string, Obj>()
  /** TokenReview requests received (spec as sent). */
  readonly reviewRequests: Obj[] = []
  /** When set, TokenReviews answer this HTTP status (a down or misconfigured API server). */
  reviewFailure: number | null = null
  /** user → grants "group/resource/subresource verb name" a SubjectAccessReview allows. */
  readonly grants = new Map<string, Set<string>>()
  /** SubjectAccessReview requests received (spec as sent). */
  readonly accessRequests: Obj[] = []
  /** Status patches received: the collection, "namespace/name", the status written. */
  readonly statusPatches: Array<{ path: string, key: string, status: Obj }> = []
  url = ''

  /** The object as stored now (status included). */
  get (path: string, namespace: string, name: string): Obj | undefined {
    return this.stores.get(path)?.get(`${namespace}/${name}`)
  }

  /** Makes a collection exist (a CRD installed, or a core resource). */
  install (path: string): void {
    if (!this.stores.has(path)) this.stores.set(path, new Map())
  }

  async start (): Promise<string> {
    this.server = createServer((req, res) => { this.handle(req, res) })
    this.server.on('connection', (s) => { this.sockets.add(s); s.on('close', () => this.sockets.delete(s)) })
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve))
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`
    return this.url
  }

  async close (): Promise<void> {
    for (const s of this.sockets) s.destroy()
    await new Promise<void>((resolve) => this.server?.close(() => { resolve() }) ?? resolve())
  }

  apply (path: string, object: Obj): void {
    const store = this.stores.get(path)
    if (store === undefined) throw new Error(`${path} is not installed`)
    const key = `${object.metadata.namespace ?? ''}/${object.metadata.name}`
    const existed = store.has(key)
    const after = structuredClone(object)
    after.metadata.resourceVersion = String(++this.rv)
    after.metadata.uid ??= `uid-${key}`
    store.set(key, after)
    this.record({ rv: this.rv, path, type: existed ? 'MODIFIED' : 'ADDED', object: after })
  }

  delete (path: string, namespace: string, name: string): void {
    const store = this.stores.get(path)
    const key = `${namespace}/${name}`
    const before = store?.get(key)
    if (store === undefined || before === undefined) throw new Error(`no ${path} ${key}`)
    store.delete(key)
    const after = structuredClone(before)
    after.metadata.resourceVersion = String(++this.rv)
    this.record({ rv: this.rv, path, type: 'DELETED', object: after })
  }

  watchCount (path?: string): number {
    return [...this.watchers].filter((w) => path === undefined || w.path === path).length
  }

  private record (change: Change): void {
    this.history.push(change)
    for (const w of this.watchers) if (w.path === change.path) write(w.res, { type: change.type, object: change.object })
  }

  private handle (req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://x')
    if (req.method === 'POST' && url.pathname === TOKEN_REVIEW_PATH) { this.tokenReview(req, res); return }
    if (req.method === 'POST' && url.pathname === ACCESS_REVIEW_PATH) { this.accessReview(req, res); return }
    const status = /^\/apis\/([^/]+)\/([^/]+)\/namespaces\/([^/]+)\/([^/]+)\/([^/]+)\/status$/.exec(url.pathname)
    if (req.method === 'PATCH' && status !== null) { this.patchStatus(req, res, `/apis/${status[1]}/${status[2]}/${status[4]}`, `${status[3]}/${status[5]}`); return }
    const store = this.stores.get(url.pathname)
    const parent = this.stores.get(url.pathname.slice(0, url.pathname.lastIndexOf('/')))
    if (req.method === 'GET' && store === undefined && parent !== undefined) {
      const name = url.pathname.slice(url.pathname.lastIndexOf('/') + 1)
      const namespace = /\/namespaces\/([^/]+)\//.exec(url.pathname)?.[1] ?? ''
      const object = parent.get(`${namespace}/${name}`)
      if (object !== undefined) json(res, 200, object)
      else json(res, 404, { kind: 'Status', apiVersion: 'v1', status: 'Failure', message: `"${name}" not found`, reason: 'NotFound', details: { name }, code: 404 })
      return
    }
    if (req.method !== 'GET' || store === undefined) {
      json(res, 404, { kind: 'Status', apiVersion: 'v1', status: 'Failure', message: 'the server could not find the requested resource', reason: 'NotFound', code: 404 })
      return
    }
    if (url.searchParams.get('watch') === 'true') {
      const from = Number(url.searchParams.get('resourceVersion') ?? '0')
      res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' })
      res.flushHeaders()
      const w = { path: url.pathname, res }
      for (const c of this.history) if (c.path === url.pathname && c.rv > from) write(res, { type: c.type, object: c.object })
      this.watchers.add(w)
      res.on('close', () => { this.watchers.delete(w) })
      return
    }
    json(res, 200, { kind: 'List', apiVersion: 'v1', metadata: { resourceVersion: String(this.rv) }, items: [...store.values()] })
  }

  private patchStatus (req: IncomingMessage, res: ServerResponse, path: string, key: string): void {
    let body = ''
    req.on('data', (d: Buffer) => { body += d.toString() })
    req.on('end', () => {
      const store = this.stores.get(path)
      const before = store?.get(key)
      if (store === undefined || before === undefined) {
        json(res, 404, { kind: 'Status', apiVersion: 'v1', status: 'Failure', message: `${key} not found`, reason: 'NotFound', code: 404 })
        return
      }
      const ops = JSON.parse(body) as Array<{ op: string, path: string, value: Obj }>
      if (!String(req.headers['content-type']).startsWith('application/json-patch+json') || !Array.isArray(ops) ||
          !ops.every((o) => (o.op === 'add' || o.op === 'replace') && o.path === '/status')) {
        json(res, 415, { kind: 'Status', apiVersion: 'v1', status: 'Failure', message: 'this stand-in takes a JSON patch of /status only', code: 415 })
        return
      }
      const after = structuredClone(before)
      for (const o of ops) after.status = o.value
      after.metadata.resourceVersion = String(++this.rv)
      store.set(key, after)
      this.statusPatches.push({ path, key, status: after.status })
      this.record({ rv: this.rv, path, type: 'MODIFIED', object: after })
      json(res, 200, after)
    })
  }

  private tokenReview (req: IncomingMessage, res: ServerResponse): void {
    let body = ''
    req.on('data', (d: Buffer) => { body += d.toString() })
    req.on('end', () => {
      const review = JSON.parse(body) as Obj
      this.reviewRequests.push(review.spec)
      if (this.reviewFailure !== null) {
        json(res, this.reviewFailure, { kind: 'Status', apiVersion: 'v1', status: 'Failure', message: 'etcdserver: request timed out', code: this.reviewFailure })
        return
      }
      const status = this.reviews.get(review.spec?.token) ?? { user: {}, error: '[invalid bearer token, token lookup failed]' }
      json(res, 201, { kind: 'TokenReview', apiVersion: 'authentication.k8s.io/v1', metadata: { creationTimestamp: null }, spec: review.spec, status })
    })
  }

  private accessReview (req: IncomingMessage, res: ServerResponse): void {
    let body = ''
    req.on('data', (d: Buffer) => { body += d.toString() })
    req.on('end', () => {
      const review = JSON.parse(body) as Obj
      this.accessRequests.push(review.spec)
      const allowed = this.grants.get(review.spec?.user)?.has(grantKey(review.spec?.resourceAttributes ?? {})) === true
      const status = allowed ? { allowed: true, reason: 'RBAC: allowed by the test' } : { allowed: false, reason: '' }
      json(res, 201, { kind: 'SubjectAccessReview', apiVersion: 'authorization.k8s.io/v1', metadata: { creationTimestamp: null }, spec: review.spec, status })
    })
  }
}

/** How a grant is written in FakeKubeApi.grants. */
export function grantKey (a: { group?: string, resource?: string, subresource?: string, verb?: string, name?: string }): string {
  return `${a.group ?? ''}/${a.resource ?? ''}/${a.subresource ?? ''} ${a.verb ?? ''} ${a.name ?? ''}`
}

function write (res: ServerResponse, event: Obj): void {
  res.write(JSON.stringify(event) + '\n')
}

function json (res: ServerResponse, status: number, body: Obj): void {
  res.writeHead(status, { 'content-type': 'application/json' })
  res.end(JSON.stringify(body))
}
