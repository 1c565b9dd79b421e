'use strict'
// The echo server of Ferry's Gateway API mesh conformance lab, answering as Gateway API's
// conformance echo server does, so that the suite's expectations read the same answers:
//   HTTP/1.1 on $HTTP_PORT (default 3000):
//     GET /health          200 "OK"
//     ANY /status/NNN      status NNN, empty body
//     anything else        200, JSON {path (the request target as sent), host, method,
//                          proto ("HTTP/1.1"), headers (name → values, names in Go's
//                          canonical form, Host not among them, as Go's server shows
//                          them), httpPort, namespace, ingress, service, pod}; each
//                          `X-Echo-Set-Header: Name:value,Name2:value2` request header
//                          becomes response headers
//   gRPC on $GRPC_PORT (default 7070, 0: off): gateway_api_conformance.echo_basic.grpcecho.
//     GrpcEcho (grpcecho.proto): Echo and EchoTwo answer the call's assertions (method,
//     metadata, authority, context); EchoThree answers UNIMPLEMENTED
//   TCP on $TCP_PORT (default 9090, 0: off): the bytes back
// The context comes from NAMESPACE, INGRESS_NAME, SERVICE_NAME and POD_NAME. Prints
// {"event":"listening","protocol":…,"port":N} per listener.
//   HTTP_PORT=8080 POD_NAME=echo-v1-a node test/conformance/apps/echo-server.js
const http = require('node:http')
const net = require('node:net')
const { join } = require('node:path')
const grpc = require('@grpc/grpc-js')
const protoLoader = require('@grpc/proto-loader')

const env = process.env
const httpPort = env.HTTP_PORT ?? '3000'
const grpcPort = Number(env.GRPC_PORT ?? 7070)
const tcpPort = Number(env.TCP_PORT ?? 9090)
const context = { namespace: env.NAMESPACE ?? '', ingress: env.INGRESS_NAME ?? '', service: env.SERVICE_NAME ?? '', pod: env.POD_NAME ?? '' }
const say = (o) => process.stdout.write(JSON.stringify(o) + '\n')

/** Go's textproto.CanonicalMIMEHeaderKey: "x-header-set" → "X-Header-Set". */
function canonical (name) {
  if (!/^[A-Za-z0-9-]+$/.test(name)) return name
  return name.toLowerCase().replace(/(^|-)([a-z])/g, (_, dash, c) => dash + c.toUpperCase())
}

/** Request headers as Go's server hands them to a handler: one entry per field line, Host taken out. */
function goHeaders (rawHeaders) {
  const out = {}
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = canonical(rawHeaders[i])
    if (name === 'Host') continue
    ;(out[name] ??= []).push(rawHeaders[i + 1])
  }
  return out
}

/** Response headers asked for with X-Echo-Set-Header (values of one name joined with ","). */
function echoSetHeaders (values) {
  const out = {}
  for (const list of values ?? []) {
    for (const kv of list.split(',')) {
      const at = kv.trim().indexOf(':')
      const name = at < 0 ? kv.trim() : kv.trim().slice(0, at)
      const value = at < 0 ? '' : kv.trim().slice(at + 1)
      if (name === '') continue
      out[name] = out[name] === undefined ? value : `${out[name]},${value.trim()}`
    }
  }
  return out
}

function onRequest (req, res) {
  req.on('error', () => {})
  res.on('error', () => {})
  req.resume()
  const pathname = (req.url ?? '/').split('?')[0]
  if (pathname === '/health') { res.writeHead(200).end('OK'); return }
  const status = /^\/status\/(\d\d\d)$/.exec(req.url ?? '')
  if (pathname.startsWith('/status/')) { res.writeHead(status === null ? 400 : Number(status[1])).end(); return }
  const headers = goHeaders(req.rawHeaders)
  const body = JSON.stringify({
    path: req.url,
    host: req.headers.host ?? '',
    method: req.method,
    proto: `HTTP/${req.httpVersion}`,
    headers,
    httpPort,
    ...context
  }, null, ' ')
  res.writeHead(200, { ...echoSetHeaders(req.headersDistinct['x-echo-set-header']), 'content-type': 'application/json', 'x-content-type-options': 'nosniff' })
  res.end(body)
}

http.createServer(onRequest).listen(Number(httpPort), '::', () => say({ event: 'listening', protocol: 'http', port: Number(httpPort) }))

if (grpcPort > 0) {
  const def = protoLoader.loadSync(join(__dirname, 'grpcecho.proto'), { keepCase: false, defaults: true })
  const { GrpcEcho } = grpc.loadPackageDefinition(def).gateway_api_conformance.echo_basic.grpcecho
  const answer = (call, cb) => {
    const headers = []
    for (const [key, values] of Object.entries(call.metadata.toJSON())) {
      if (key.endsWith('-bin')) continue
      for (const value of values) headers.push({ key, value: String(value) })
    }
    cb(null, { assertions: { fullyQualifiedMethod: call.getPath(), headers, authority: call.getHost(), context: { namespace: context.namespace, ingress: context.ingress, serviceName: context.service, pod: context.pod } }, request: {} })
  }
  const server = new grpc.Server()
  server.addService(GrpcEcho.service, {
    Echo: answer,
    EchoTwo: answer,
    EchoThree: (call, cb) => cb({ code: grpc.status.UNIMPLEMENTED, details: 'EchoThree is not implemented' })
  })
  server.bindAsync(`[::]:${grpcPort}`, grpc.ServerCredentials.createInsecure(), (err, port) => {
    if (err != null) { say({ event: 'error', protocol: 'grpc', message: err.message }); process.exit(1) }
    say({ event: 'listening', protocol: 'grpc', port })
  })
}

if (tcpPort > 0) {
  net.createServer((s) => { s.on('error', () => {}); s.pipe(s) }).listen(tcpPort, '::', () => say({ event: 'listening', protocol: 'tcp', port: tcpPort }))
}
