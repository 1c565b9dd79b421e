import type { IncomingMessage } from 'node:http'
import { relay, type RelayEnd } from '../proxy/relay'
import { admitRequest, DENIED_BODY } from './admit'
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
  if (admission !== 'forward') {
    if (admission === 'bad_path') deps.refusals.refused('bad_path')
    const [status, text, body] = admission === 'denied' ? [403, 'Forbidden', DENIED_BODY] : admission === 'bad_path' ? [400, 'Bad Request', 'Bad Request'] : [503, 'Service Unavailable', 'no healthy upstream']
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
      st.end()
    })
  }, () => {
    st.flag('UF')
    closeWith(down, st, 503, 'Service Unavailable', 'upstream connect error or disconnect/reset before headers. reset reason: connection failure')
  })
}

function closeWith (down: RelayEnd, st: RequestState, status: number, text: string, body: string): void {
  st.responseCode = status
  st.responseBytes = Buffer.byteLength(body)
  if (down.writable) down.end(`HTTP/1.1 ${status} ${text}\r\nconnection: close\r\ncontent-type: text/plain\r\ncontent-length: ${st.responseBytes}\r\n\r\n${body}`)
  st.end()
}
