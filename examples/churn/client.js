'use strict'
// A surviving pod's traffic during a churn run: CONNECTIONS keep-alive connections to
// URL, each sending one request after another (PAUSE_MS apart) until stdin closes or a
// line arrives on it, MAX_SECONDS pass or MAX_REQUESTS are sent. A connection made after
// the first CONNECTIONS, a request that errs or answers other than 200, and a connection
// that closes while the run goes on are failures. Prints one JSON line: its counts.
const http = require('node:http')

const url = new URL(process.env.URL || 'http://backend:8080/')
const connections = Number(process.env.CONNECTIONS || 4)
const pauseMs = Number(process.env.PAUSE_MS || 100)
const maxSeconds = Number(process.env.MAX_SECONDS || 600)
const maxRequests = Number(process.env.MAX_REQUESTS || 1_000_000)
const timeoutMs = Number(process.env.TIMEOUT_MS || 10_000)

const agent = new http.Agent({ keepAlive: true, maxSockets: connections, maxFreeSockets: connections, timeout: 0 })
const sockets = new Set()
const report = { requests: 0, ok: 0, failed: 0, errors: {}, connections: 0, connectionsClosed: 0, servedBy: {}, seconds: 0 }
let stopping = false
const started = Date.now()

function fail (why) {
  report.failed++
  report.errors[why] = (report.errors[why] || 0) + 1
}

function request () {
  return new Promise((resolve) => {
    report.requests++
    const req = http.get(url, { agent, timeout: timeoutMs }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c) => { body += c })
      res.on('end', () => {
        if (res.statusCode === 200) {
          report.ok++
          const by = body.trim()
          report.servedBy[by] = (report.servedBy[by] || 0) + 1
        } else {
          fail(`status ${res.statusCode}`)
        }
        resolve()
      })
      res.on('error', (e) => { fail(e.code || e.message); resolve() })
    })
    req.on('socket', (s) => {
      if (sockets.has(s)) return
      sockets.add(s)
      report.connections++
      if (report.connections > connections) fail('new connection')
      s.on('close', () => {
        sockets.delete(s)
        if (!stopping) { report.connectionsClosed++; fail('connection closed') }
      })
    })
    req.on('timeout', () => { req.destroy(new Error('timeout')) })
    req.on('error', (e) => { fail(e.code || e.message); resolve() })
  })
}

async function loop () {
  while (!stopping && report.requests < maxRequests && Date.now() - started < maxSeconds * 1000) {
    await request()
    await new Promise((resolve) => setTimeout(resolve, pauseMs))
  }
}

function finish () {
  stopping = true
}

process.stdin.on('data', finish)
process.stdin.on('end', finish)
process.stdin.on('error', finish)
Promise.all(Array.from({ length: connections }, loop)).then(() => {
  stopping = true
  report.seconds = (Date.now() - started) / 1000
  process.stdout.write(JSON.stringify(report) + '\n')
  agent.destroy()
  process.exit(0)
})
