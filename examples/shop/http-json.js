'use strict'
// The little HTTP the shop's services share: a JSON server and a JSON client with a
// deadline. Core modules only; nothing here knows about Ferry or the lab.
//
// Like every application in a mesh, the services forward the trace headers of the
// request they are serving to the requests they make for it, so that a trace crosses
// them: the proxy can start and end spans, but only the application knows which
// outgoing call belongs to which incoming request.
const http = require('node:http')
const { AsyncLocalStorage } = require('node:async_hooks')

/** The headers a mesh's tracing reads: W3C trace context, B3 (both forms) and Envoy's request id. */
const TRACE_HEADERS = ['traceparent', 'tracestate', 'x-request-id', 'b3', 'x-b3-traceid', 'x-b3-spanid', 'x-b3-parentspanid', 'x-b3-sampled', 'x-b3-flags']
/** The trace headers of the request being served, for the calls made while serving it. */
const incoming = new AsyncLocalStorage()

function traceHeadersOf (req) {
  const out = {}
  for (const name of TRACE_HEADERS) {
    const value = req.headers[name]
    if (typeof value === 'string') out[name] = value
  }
  return out
}

const UPSTREAM_TIMEOUT_MS = 3000
const MAX_BODY = 1 << 20

/** Calls `method url` with an optional JSON body; resolves to the parsed JSON reply (throws on non-2xx). */
function requestJSON (method, url, body) {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body)
    const req = http.request(url, {
      method,
      // A fresh connection per call (Node 20's default agent keeps them alive), so
      // every call is balanced on its own: the mesh balances connections.
      agent: false,
      timeout: UPSTREAM_TIMEOUT_MS,
      headers: {
        ...(incoming.getStore() ?? {}),
        ...(payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) })
      }
    }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (chunk) => { if (text.length < MAX_BODY) text += chunk })
      res.on('end', () => {
        let json
        try { json = JSON.parse(text) } catch { return reject(new Error(`${method} ${url}: not JSON: ${text.slice(0, 200)}`)) }
        if (res.statusCode < 200 || res.statusCode > 299) return reject(new Error(`${method} ${url}: ${res.statusCode} ${json.error || text}`))
        resolve(json)
      })
    })
    req.on('timeout', () => req.destroy(new Error(`${method} ${url}: no answer in ${UPSTREAM_TIMEOUT_MS} ms`)))
    req.on('error', reject)
    req.end(payload)
  })
}

/** Serves `routes` ({ 'GET /path': async (query, body) => json }) on [::]:port. */
function serveJSON (port, routes) {
  const name = process.env.HOSTNAME || 'unknown'
  const server = http.createServer((req, res) => incoming.run(traceHeadersOf(req), () => {
    const url = new URL(req.url, 'http://x')
    const route = routes[`${req.method} ${url.pathname}`]
    const reply = (status, json) => {
      res.writeHead(status, { 'content-type': 'application/json' })
      res.end(JSON.stringify(json) + '\n')
    }
    if (route === undefined) return reply(404, { error: `no route ${req.method} ${url.pathname}`, served_by: name })
    let text = ''
    req.setEncoding('utf8')
    req.on('data', (chunk) => { if (text.length < MAX_BODY) text += chunk })
    req.on('end', () => {
      let body
      try { body = text === '' ? undefined : JSON.parse(text) } catch { return reply(400, { error: 'body is not JSON' }) }
      Promise.resolve()
        .then(() => route(Object.fromEntries(url.searchParams), body))
        .then((json) => reply(200, json), (err) => {
          console.error(`${req.method} ${url.pathname}: ${err.message}`)
          reply(502, { error: err.message, served_by: name })
        })
    })
  }))
  server.listen(port, '::', () => console.log(`${name} listening on [::]:${port}`))
  return server
}

module.exports = { requestJSON, serveJSON }
