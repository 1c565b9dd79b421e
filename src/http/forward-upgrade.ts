import type { IncomingMessage } from 'node:http'
import { relay, type RelayEnd } from '../proxy/relay'
import type { Attempt } from '../routing/model'
import { admitRequest, DENIED_BODY } from './admit'
import type { HttpDownstream } from './context'
import { RATE_LIMITED_BODY, takeRateLimit } from './rate-limit'
import { pathOnly } from './request-view'
import { queryOf, RoutedView } from './routed-view'
import type { HttpEngineDeps } from './engine'
import { protocolOf, RequestState } from './record'
import type { H1Conn } from './server-h1'

// An HTTP/1.1 request with Upgrade (WebSocket, h2c upgrade…): admitted like any request
// (admit.ts), then sent to the endpoint on a connection of its own (never pooled: it
// will not come back) exactly as received — its Connection and Upgrade headers are the
// point — with the span's headers set; from then on both connections are relayed byte
// for byte (relay.ts), whatever the endpoint answers (101 or not). The request ends when
// the relay does; its status is the one the endpoint's first line carries.

export function forwardUpgrade (deps: HttpEngineDeps, c: H1Conn, req: IncomingMessage, head: Buffer): void {
  const ds = c.downstream
  const down = c.end
  c.requestStarted()
  const st = new RequestState(deps, ds.reporter, ds.record, protocolOf(req.headers['content-type']), '1.1', req.method ?? 'GET', req.headers.host ?? '', req.url ?? '/')
  const admission = admitRequest(st, ds, req.headers, st.path)
  let attempt: Attempt | null = null
  if (admission === 'routed') {
    const routed = routeUpgrade(st, ds, req)
    if (!('attempt' in routed)) {
      closeWith(down, st, routed.status, routed.text, routed.body, routed.location)
      return
    }
    attempt = routed.attempt
  } else if (admission !== 'forward') {
    if (admission === 'bad_path') deps.refusals.refused('bad_path')
    const [status, text, body] = admission === 'denied' ? [403, 'Forbidden', DENIED_BODY] : admission === 'bad_path' ? [400, 'Bad Request', 'Bad Request'] : admission === 'rate_limited' ? [429, 'Too Many Requests', RATE_LIMITED_BODY] : [503, 'Service Unavailable', 'no healthy upstream']
    closeWith(down, st, status, text, body)
    return
  }
  const target = st.target!
  const span = st.startSpan(req.headers)
  const skip = new Set<string>(span.remove)
  for (const name in span.forward) skip.add(name)
  let text = `${st.method} ${st.path} HTTP/1.1\r\n`
  const raw = req.rawHeaders
  for (let i = 0; i < raw.length; i += 2) {
    if (!skip.has(raw[i].toLowerCase())) text += `${raw[i]}: ${raw[i + 1]}\r\n`
  }
  for (const name in span.forward) text += `${name}: ${span.forward[name]}\r\n`
  text += '\r\n'
  if (target.local !== null) st.startLocalSpan(req.headers)
  target.dial().then((up: RelayEnd) => {
    if (down.destroyed) {
      up.destroy()
      st.flag('DC')
      attempt?.end({ kind: 'canceled' })
      st.end()
      return
    }
    const headBytes = Buffer.byteLength(text)
    up.write(text)
    if (head.length > 0) up.write(head)
    up.once('data', (chunk: Buffer) => {
      // "HTTP/1.1 101 ..."
      if (chunk.length >= 12 && chunk.toString('latin1', 0, 5) === 'HTTP/') st.responseCode = Number(chunk.toString('latin1', 9, 12)) || 0
    })
    relay(down, up, (code) => {
      st.requestBytes = Math.max(0, up.bytesWritten - headBytes)
      st.responseBytes = up.bytesRead
      if (code !== null) st.flag(st.responseCode === 0 ? 'UC' : 'DC')
      attempt?.end(st.responseCode === 0 ? { kind: 'reset' } : { kind: 'response', status: st.responseCode, grpcStatus: null })
      st.end()
    })
  }, () => {
    st.flag('UF')
    attempt?.end({ kind: 'connect_failure' })
    closeWith(down, st, 503, 'Service Unavailable', 'upstream connect error or disconnect/reset before headers. reset reason: connection failure')
  })
}

function closeWith (down: RelayEnd, st: RequestState, status: number, text: string, body: string, location?: string): void {
  st.responseCode = status
  st.responseBytes = Buffer.byteLength(body)
  let extra = location === undefined ? '' : `location: ${location}\r\n`
  const v = st.rateLimit
  if (v !== null) extra += `x-ratelimit-limit: ${v.limit}\r\nx-ratelimit-remaining: ${v.remaining}\r\nx-ratelimit-reset: ${Math.max(0, Math.ceil(v.resetSeconds))}\r\n`
  if (down.writable) down.end(`HTTP/1.1 ${status} ${text}\r\nconnection: close\r\n${extra}content-type: text/plain\r\ncontent-length: ${st.responseBytes}\r\n\r\n${body}`)
  st.end()
}

type UpgradeRoute = { readonly attempt: Attempt } | { readonly status: number, readonly text: string, readonly body: string, readonly location?: string }

/**
 * An Upgrade on a service with routing: its route's local answers, or its plan's path
 * rewrite and one attempt's endpoint. A tunnel is not retried, timed or edited: once
 * upgraded it is a byte stream.
 */
function routeUpgrade (st: RequestState, ds: HttpDownstream, req: IncomingMessage): UpgradeRoute {
  const view = new RoutedView(st.method, pathOnly(st.path), st.authority, req.headers, queryOf(st.path), false)
  const r = ds.route!(view)
  switch (r.kind) {
    case 'not_found': st.flag('NR'); return { status: 404, text: 'Not Found', body: 'route not found' }
    case 'redirect': st.routeName = r.rule.name; return { status: r.status, text: 'Redirect', body: '', location: r.location }
    case 'abort': st.routeName = r.rule.name; st.flag(r.flag); return { status: r.httpStatus, text: 'Error', body: 'fault filter abort' }
  }
  const plan = r.plan
  st.routeName = plan.rule?.name ?? null
  if (plan.path !== null) st.path = plan.path
  const a = plan.attempt([])
  if (typeof a === 'string') {
    st.flag(a)
    return { status: 503, text: 'Service Unavailable', body: a === 'UO' ? 'upstream overflow' : 'no healthy upstream' }
  }
  st.attempts = 1
  st.target = a.target
  const local = a.target.local
  if (local !== null) {
    const allowed = local.authorize(view)
    st.localAuthz = local.record.authz ?? null
    if (!allowed) {
      st.flag('RBAC')
      a.end({ kind: 'canceled' })
      return { status: 403, text: 'Forbidden', body: DENIED_BODY }
    }
    if (local.rateLimit !== null && !takeRateLimit(st, local.rateLimit)) {
      a.end({ kind: 'canceled' })
      return { status: 429, text: 'Too Many Requests', body: RATE_LIMITED_BODY }
    }
  }
  return { attempt: a }
}
