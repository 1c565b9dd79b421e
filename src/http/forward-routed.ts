import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http'
import type { RequestPlan, RouteResult } from '../routing/model'
import { DENIED_BODY } from './admit'
import { AttemptLoop } from './attempts'
import type { HttpDownstream, HttpVersion, UpstreamTarget } from './context'
import type { HttpEngineDeps } from './engine'
import { GRPC_INTERNAL, GRPC_PERMISSION_DENIED, GRPC_RESOURCE_EXHAUSTED, GRPC_UNIMPLEMENTED, grpcStatusOfHttp } from './grpc-status'
import { applyHeaderEdits } from './header-edits'
import { endToEndHeaders } from './hop-by-hop'
import { sendMirrors } from './mirror'
import { addRateLimitHeaders, RATE_LIMITED_BODY, takeRateLimit } from './rate-limit'
import type { RequestState } from './record'
import { HeldBody, RETRY_BODY_LIMIT } from './request-body'
import { pathOnly } from './request-view'
import type { RoutedDownstream, StartUpstream, UpstreamHead } from './routed-io'
import { queryOf, RoutedView } from './routed-view'
import { startH1 } from './upstream-h1'
import { startH2 } from './upstream-h2'

// A request on a service with routing (HttpDownstream.route), after admit.ts: whatever
// the HTTP versions on either side, its RouteResult is carried out here —
//   not_found   404 (flag NR; gRPC UNIMPLEMENTED)
//   redirect    the status with Location, no body
//   abort       the status (flag FI, or NR for a rule with no usable backend); a gRPC
//               request gets a trailers-only answer with the fault's grpcStatus, or the
//               HTTP status mapped as gRPC maps it (grpc-status.ts)
//   forward     the plan: path and authority rewritten, request header edits, mirrors
//               (mirror.ts), then the attempt loop (attempts.ts: delay, attempts,
//               retries, timeouts, the response). Each attempt's endpoint on the
//               same-node path is authorized and rate-limited as the destination would
// The request's route_name and attempt count go on its record.

export interface RoutedRequest {
  readonly deps: HttpEngineDeps
  readonly ds: HttpDownstream
  readonly st: RequestState
  readonly down: RoutedDownstream
  /** The client's request headers as Node parsed them. */
  readonly headers: IncomingHttpHeaders
  /** The version spoken upstream. */
  readonly upstream: HttpVersion
  /** Answers gRPC as trailers-only (an HTTP/2 client's gRPC request). */
  readonly grpc: boolean
  /** Registers what to do when the client leaves (its response or stream closed). */
  onGone (cb: () => void): void
}

export function forwardRouted (r: RoutedRequest): void {
  const { st } = r
  const path = pathOnly(st.path)
  const view = new RoutedView(st.method, path, st.authority, r.headers, queryOf(st.path), st.protocol === 'grpc')
  let result: RouteResult
  try {
    result = r.ds.route!(view)
  } catch {
    answer(r, 500, null, 'route error', GRPC_INTERNAL)
    return
  }
  switch (result.kind) {
    case 'not_found':
      st.flag('NR')
      answer(r, 404, null, 'route not found', GRPC_UNIMPLEMENTED)
      return
    case 'redirect':
      st.routeName = result.rule.name
      st.responseCode = result.status
      r.down.respond(result.status, { location: result.location, 'content-length': 0 }, true)
      return
    case 'abort':
      st.routeName = result.rule.name
      st.flag(result.flag)
      answer(r, result.httpStatus, null, result.flag === 'FI' ? 'fault filter abort' : 'no usable backend', result.grpcStatus ?? grpcStatusOfHttp(result.httpStatus))
      return
    case 'forward':
      forwardPlan(r, result.plan, view)
  }
}

function forwardPlan (r: RoutedRequest, plan: RequestPlan, view: RoutedView): void {
  const { st, deps, down } = r
  st.routeName = plan.rule?.name ?? null
  if (plan.path !== null) st.path = plan.path
  const out: OutgoingHttpHeaders = endToEndHeaders(r.headers)
  // TE is hop-by-hop in HTTP/1.1 (only HTTP/2 keeps "trailers").
  if (r.upstream === 'http1') delete out.te
  const given = plan.authority ?? st.authority
  if (given !== '') out.host = given
  if (plan.requestHeaders.length > 0) applyHeaderEdits(out, plan.requestHeaders)
  const host = out.host
  const authority = typeof host === 'string' ? host : ''
  const body = down.body === null
    ? null
    : new HeldBody(down.body, RETRY_BODY_LIMIT, (chunk) => {
      st.requestBytes += chunk.length
      st.messages?.request.push(chunk)
    })
  const head: UpstreamHead = { method: st.method, path: st.path, authority, headers: out, hasBody: body !== null }
  const start: StartUpstream = r.upstream === 'http2' ? startH2 : startH1
  const loop = new AttemptLoop({
    deps,
    st,
    plan,
    down,
    start,
    head,
    body,
    grpc: r.grpc,
    admitTarget: (target, first) => admitTarget(r, view, out, target, first)
  })
  r.onGone(() => { loop.downstreamGone() })
  if (plan.mirrors.length > 0) sendMirrors(deps, plan, start, head, body)
  loop.start()
}

/** An attempt's endpoint: the same-node destination's authorization and rate limit; the first one starts the span. */
function admitTarget (r: RoutedRequest, view: RoutedView, out: OutgoingHttpHeaders, target: UpstreamTarget, first: boolean): boolean {
  const { st } = r
  const local = target.local
  if (local !== null) {
    const allowed = local.authorize(view)
    st.localAuthz = local.record.authz ?? null
    if (!allowed) {
      st.flag('RBAC')
      answer(r, 403, null, DENIED_BODY, GRPC_PERMISSION_DENIED)
      return false
    }
    if (local.rateLimit !== null && !takeRateLimit(st, local.rateLimit)) {
      rateLimited(r)
      return false
    }
  }
  if (first) {
    const span = st.startSpan(r.headers)
    for (const name of span.remove) delete out[name]
    const fwd = span.forward
    for (const name in fwd) out[name] = fwd[name]
    if (local !== null) st.startLocalSpan(out as IncomingHttpHeaders)
  }
  return true
}

/** 429 with the verdict's headers (gRPC RESOURCE_EXHAUSTED). */
export function rateLimited (r: Pick<RoutedRequest, 'st' | 'down' | 'grpc'>): void {
  answer(r, 429, null, RATE_LIMITED_BODY, GRPC_RESOURCE_EXHAUSTED)
}

/** A response the proxy makes itself, with the rate limit's headers when one applied. */
function answer (r: Pick<RoutedRequest, 'st' | 'down' | 'grpc'>, status: number, headers: OutgoingHttpHeaders | null, body: string, grpcStatus: number): void {
  const { st } = r
  let h = headers
  if (st.rateLimit !== null) h = addRateLimitHeaders(h ?? {}, st.rateLimit)
  if (r.grpc) {
    st.responseCode = 200
    st.grpcStatus = grpcStatus
  } else {
    st.responseCode = status
    st.responseBytes = Buffer.byteLength(body)
  }
  r.down.answer(status, h, body, grpcStatus)
}
