import t from 'tap'
import { agentGet } from '../helpers/agent-admin'
import { counter, metrics } from '../helpers/lab'
import { uniqueLabName } from '../helpers/names'
import { jsonFrom, l7LabDown, l7LabUp, L7_LAB_UP_MS, median, runIn } from '../helpers/l7-lab'

// Protocol detection on an L7 port that declares nothing, for real: in the two-node lab of
// the L7 test programs (test/fixtures/apps/l7-lab.yaml) the client pod on node1 reaches,
// on node2, a server-first greeter (it writes "220 … ready" before reading) and
// redis-server (the client speaks first, not HTTP) behind Services of namespace `l7`
// (ferry.dev/l7 enabled, ports undeclared: detect), and the same programs behind Services
// of namespace `l4` (L7 not asked for): the plain L4 path to compare with. Through the
// detect port both must work with no added delay beyond noise — no detection timeout in
// front of the greeting, no extra round trip — and node1 counts each as detected and
// relayed as TCP (ferry_l7_detected_total). HTTP/1.1 on an undeclared port (Service
// http-detect) becomes L7 and is balanced per request. And an L4 service in the same lab
// keeps its kernel shortcuts: the same-node splice and the pod ⇄ proxy hop.

const lab = uniqueLabName('l7det')
/** Far above a healthy path's (tens of ms on a busy machine), far below a detection timeout's (≥ 1 s anywhere). */
const BANNER_BOUND_MS = 200
/** How much slower the detect path's median may be than L4's: noise, not a wait. */
const MEDIAN_SLACK_MS = 50

t.setTimeout(L7_LAB_UP_MS + 300_000)
t.before(async () => { await l7LabUp(lab) })
t.teardown(async () => { await l7LabDown(lab) })

/** node1's (the source's) count of detection outcomes: ferry_l7_detected_total{outcome}. */
const detected = async (outcome: string): Promise<number> => counter(await metrics(lab, 'node1'), 'ferry_l7_detected_total', { outcome })
const summary = (xs: readonly number[]): string => `median ${median(xs).toFixed(1)} ms, max ${Math.max(...xs).toFixed(1)} ms over ${xs.length}`

t.test('the lab: the `l7` Services are L7 detect ports, the `l4` ones are not L7', async (t) => {
  const services = (await agentGet(lab, 'node1', '/debug/config')).body.l7.services
  const svc = (name: string): any => services.find((s: any) => s.service === name)
  t.match(svc('l7/greeter'), { engaged: true, protocol: 'detect' })
  t.match(svc('l7/redis'), { engaged: true, protocol: 'detect' })
  for (const name of ['l4/greeter', 'l4/redis', 'l4/http']) t.match(svc(name), { engaged: false }, `${name}: L4`)
})

t.test('a server-first greeter through the detect port: the greeting comes at once, as through L4', async (t) => {
  const greet = async (host: string): Promise<any> => await jsonFrom(lab, 'l7', 'client', ['node', 'greeter-client.js', '--host', host, '--port', '2525', '--lines', '3', '--timeout-ms', '15000'])
  // Warm both paths first (the tunnel session between the nodes, the programs' caches).
  t.match(await greet('greeter'), { ok: true, banner: '220 greeter ready', echoes: ['echo: line 1', 'echo: line 2', 'echo: line 3'] }, 'L7 detect: banner, then the echoes')
  t.match(await greet('greeter.l4'), { ok: true, banner: '220 greeter-l4 ready' }, 'L4: banner, then the echoes')
  const serverFirst = await detected('server_first')
  const l7: number[] = []
  const l4: number[] = []
  for (let i = 0; i < 6; i++) {
    // Alternated, so the machine's noise hits both alike.
    const a = await greet('greeter')
    const b = await greet('greeter.l4')
    if (!a.ok || !b.ok) throw new Error(`greeter failed: ${JSON.stringify(a)} ${JSON.stringify(b)}`)
    l7.push(a.bannerMs)
    l4.push(b.bannerMs)
  }
  t.comment(`banner after connect: L7 detect ${summary(l7)}; L4 ${summary(l4)}`)
  t.ok(Math.max(...l7) < BANNER_BOUND_MS, `every greeting through the detect port within ${BANNER_BOUND_MS} ms (${l7.join(', ')})`)
  t.ok(median(l7) <= median(l4) + MEDIAN_SLACK_MS, `no added delay: median ${median(l7)} ms vs L4's ${median(l4)} ms`)
  t.ok(await detected('server_first') - serverFirst >= 6, 'node1 detected each greeter connection as server-first (relayed as TCP)')
})

/** Connect, PING, time to +PONG on that new connection (the first bytes are the client's, and not HTTP). */
const FIRST_REPLY = `
const net = require('net')
const s = net.connect(6379, process.argv[1], () => {
  const t0 = performance.now()
  s.write('PING\\r\\n')
  s.once('data', (d) => { console.log(JSON.stringify({ ms: performance.now() - t0, reply: String(d).trim() })); s.end() })
})
s.on('error', (e) => { console.log(JSON.stringify({ error: e.message })); process.exit(1) })
setTimeout(() => { console.log(JSON.stringify({ error: 'no reply in 10 s' })); process.exit(1) }, 10000).unref()
`

/** redis-benchmark's CSV line for PING_MBULK: its latency percentiles, ms. */
async function pingLatency (host: string): Promise<{ p50: number, p99: number, rps: number }> {
  const r = await runIn(lab, 'l7', 'client', ['redis-benchmark', '-h', host, '-p', '6379', '-c', '1', '-n', '500', '-t', 'ping', '--csv'], 60_000)
  if (r.code !== 0) throw new Error(`redis-benchmark -h ${host} exited ${r.code}: ${r.stderr}`)
  const line = r.stdout.split('\n').find((l) => l.startsWith('"PING_MBULK"'))
  if (line === undefined) throw new Error(`no PING_MBULK line: ${r.stdout}`)
  const f = line.split(',').map((x) => Number(x.replace(/"/g, '')))
  return { rps: f[1], p50: f[4], p99: f[6] }
}

t.test('redis through the detect port: commands and replies, with no added delay', async (t) => {
  const cli = async (...args: string[]): Promise<string> => {
    const r = await runIn(lab, 'l7', 'client', ['redis-cli', '-h', 'redis', '-p', '6379', ...args])
    if (r.code !== 0) throw new Error(`redis-cli ${args.join(' ')} exited ${r.code}: ${r.stderr}`)
    return r.stdout.trim()
  }
  const notHttp = await detected('not_http')
  t.equal(await cli('PING'), 'PONG')
  t.equal(await cli('SET', 'greeting', 'hello from node1'), 'OK')
  t.equal(await cli('GET', 'greeting'), 'hello from node1', 'the value set, read back on a new connection')
  const big = await runIn(lab, 'l7', 'client', ['sh', '-c', 'head -c 4194304 /dev/zero | tr "\\0" x | redis-cli -h redis -x SET big && redis-cli -h redis STRLEN big'])
  t.equal(big.code, 0, big.stderr)
  t.equal(big.stdout.trim().split('\n').pop(), '4194304', 'a 4 MiB value stored whole')

  // A new connection's first reply, alternated between the detect port and L4.
  const l7: number[] = []
  const l4: number[] = []
  for (let i = 0; i < 6; i++) {
    for (const [host, into] of [['redis', l7], ['redis.l4', l4]] as const) {
      const out = await jsonFrom(lab, 'l7', 'client', ['node', '-e', FIRST_REPLY, host])
      if (out.reply !== '+PONG') throw new Error(`${host}: ${JSON.stringify(out)}`)
      into.push(out.ms)
    }
  }
  t.comment(`first reply on a new connection: L7 detect ${summary(l7)}; L4 ${summary(l4)}`)
  t.ok(Math.max(...l7) < BANNER_BOUND_MS, `every first reply through the detect port within ${BANNER_BOUND_MS} ms (${l7.map((x) => x.toFixed(1)).join(', ')})`)
  t.ok(median(l7) <= median(l4) + MEDIAN_SLACK_MS, 'no added delay on a new connection')

  // Then request after request on one connection (redis-benchmark, one client, 500 PINGs).
  const runs = { l7: [] as number[], l4: [] as number[] }
  for (let i = 0; i < 2; i++) {
    runs.l7.push((await pingLatency('redis')).p50)
    runs.l4.push((await pingLatency('redis.l4')).p50)
  }
  t.comment(`PING p50 on one connection: L7 detect ${runs.l7.join(', ')} ms; L4 ${runs.l4.join(', ')} ms`)
  t.ok(median(runs.l7) <= median(runs.l4) * 1.5 + 0.5, `per request, the detect port costs what L4 does (p50 ${median(runs.l7)} vs ${median(runs.l4)} ms)`)
  t.ok(await detected('not_http') - notHttp >= 3 + 2 + 6, 'node1 detected each redis connection as not HTTP (relayed as TCP)')
})

t.test('HTTP/1.1 on a detect port becomes L7: keep-alive requests on one connection balanced over both nodes, whichever endpoint the connection starts on', async (t) => {
  // Service http-detect: the HTTP/1.1 echo pods of both nodes (http-a on node1, the
  // client's, and http-b on node2), its port undeclared. Four client connections of three
  // requests each: the first request of each goes where routing sent the connection (the
  // Service's round robin), each later one picks again from that same round robin — three
  // picks a connection, so the connections start on either node in turn: on the same
  // node (the destination's part done here) and across. Each must be detected and balanced.
  const http1 = await detected('http1')
  let crossFirst = 0
  let sameFirst = 0
  for (let c = 0; c < 4; c++) {
    const args = ['curl', '-sS', '--max-time', '30', '-w', '%{http_code} %{num_connects} %header{x-served-by}\\n']
    for (let i = 0; i < 3; i++) args.push('-o', '/dev/null', `http://http-detect:8080/c${c}-${i}`)
    const r = await runIn(lab, 'l7', 'client', args)
    t.equal(r.code, 0, r.stderr)
    const lines = r.stdout.trim().split('\n').map((l) => l.split(' '))
    const seen = lines.map(([status, connects, who]) => `${status} ${connects} ${who}`).join('; ')
    t.ok(lines.length === 3 && lines.every(([status]) => status === '200'), `connection ${c + 1}: three answers 200 (${seen})`)
    t.equal(lines.reduce((n, [, connects]) => n + Number(connects), 0), 1, `connection ${c + 1}: one connection`)
    if (lines[0]?.[2] === 'http-a') sameFirst++; else crossFirst++
    t.same([...new Set(lines.map(([, , who]) => who))].sort(), ['http-a', 'http-b'], `connection ${c + 1} (first answer from ${lines[0]?.[2]}): balanced over both nodes`)
  }
  t.ok(crossFirst >= 1 && sameFirst >= 1, `connections started on both nodes (round robin): ${sameFirst} on the same node, ${crossFirst} across`)
  t.ok(await detected('http1') - http1 >= 4, 'node1 detected HTTP/1.1 on each connection, wherever it started')
})

/**
 * A plain Node keep-alive client in the client pod: 50 GETs on one connection to `url`,
 * then `ss` from inside the pod: how many bytes its socket moved by TCP (a spliced
 * connection moves only what preceded the splice by TCP).
 */
const SPLICE_PROBE = `
const http = require('http'), { execFileSync } = require('child_process')
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
let socket = null
const get = () => new Promise((resolve, reject) => {
  http.get(process.argv[1], { agent }, (res) => { socket = res.socket; let b = ''; res.on('data', (d) => { b += d }); res.on('end', () => resolve(b)) }).on('error', reject)
})
;(async () => {
  const bodies = []
  for (let i = 0; i < 50; i++) bodies.push(await get())
  const ss = execFileSync('ss', ['-tinH', 'state', 'connected', '( sport = :' + socket.localPort + ' )']).toString()
  const tcpIn = Number((/bytes_received:(\\d+)/.exec(ss) || [0, 0])[1])
  const tcpOut = Math.max(0, Number((/bytes_acked:(\\d+)/.exec(ss) || [0, 1])[1]) - 1)
  const read = socket.bytesRead, written = socket.bytesWritten
  agent.destroy()
  console.log(JSON.stringify({ read, written, tcpIn, tcpOut, server: JSON.parse(bodies[0]).server }))
})().catch((e) => { console.log(JSON.stringify({ error: String(e) })) })
`

t.test('an L4 service in the same lab keeps its shortcuts: the same-node splice and the hop', async (t) => {
  const shortcuts = async (node: string, kind: string): Promise<number> => counter(await metrics(lab, node), 'ferry_sockmap_shortcuts_total', { kind, result: 'ok' })
  const spliceBefore = await shortcuts('node1', 'splice')
  const out = await jsonFrom(lab, 'l7', 'client', ['node', '-e', SPLICE_PROBE, 'http://http.l4:8080/'])
  t.notOk(out.error, out.error)
  t.equal(out.server, 'http-l4', 'answered by the L4 pod on the same node')
  t.ok(out.tcpIn < out.read / 4, `responses mostly skipped TCP (${String(out.tcpIn)} of ${String(out.read)} bytes by TCP)`)
  t.ok(out.tcpOut < out.written / 4, `requests mostly skipped TCP (${String(out.tcpOut)} of ${String(out.written)} bytes by TCP)`)
  t.ok(await shortcuts('node1', 'splice') > spliceBefore, 'node1 counted the splice')

  // Cross-node L4 (redis in namespace l4 on node2): the client's hop to node1's proxy joins
  // the sockmap once the connection is busy.
  const hopBefore = await shortcuts('node1', 'hop')
  await pingLatency('redis.l4')
  t.ok(await shortcuts('node1', 'hop') > hopBefore, 'node1 joined the L4 connection\'s hop')
})
