'use strict'
// The requesting side of Ferry's Gateway API mesh conformance lab, run inside a pod (as
// the conformance suite execs its client inside an echo pod). It takes a JSON file of
// requests and prints one JSON line per answer, in order:
//   [{ "protocol": "http" | "grpc", "host": "echo" | "echo:7070" | "10.0.0.5:8080",
//      "path": "/v2?x=1", "method": "GET", "headers": { "Name": "value" }, "count": 3 }]
//   → {"i":0,"n":0,"code":200,"headers":{…response…},"body":{…echo JSON…}}
//     {"i":0,"n":1,"error":"ECONNREFUSED …"}
// `count` sends the request that many times (one line each). A `host` without a port
// means port 80 for HTTP, as the suite's client does; a `Host` header overrides the
// Host the request carries, not where it connects. Redirects are never followed. For
// gRPC, `path` is the method (default /gateway_api_conformance.echo_basic.grpcecho.
// GrpcEcho/Echo), `headers` are metadata, and `code` is 200 for OK (the suite maps OK to
// 200) with the gRPC status in `grpcCode`; `body` is the call's assertions.
//   node apps/echo-client.js requests.json
const http = require('node:http')
const { readFileSync } = require('node:fs')
const { join } = require('node:path')
const grpc = require('@grpc/grpc-js')
const protoLoader = require('@grpc/proto-loader')

const TIMEOUT_MS = 5000
const DEFAULT_GRPC_METHOD = '/gateway_api_conformance.echo_basic.grpcecho.GrpcEcho/Echo'
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
const say = (o) => process.stdout.write(JSON.stringify(o) + '\n')

/** host[:port] → where to connect; IPv6 literals in brackets. */
function target (host, defaultPort) {
  const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(host) ?? /^([^:]+)(?::(\d+))?$/.exec(host)
  if (m === null) throw new Error(`bad host ${host}`)
  return { hostname: m[1], port: Number(m[2] ?? defaultPort) }
}

function httpOnce (r) {
  const { hostname, port } = target(r.host, 80)
  const headers = { ...(r.headers ?? {}) }
  return new Promise((resolve) => {
    const req = http.request({ agent, hostname, port, path: r.path || '/', method: r.method || 'GET', headers, timeout: TIMEOUT_MS }, (res) => {
      const chunks = []
      res.on('data', (c) => chunks.push(c))
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8')
        let body = text
        try { body = JSON.parse(text) } catch {}
        resolve({ code: res.statusCode, headers: res.headersDistinct, body })
      })
      res.on('error', (err) => resolve({ error: err.message }))
    })
    req.on('timeout', () => req.destroy(new Error(`no answer within ${TIMEOUT_MS} ms`)))
    req.on('error', (err) => resolve({ error: `${err.code ?? ''} ${err.message}`.trim() }))
    req.end()
  })
}

let grpcDef = null
const grpcClients = new Map()

function grpcOnce (r) {
  grpcDef ??= grpc.loadPackageDefinition(protoLoader.loadSync(join(__dirname, 'grpcecho.proto'), { keepCase: false, defaults: true })).gateway_api_conformance.echo_basic.grpcecho
  const { hostname, port } = target(r.host, 80)
  const address = `${hostname.includes(':') ? `[${hostname}]` : hostname}:${port}`
  let client = grpcClients.get(address)
  if (client === undefined) {
    client = new grpcDef.GrpcEcho(address, grpc.credentials.createInsecure())
    grpcClients.set(address, client)
  }
  const method = (r.path || DEFAULT_GRPC_METHOD).split('/').pop()
  const metadata = new grpc.Metadata()
  for (const [k, v] of Object.entries(r.headers ?? {})) metadata.add(k.toLowerCase(), v)
  return new Promise((resolve) => {
    client[method]({}, metadata, { deadline: Date.now() + TIMEOUT_MS }, (err, reply) => {
      if (err != null) resolve({ code: err.code, grpcCode: err.code, error: err.details ?? err.message })
      else resolve({ code: 200, grpcCode: 0, body: reply.assertions })
    })
  })
}

async function main () {
  const requests = JSON.parse(readFileSync(process.argv[2], 'utf8'))
  for (const [i, r] of requests.entries()) {
    for (let n = 0; n < (r.count ?? 1); n++) {
      const answer = (r.protocol ?? 'http') === 'grpc' ? await grpcOnce(r) : await httpOnce(r)
      say({ i, n, ...answer })
    }
  }
  agent.destroy()
  for (const c of grpcClients.values()) c.close()
}

main().catch((err) => { say({ error: err.message }); process.exit(1) })
