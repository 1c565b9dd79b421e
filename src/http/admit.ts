import type { IncomingHttpHeaders } from 'node:http'
import type { HttpDownstream } from './context'
import type { RequestState } from './record'
import { takeRateLimit } from './rate-limit'
import { HeadersRequestView, pathOnly } from './request-view'

// The per-request stages before forwarding, in order, for every kind of request (HTTP/1.1,
// an Upgrade, an HTTP/2 stream):
//   normalize   destination: the path as the application will receive it (reject: 400)
//   authorize   destination: the pod's policies on the request (denied: 403 /
//               PERMISSION_DENIED, flag RBAC); the connection stays open
//   rate limit  destination: the pod's local rate limit (rate-limit.ts: 429, flag RL)
//   route       source, when the service has routing (ds.route): the request leaves the
//               plain path here ('routed'; forward-routed.ts carries out its route)
//   pick        the endpoint (none: 503, flag UH)
//   local       same-node: the destination's own authorization (as above), then its
//               rate limit
// Returns the outcome and leaves the request's path, target and decision fields set on
// `st`; the caller answers refusals in its protocol.

export type Admission = 'forward' | 'bad_path' | 'denied' | 'no_upstream' | 'rate_limited' | 'routed'

/** The forwarded request target: `target` with its path replaced by `path` (query kept). */
export function withPath (target: string, path: string): string {
  const q = target.indexOf('?')
  return q < 0 ? path : path + target.slice(q)
}

export function admitRequest (st: RequestState, ds: HttpDownstream, headers: IncomingHttpHeaders, target: string): Admission {
  let path = pathOnly(target)
  if (ds.normalizePath !== null) {
    const n = ds.normalizePath(path)
    if ('reject' in n) {
      st.flag('DPE')
      st.responseCode = 400
      return 'bad_path'
    }
    if (n.path !== path) {
      path = n.path
      st.path = withPath(target, path)
    }
  }
  if (ds.authorizer !== null) {
    const view = new HeadersRequestView(st.method, path, st.authority, headers)
    const allowed = ds.authorizer.authorize(view)
    st.authz = ds.authorizer.record.authz ?? null
    if (!allowed) {
      st.flag('RBAC')
      return 'denied'
    }
  }
  if (ds.rateLimit !== null && !takeRateLimit(st, ds.rateLimit)) return 'rate_limited'
  if (ds.route !== null) return 'routed'
  const t = ds.pick()
  if (t === null) {
    st.flag('UH')
    return 'no_upstream'
  }
  st.target = t
  if (t.local !== null) {
    const view = new HeadersRequestView(st.method, path, st.authority, headers)
    const allowed = t.local.authorize(view)
    st.localAuthz = t.local.record.authz ?? null
    if (!allowed) {
      st.flag('RBAC')
      return 'denied'
    }
    if (t.local.rateLimit !== null && !takeRateLimit(st, t.local.rateLimit)) return 'rate_limited'
  }
  return 'forward'
}

export const DENIED_BODY = 'RBAC: access denied'
export { GRPC_INTERNAL, GRPC_PERMISSION_DENIED, GRPC_UNAVAILABLE } from './grpc-status'
