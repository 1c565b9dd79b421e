import { spawn } from 'node:child_process'
import { once } from 'node:events'
import http from 'node:http'
import { createInterface } from 'node:readline'
import t from 'tap'
import { PeakEwmaBalancer } from '../../src/balancer'
import type { Teardown } from '../helpers/http-harness'

// P2C over peak-EWMA against real servers on loopback: three HTTP servers, one of them
// answering 50 ms later than the others; concurrent callers pick each request's server
// through the balancer, time it on the balancer's clock and end it when the response
// has been read.

interface Server { readonly id: string, readonly port: number }

// The servers run in a process of their own, so that their answers do not queue behind
// the callers' work on one event loop: each prints its port, answers every request after
// its delay.
const SERVERS = `
const http = require('node:http')
const delays = JSON.parse(process.argv[1])
let ports = []
for (const d of delays) {
  const s = http.createServer((req, res) => { req.resume(); d > 0 ? setTimeout(() => res.end('ok'), d) : res.end('ok') })
  s.listen(0, '127.0.0.1', () => { ports.push([d, s.address().port]); if (ports.length === delays.length) console.log(JSON.stringify(delays.map((x, i) => ports.find((p) => p[0] === x && !p.used && (p.used = true))[1]))) })
}
`

async function startServers (t: Teardown, delays: number[]): Promise<Server[]> {
  const child = spawn(process.execPath, ['-e', SERVERS, JSON.stringify(delays)], { stdio: ['ignore', 'pipe', 'inherit'] })
  t.teardown(() => { child.kill('SIGKILL') })
  const [line] = await once(createInterface({ input: child.stdout }), 'line') as [string]
  return (JSON.parse(line) as number[]).map((port) => ({ id: `127.0.0.1|${port}`, port }))
}

function get (agent: http.Agent, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/', agent }, (res) => {
      res.resume()
      res.on('end', () => resolve(res.statusCode ?? 0))
      res.on('error', reject)
    })
    req.on('error', reject)
  })
}

t.test('the server 50 ms slower than the other two gets < 10 % of requests after warm-up', async (t) => {
  const servers = await startServers(t, [0, 0, 50])
  const slow = servers[2].id
  const TOTAL = 1_200
  const WARMUP = 200
  const CALLERS = 4
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 })
  t.teardown(() => agent.destroy())
  // Open the keep-alive connections first (outside the balancer): a connection's setup
  // is not the server's latency, and a peak-sensitive estimate would remember it.
  await Promise.all(servers.flatMap((s) => Array.from({ length: CALLERS }, async () => await get(agent, s.port))))
  const b = new PeakEwmaBalancer<Server>()
  b.update([...servers].sort((x, y) => x.id < y.id ? -1 : 1))
  const input = { eligible: () => true, hash: null }
  let sent = 0
  let afterWarmup = 0
  let toSlow = 0
  let failed = 0
  const caller = async (): Promise<void> => {
    while (sent < TOTAL) {
      const n = sent++
      const s = b.pick(input)!
      const placed = b.place(s, performance.now())
      let status = 0
      try { status = await get(agent, s.port) } catch { failed++ }
      placed.end(performance.now(), status !== 200)
      if (n >= WARMUP) { afterWarmup++; if (s.id === slow) toSlow++ }
    }
  }
  await Promise.all(Array.from({ length: CALLERS }, caller))
  t.equal(failed, 0, 'every request answered')
  const share = toSlow / afterWarmup
  const view = b.describe().map((d) => `${d.id === slow ? 'slow' : 'fast'} ${d.ewmaMs?.toFixed(1)} ms`).join(', ')
  t.ok(share < 0.10, `slow server: ${toSlow} of ${afterWarmup} requests (${(share * 100).toFixed(1)} %); estimates: ${view}`)
  t.ok(b.describe().every((d) => d.pending === 0), 'nothing left pending')
  const slowEwma = b.describe().find((d) => d.id === slow)!.ewmaMs!
  t.ok(slowEwma > 20, `the slow server's estimate reflects its latency (${slowEwma.toFixed(1)} ms)`)
})
