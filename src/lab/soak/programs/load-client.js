'use strict'
// The soak's load (src/lab/soak/load.ts runs it in a client pod with `ferry lab exec`):
// kinds of HTTP/1.1 requests at once, each by a few workers, each worker paced to start
// a request every `intervalMs`, until `seconds` have passed. Modes:
//   keepalive  requests over kept-alive connections (one per worker), reuse counted;
//   newconn    a new connection per request (Connection: close);
//   bulk       POST `bytes` random bytes to an echo and check the echo (length, SHA-256).
// A request fails on an error, a non-2xx status (its body's start is the message), a wrong echo, or no complete answer in
// `timeoutMs`. Every `reportMs` it prints one JSON line of cumulative counts per kind and
// the failures' messages since the last line; the last line has "final": true, printed
// once every request in flight has ended (also on SIGTERM). Plain Node, run from the
// source tree like every lab pod's program. Argument: the configuration as JSON.
const http = require('node:http')
const { createHash, randomBytes } = require('node:crypto')

const config = JSON.parse(process.argv[2])
const started = Date.now()
const deadline = started + config.seconds * 1000
let stopping = false
const counts = {}
let errors = []

function request (kind, agent, body) {
  return new Promise((resolve, reject) => {
    const req = http.request(kind.url, {
      method: body === undefined ? 'GET' : 'POST',
      agent,
      headers: body === undefined ? (agent === false ? { connection: 'close' } : {}) : { 'content-length': body.length, 'content-type': 'application/octet-stream' }
    }, (res) => {
      const hash = createHash('sha256')
      let length = 0
      let head = ''
      res.on('data', (chunk) => {
        length += chunk.length
        hash.update(chunk)
        if (head.length < 300) head += chunk.subarray(0, 300).toString()
      })
      res.on('end', () => resolve({ status: res.statusCode, length, sha256: hash.digest('hex'), reused: req.reusedSocket, head }))
      res.on('error', reject)
    })
    req.setTimeout(config.timeoutMs, () => req.destroy(new Error(`no answer within ${config.timeoutMs} ms`)))
    req.on('error', reject)
    req.end(body)
  })
}

async function worker (kind, agent, body, bodySha256) {
  const c = counts[kind.name]
  let next = Date.now()
  while (!stopping && Date.now() < deadline) {
    try {
      const r = await request(kind, agent, body)
      if (r.status < 200 || r.status > 299) throw new Error(`status ${r.status}: ${r.head.trim().slice(0, 300)}`)
      if (body !== undefined && (r.length !== body.length || r.sha256 !== bodySha256)) throw new Error(`echo of ${body.length} bytes came back as ${r.length} bytes, sha256 ${r.sha256}`)
      c.ok++
      if (r.reused) c.reused++
      c.bytes += r.length + (body === undefined ? 0 : body.length)
    } catch (err) {
      c.failed++
      if (errors.length < 20) errors.push(`${kind.name} ${kind.url}: ${err.message}`)
    }
    next = Math.max(next + kind.intervalMs, Date.now())
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, Math.min(next, deadline) - Date.now())))
  }
}

function report (final) {
  process.stdout.write(JSON.stringify({ t: Date.now() - started, final, counts, errors }) + '\n')
  errors = []
}

async function main () {
  const runs = []
  for (const kind of config.kinds) {
    counts[kind.name] = { ok: 0, failed: 0, reused: 0, bytes: 0 }
    const agent = kind.mode === 'keepalive' ? new http.Agent({ keepAlive: true, maxSockets: kind.workers }) : false
    const body = kind.mode === 'bulk' ? randomBytes(kind.bytes) : undefined
    const sha = body === undefined ? undefined : createHash('sha256').update(body).digest('hex')
    for (let i = 0; i < kind.workers; i++) runs.push(worker(kind, agent, body, sha))
  }
  const timer = setInterval(() => report(false), config.reportMs)
  process.on('SIGTERM', () => { stopping = true })
  await Promise.all(runs)
  clearInterval(timer)
  report(true)
  process.exit(0)
}

main().catch((err) => { console.error(err); process.exit(1) })
