import { Agent, get } from 'node:http'
import { parseArgs } from 'node:util'

// A steady HTTP load, run inside a pod by the lab's drills (src/lab/drills/steady-load.ts):
// GETs of --url at --rate requests per second, one at a time, on keep-alive connections
// replaced every --per-connection requests (so new connections, and new tunnel streams,
// open all along). Bounded by --duration-ms and --max-requests. A request fails on any
// error, a --timeout-ms timeout or a status other than 200. Every --report-every-ms it
// prints one JSON line of running totals, and a last one with "done": true:
//   {"at":EPOCH_MS,"requests":N,"failures":N,"errors":[{"at":EPOCH_MS,"error":"…"}…first 20],"done"?:true}
// It also stops early, with its last line, on SIGTERM, and with --stop-on-stdin-end when
// its standard input closes (the drill that started it went away).

const { values: v } = parseArgs({
  options: {
    url: { type: 'string' },
    rate: { type: 'string', default: '20' },
    'duration-ms': { type: 'string', default: '60000' },
    'max-requests': { type: 'string', default: '100000' },
    'per-connection': { type: 'string', default: '20' },
    'timeout-ms': { type: 'string', default: '5000' },
    'report-every-ms': { type: 'string', default: '1000' },
    'stop-on-stdin-end': { type: 'boolean', default: false }
  }
})
if (v.url === undefined) throw new Error('--url is required')
const url = v.url
const rate = Number(v.rate)
const deadline = Date.now() + Number(v['duration-ms'])
const maxRequests = Number(v['max-requests'])
const perConnection = Number(v['per-connection'])
const timeoutMs = Number(v['timeout-ms'])
const MAX_ERRORS = 20

let agent = new Agent({ keepAlive: true, maxSockets: 1 })
let requests = 0
let failures = 0
let stopping = false
const errors: Array<{ at: number, error: string }> = []

function report (done: boolean): void {
  process.stdout.write(JSON.stringify({ at: Date.now(), requests, failures, errors, ...(done ? { done: true } : {}) }) + '\n')
}

async function one (): Promise<string | null> {
  return await new Promise((resolve) => {
    const req = get(url, { agent, timeout: timeoutMs }, (res) => {
      res.resume()
      res.on('end', () => { resolve(res.statusCode === 200 ? null : `status ${String(res.statusCode)}`) })
      res.on('error', (e: NodeJS.ErrnoException) => { resolve(e.code ?? e.message) })
    })
    req.on('timeout', () => { req.destroy(new Error('timeout')) })
    req.on('error', (e: NodeJS.ErrnoException) => { resolve(e.code ?? e.message) })
  })
}

async function main (): Promise<void> {
  const timer = setInterval(() => { report(false) }, Number(v['report-every-ms']))
  const started = Date.now()
  while (!stopping && Date.now() < deadline && requests < maxRequests) {
    const wait = started + (requests * 1000) / rate - Date.now()
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait))
    const error = await one()
    requests++
    if (error !== null) {
      failures++
      if (errors.length < MAX_ERRORS) errors.push({ at: Date.now(), error })
    }
    if (requests % perConnection === 0) { agent.destroy(); agent = new Agent({ keepAlive: true, maxSockets: 1 }) }
  }
  clearInterval(timer)
  agent.destroy()
  report(true)
}

process.on('SIGTERM', () => { stopping = true })
if (v['stop-on-stdin-end'] === true) {
  process.stdin.on('end', () => { stopping = true })
  process.stdin.resume()
}
main().catch((err: Error) => { process.stderr.write(`load-client: ${err.message}\n`); process.exitCode = 1 })
