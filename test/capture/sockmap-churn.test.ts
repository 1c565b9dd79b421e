import t, { type Test } from 'tap'
import { createHash } from 'node:crypto'
import type { Socket } from 'node:net'
import { joinHop } from '../../src/worker/hop-shortcut'
import { Capture } from '../../src/capture'
import { PORTS } from '../../src/config/env'
import { openNetns } from '../../src/native'
import { podSpec, safely, serveFd, silentLog, uniquePinRoot, type AgentSide } from './helpers/capture-fixture'
import { makePodEnv } from './helpers/pod-env'

// Thousands of short connections through the sockmap shortcut, every byte checked.
// Each connection is a real pod process's, captured onto the test's outbound listener
// (the test plays the proxy and joins every hop at accept, as the worker does). The
// app sends rounds of random bytes of varied sizes; the proxy answers each byte XOR
// 0x5a, so an echo that never left the app (a redirect to the wrong socket) cannot pass
// for the answer; the app compares every answer byte with what it sent, and each side
// hashes each connection's requests (SHA-256, folded by XOR over the connections): the
// proxy must have read exactly what each connection sent. sk_msg's own counters (ferry_sockmap_stats) show that the shortcut carried
// bytes both ways: the test fails if it silently did not.

const CONNECTIONS = 3000
const CONCURRENCY = 8
const ROUNDS = 3
/** Every round's size is random: mostly up to 8 KiB, one in 50 up to 64 KiB. */
const SMALL = 8 * 1024
const LARGE = 64 * 1024
/** A bound against a hang, not a speed target: typically 3–15 s on the shared 2-core machine. */
const APP_BUDGET_MS = 60_000
t.setTimeout(APP_BUDGET_MS * 2 + 30_000)

/** Connections in a row from one local port (loopback TIME_WAIT reuse: net.ipv4.tcp_tw_reuse = 2, the default). */
const REUSED_TUPLE_CONNECTIONS = 300

/** The app: `connections` connections, `concurrency` at a time (from `localPort` if given), each ROUNDS request/answer rounds; prints its tally. */
function churningApp (host: string, port: number, { connections = CONNECTIONS, concurrency = CONCURRENCY, localPort }: { connections?: number, concurrency?: number, localPort?: number } = {}): string[] {
  const src = `
const net = require('net'), crypto = require('crypto')
let started = 0, done = 0, failed = 0, bad = 0, bytesSent = 0, bytesChecked = 0, firstRoundBytes = 0
const errors = {}, digest = Buffer.alloc(32)
function size () { return 1 + crypto.randomInt(Math.random() < 0.02 ? ${LARGE} : ${SMALL}) }
function one () {
  if (started === ${connections}) return
  started++
  const s = net.connect({ host: ${JSON.stringify(host)}, port: ${port}${localPort === undefined ? '' : `, localPort: ${localPort}`} })
  let round = 0, sent = null, got = []
  let gotLen = 0
  const hash = crypto.createHash('sha256')
  const send = () => { sent = crypto.randomBytes(size()); got = []; gotLen = 0; hash.update(sent); bytesSent += sent.length; if (round === 0) firstRoundBytes += sent.length; s.write(sent) }
  s.on('connect', send)
  s.on('data', (d) => {
    got.push(d); gotLen += d.length
    if (gotLen < sent.length) return
    const answer = Buffer.concat(got)
    let ok = answer.length === sent.length
    for (let i = 0; ok && i < sent.length; i++) if (answer[i] !== (sent[i] ^ 0x5a)) ok = false
    if (!ok) bad++
    bytesChecked += sent.length
    if (++round === ${ROUNDS} || !ok) return s.end()
    send()
  })
  s.on('end', () => { s.destroy(); if (round === ${ROUNDS}) { done++; const d = hash.digest(); for (let i = 0; i < 32; i++) digest[i] ^= d[i] } else failed++; next() })
  s.on('error', (e) => { errors[e.code] = (errors[e.code] || 0) + 1; failed++; s.destroy(); next() })
}
function next () {
  if (done + failed === ${connections}) { report(); process.exit(0) }
  one()
}
function report (timeout) { console.log(JSON.stringify({ done, failed, bad, bytesSent, bytesChecked, firstRoundBytes, digest: digest.toString('hex'), errors, timeout: !!timeout })) }
for (let i = 0; i < ${concurrency}; i++) one()
setTimeout(() => { report(true); process.exit(0) }, ${APP_BUDGET_MS})
`
  return [process.execPath, '-e', src]
}

t.test('the sockmap shortcut under connection churn', async (t) => {
  const env = makePodEnv(t)
  const capture = await Capture.open({ pinRoot: uniquePinRoot(t), log: silentLog })
  t.teardown(safely(() => capture.close()))
  t.equal(capture.sockmapStatus().enabled, true, 'the shortcut is on (this kernel has every field sk_msg reads)')
  const netns = openNetns(env.podNsPath)
  t.teardown(() => netns.close())

  // The proxy: joins every hop at accept, answers each byte XOR 0x5a.
  const proxy = { joined: 0, notJoined: 0, bytes: 0, digest: Buffer.alloc(32) }
  const outbound = await serveFd(t, netns.listen({ family: 4, address: '127.0.0.1', port: PORTS.outbound, backlog: 1024 }), (s: Socket) => {
    s.on('error', () => {})
    if (joinHop(capture, netns.cookie, s)) proxy.joined++
    else proxy.notJoined++
    const hash = createHash('sha256')
    s.on('data', (d: Buffer) => {
      proxy.bytes += d.length
      hash.update(d)
      for (let i = 0; i < d.length; i++) d[i] ^= 0x5a
      s.write(d)
    })
    s.on('end', () => {
      const d = hash.digest()
      for (let i = 0; i < 32; i++) proxy.digest[i] ^= d[i]
      s.end()
    })
  })
  const inboundFds = {
    v4: netns.listen({ family: 4, address: '127.0.0.1', port: PORTS.inbound }),
    v6: netns.listen({ family: 6, address: '::1', port: PORTS.inbound })
  }
  const inbound = [await serveFd(t, inboundFds.v4, (s) => s.destroy()), await serveFd(t, inboundFds.v6, (s) => s.destroy())]
  const agent: AgentSide = { netns, seen: [], outbound: [outbound], inbound, inboundFds }
  capture.enrollPod(podSpec(env, agent))
  t.teardown(safely(() => capture.unenrollPod(env.id)))

  /** Runs the app; checks every connection and byte; returns the bytes the shortcut carried each way. */
  async function churn (t: Test, connections: number, opts: { concurrency?: number, localPort?: number } = {}): Promise<{ out: any, fromPod: number, toPod: number }> {
    proxy.joined = 0
    proxy.notJoined = 0
    proxy.bytes = 0
    proxy.digest.fill(0)
    const before = capture.sockmapStats()
    const r = await env.runInPod(churningApp(env.peerIP4, 8080, { connections, ...opts }), { timeoutMs: APP_BUDGET_MS + 5000 })
    const after = capture.sockmapStats()
    t.equal(r.code, 0, r.stderr)
    const out = JSON.parse(r.stdout)
    t.notOk(out.timeout, `the app finished within ${APP_BUDGET_MS / 1000} s`)
    t.equal(out.done, connections, `every connection completed its ${ROUNDS} rounds (errors: ${JSON.stringify(out.errors)})`)
    t.equal(out.failed, 0)
    t.equal(out.bad, 0, 'every answer was the request, byte for byte')
    t.equal(out.bytesChecked, out.bytesSent, `${out.bytesChecked} bytes checked each way`)
    t.equal(proxy.bytes, out.bytesSent, 'the proxy received every byte the app sent')
    t.equal(proxy.digest.toString('hex'), out.digest, 'and exactly what each connection sent (SHA-256 of each connection\'s requests)')
    t.equal(proxy.joined, connections, `every hop joined (${proxy.notJoined} did not)`)
    const fromPod = Number(after.fromPodBytes - before.fromPodBytes)
    const toPod = Number(after.toPodBytes - before.toPodBytes)
    t.comment(`shortcut: app -> proxy ${fromPod} B in ${after.fromPodMsgs - before.fromPodMsgs} msgs, proxy -> app ${toPod} B in ${after.toPodMsgs - before.toPodMsgs} msgs; ${after.tcpMsgs - before.tcpMsgs} msgs by TCP; ${out.bytesSent} B each way`)
    return { out, fromPod, toPod }
  }

  t.test('thousands of short connections: every byte arrives, both ways by the shortcut', async (t) => {
    const { out, fromPod, toPod } = await churn(t, CONNECTIONS)
    // Each connection's first request goes by TCP (the proxy's end is published when it
    // first sends); its answers, and the later requests, may take the shortcut. The
    // order and room rules send some by TCP on a busy machine: the bound is loose, the
    // point is that the shortcut carried a large share of the bytes.
    t.ok(toPod >= out.bytesSent / 4, `proxy -> app: ${toPod} of ${out.bytesSent} bytes by the shortcut`)
    t.ok(fromPod >= (out.bytesSent - out.firstRoundBytes) / 4, `app -> proxy: ${fromPod} of ${out.bytesSent - out.firstRoundBytes} bytes after the first round by the shortcut`)
  })

  t.test('one tuple reused by connection after connection: an earlier socket\'s entry is never trusted', async (t) => {
    // Every connection is 127.0.0.1:PORT -> 127.0.0.1:15001 in the same netns: the same
    // keys in ferry_socks and ferry_sock_peers, whose entries for the proxy's end still
    // name the previous connection's socket (freed, its memory likely reused by the
    // next) until the new one first sends.
    const { out, fromPod, toPod } = await churn(t, REUSED_TUPLE_CONNECTIONS, { concurrency: 1, localPort: 20000 + Math.floor(Math.random() * 10000) })
    t.ok(toPod > 0 && fromPod > 0, `the shortcut carried bytes both ways (${toPod}, ${fromPod} of ${out.bytesSent})`)
  })
})
