'use strict'
// The little HTTP the bookinfo services share: a JSON server that says which pod answered,
// and a JSON client with a deadline that forwards the request id and trace headers of the
// request being served (so a trace crosses the services). Core modules only; nothing
// here knows about Ferry or the lab.
const http = require('node:http')
const { AsyncLocalStorage } = require('node:async_hooks')

const TRACE_HEADERS = ['x-request-id', 'traceparent', 'tracestate', 'b3', 'x-b3-traceid', 'x-b3-spanid', 'x-b3-parentspanid', 'x-b3-sampled']
const UPSTREAM_TIMEOUT_MS = 3000
const incoming = new AsyncLocalStorage()
const POD = process.env.POD_NAME || process.env.HOSTNAME || 'unknown'

/** GET url → { status, body } (body parsed when JSON); never throws: a failed call is { status: 0, error }. */
function getJSON (url) {
  return new Promise((resolve) => {
    // A fresh connection per call: without a route Ferry balances connections, so each call
    // is balanced on its own; with a route it balances requests either way.
    const req = http.get(url, { agent: false, timeout: UPSTREAM_TIMEOUT_MS, headers: incoming.getStore() ?? {} }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (c) => { text += c })
      res.on('end', () => {
        let body = text
        try { body = JSON.parse(text) } catch {}
        resolve({ status: res.statusCode, body })
      })
    })
    req.on('timeout', () => req.destroy(new Error(`no answer within ${UPSTREAM_TIMEOUT_MS} ms`)))
    req.on('error', (err) => resolve({ status: 0, error: err.message }))
  })
}

/** Serves `handler(url) → Promise<{ status, body }>` on [::]:$PORT (default 9080), answers JSON with `x-served-by`. */
function serve (handler) {
  const port = Number(process.env.PORT ?? 9080)
  http.createServer((req, res) => {
    const trace = {}
    for (const name of TRACE_HEADERS) if (typeof req.headers[name] === 'string') trace[name] = req.headers[name]
    req.resume()
    incoming.run(trace, async () => {
      let out
      try { out = await handler(new URL(req.url, 'http://x')) } catch (err) { out = { status: 500, body: { error: err.message } } }
      res.writeHead(out.status, { 'content-type': 'application/json', 'x-served-by': POD }).end(JSON.stringify(out.body) + '\n')
    })
  }).listen(port, '::', () => process.stdout.write(JSON.stringify({ event: 'listening', port, pod: POD }) + '\n'))
}

module.exports = { getJSON, serve, POD }
