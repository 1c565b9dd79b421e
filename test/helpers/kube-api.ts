import type { IncomingMessage, ServerResponse } from 'node:http'
import { ListWatchServer } from '../../src/lab/api-server'

// NOT Kubernetes: the lab's list + watch server (src/lab/api-server.ts: collections by
// path, get of one object, the status subresource) taking any token, plus the two
// review APIs the controller and the agent ask, in the shapes kube-apiserver uses:
//   - POST /apis/authentication.k8s.io/v1/tokenreviews: the TokenReview object back with
//     the status the test set for that token (see REVIEWS below);
//   - POST /apis/authorization.k8s.io/v1/subjectaccessreviews: allowed when the test
//     granted that user exactly the review's resource attributes (a stand-in for RBAC).

type Obj = Record<string, any>

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

export class FakeKubeApi extends ListWatchServer {
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

  constructor () {
    super({ token: null })
    this.route('POST', TOKEN_REVIEW_PATH, (req, res) => { this.tokenReview(req, res) })
    this.route('POST', ACCESS_REVIEW_PATH, (req, res) => { this.accessReview(req, res) })
  }

  /** Status patches received: the collection's path and "namespace/name" of each. */
  get statusPatches (): Array<{ path: string, key: string }> {
    return this.requests.flatMap((r) => {
      const m = /^(\/apis\/[^/]+\/[^/]+)\/namespaces\/([^/]+)\/([^/]+)\/([^/]+)\/status$/.exec(r.path)
      return r.method === 'PATCH' && m !== null ? [{ path: `${m[1]}/${m[3]}`, key: `${m[2]}/${m[4]}` }] : []
    })
  }

  private tokenReview (req: IncomingMessage, res: ServerResponse): void {
    readJson(req, (review) => {
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
    readJson(req, (review) => {
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

function readJson (req: IncomingMessage, then: (body: Obj) => void): void {
  let body = ''
  req.on('data', (d: Buffer) => { body += d.toString() })
  req.on('end', () => { then(JSON.parse(body) as Obj) })
}

function json (res: ServerResponse, status: number, body: Obj): void {
  res.writeHead(status, { 'content-type': 'application/json' })
  res.end(JSON.stringify(body))
}
