import t from 'tap'
import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Server, Socket } from 'node:net'
import { joinHop } from '../../src/worker/hop-shortcut'
import { Capture } from '../../src/capture'
import { PORTS } from '../../src/config/env'
import { REPO_ROOT, openNetns } from '../../src/native'
import { podSpec, safely, serveFd, silentLog, uniquePinRoot, type AgentSide } from './helpers/capture-fixture'
import { makePodEnv } from './helpers/pod-env'

// The sockmap shortcut of the plaintext pod <-> proxy hop on the real kernel
// (bpf/sockops.bpf.c adds the app's end, joinHop the proxy's, bpf/sk_msg.bpf.c passes
// bytes between them). The app is a real process in the pod's cgroup and netns that
// connects somewhere, is captured onto the test's outbound listener, streams a
// pattern in many writes and checks what comes back. The test plays the proxy: it
// echoes, and joins the shortcut only *after* the app's first bytes sit unread in
// its TCP queue, the case where a careless redirect would overtake them.

const MiB = 1024 * 1024

/** The app: writes `total` bytes in writes of varying size, reads the echo, prints both hashes and what `ss` cannot see. */
function streamingApp (host: string, port: number, total: number): string[] {
  const src = `
const net = require('net'), crypto = require('crypto')
const s = net.connect({ host: ${JSON.stringify(host)}, port: ${port} })
const sent = crypto.createHash('sha256'), got = crypto.createHash('sha256')
let written = 0, received = 0, i = 0
function pump () {
  while (written < ${total}) {
    const n = Math.min(${total} - written, 1 + ((i * 7919) % 65000))
    const chunk = Buffer.alloc(n, i++ % 251)
    sent.update(chunk)
    written += n
    if (!s.write(chunk)) return s.once('drain', pump)
  }
  s.end()
}
s.on('connect', pump)
s.on('data', (d) => { got.update(d); received += d.length })
s.on('end', () => { console.log(JSON.stringify({ sent: sent.digest('hex'), got: got.digest('hex'), written, received })); process.exit(0) })
s.on('error', (e) => { console.log(JSON.stringify({ error: e.code })); process.exit(0) })
setTimeout(() => { console.log(JSON.stringify({ error: 'TIMEOUT', written, received })); process.exit(0) }, 20000)
`
  return [process.execPath, '-e', src]
}

/** The app: `rounds` requests of `size` bytes, each waiting for its echo; counts echoes that differ. */
function pingPongApp (host: string, port: number, rounds: number, size: number): string[] {
  const src = `
const net = require('net')
const s = net.connect({ host: ${JSON.stringify(host)}, port: ${port} })
let round = 0, bad = 0, buf = Buffer.alloc(0)
const req = (i) => Buffer.alloc(${size}, i % 251)
s.on('connect', () => s.write(req(0)))
s.on('data', (d) => {
  buf = Buffer.concat([buf, d])
  if (buf.length < ${size}) return
  if (!buf.equals(req(round))) bad++
  buf = Buffer.alloc(0)
  if (++round === ${rounds}) return s.end()
  s.write(req(round))
})
s.on('end', () => { console.log(JSON.stringify({ rounds: round, bad })); process.exit(0) })
s.on('error', (e) => { console.log(JSON.stringify({ error: e.code })); process.exit(0) })
setTimeout(() => { console.log(JSON.stringify({ error: 'TIMEOUT', rounds: round })); process.exit(0) }, 20000)
`
  return [process.execPath, '-e', src]
}

/** The app for the bound: after the proxy's greeting, writes as fast as it may for `ms`, prints how much the kernel took. */
function floodingApp (host: string, port: number, ms: number): string[] {
  const src = `
const net = require('net')
const s = net.connect({ host: ${JSON.stringify(host)}, port: ${port} })
const chunk = Buffer.alloc(64 * 1024, 7)
let written = 0
function pump () { while (s.write(chunk)) written += chunk.length; written += chunk.length; s.once('drain', pump) }
s.once('data', pump)
s.on('error', () => {})
setTimeout(() => { console.log(JSON.stringify({ written: written - s.writableLength })); process.exit(0) }, ${ms})
`
  return [process.execPath, '-e', src]
}

/** TCP payload bytes (+1 for a FIN) received by the socket sport -> dport (ss -ti): what did *not* take the shortcut; -1 if there is no such socket. */
function tcpBytesReceived (podNs: string, proxyPort: number, appPort: number): number {
  const out = execFileSync('ip', ['netns', 'exec', podNs, 'ss', '-tinH', 'state', 'connected', `( sport = :${proxyPort} and dport = :${appPort} )`]).toString()
  if (out.trim() === '') return -1
  const m = /bytes_received:(\d+)/.exec(out)
  return m === null ? 0 : Number(m[1]) // ss leaves out a zero count
}

t.test('sockmap shortcut of the pod <-> proxy hop', async (t) => {
  const env = makePodEnv(t)
  const capture = await Capture.open({ pinRoot: uniquePinRoot(t), log: silentLog })
  t.teardown(safely(() => capture.close()))
  const netns = openNetns(env.podNsPath)
  t.teardown(() => netns.close())

  let onConn: (s: Socket) => void = () => {}
  const outbound: Server = await serveFd(t, netns.listen({ family: 4, address: '127.0.0.1', port: PORTS.outbound }), (s) => { onConn(s) })
  const inboundFds = {
    v4: netns.listen({ family: 4, address: '127.0.0.1', port: PORTS.inbound }),
    v6: netns.listen({ family: 6, address: '::1', port: PORTS.inbound })
  }
  const inbound = [await serveFd(t, inboundFds.v4, (s) => s.destroy()), await serveFd(t, inboundFds.v6, (s) => s.destroy())]
  const agent: AgentSide = { netns, seen: [], outbound: [outbound], inbound, inboundFds }
  capture.enrollPod(podSpec(env, agent))
  t.teardown(safely(() => capture.unenrollPod(env.id)))

  t.test('a stream joined mid-flight arrives whole and in order, both ways', async (t) => {
    const total = 24 * MiB
    let proxyHash = ''
    let joined: boolean | null = null
    let appPort = 0
    let tcpBytes = -1
    onConn = (s) => {
      appPort = s.remotePort ?? 0
      s.on('error', () => {})
      const h = createHash('sha256')
      let seen = 0
      s.pause()
      // Let the app fill our TCP receive queue before we read or join.
      setTimeout(() => { s.resume() }, 100)
      s.on('data', (d: Buffer) => {
        h.update(d)
        seen += d.length
        if (joined === null && seen >= 2 * MiB) joined = joinHop(capture, netns.cookie, s)
        if (!s.write(d)) { s.pause(); s.once('drain', () => s.resume()) }
      })
      s.on('end', () => {
        proxyHash = h.digest('hex')
        tcpBytes = tcpBytesReceived(env.podNs, PORTS.outbound, appPort)
        s.end()
      })
    }
    const r = await env.runInPod(streamingApp(env.peerIP4, 8080, total), { timeoutMs: 30_000 })
    t.equal(r.code, 0, r.stderr)
    const out = JSON.parse(r.stdout)
    t.notOk(out.error, 'the app finished')
    t.equal(joined, true, 'the proxy end joined ferry_socks')
    t.equal(out.written, total)
    t.equal(out.received, total, 'the echo came back whole')
    t.equal(proxyHash, out.sent, 'the proxy read the app\'s bytes in order')
    t.equal(out.got, out.sent, 'the app read the echo in order')
    // A sender that never lets the reader catch up stays on TCP (the order rule): the
    // point here is that nothing is lost or reordered; the next test shows the shortcut.
    t.ok(tcpBytes >= 2 * MiB, `the bytes before the join took TCP (${tcpBytes})`)
  })

  t.test('request and response: after the first exchange, neither direction uses TCP', async (t) => {
    const rounds = 200
    const size = 16 * 1024
    let appPort = 0
    let tcp = { proxy: -1, app: -1 }
    onConn = (s) => {
      appPort = s.remotePort ?? 0
      s.on('error', () => {})
      t.equal(joinHop(capture, netns.cookie, s), true, 'joined at accept')
      s.on('data', (d: Buffer) => { s.write(d) })
      s.on('end', () => {
        tcp = { proxy: tcpBytesReceived(env.podNs, PORTS.outbound, appPort), app: tcpBytesReceived(env.podNs, appPort, PORTS.outbound) }
        s.end()
      })
    }
    const r = await env.runInPod(pingPongApp(env.peerIP4, 8080, rounds, size), { timeoutMs: 30_000 })
    t.equal(r.code, 0, r.stderr)
    const out = JSON.parse(r.stdout)
    t.notOk(out.error, 'the app finished')
    t.equal(out.bad, 0, 'every echo was the request')
    t.equal(out.rounds, rounds)
    const total = rounds * size
    t.ok(tcp.proxy >= 0 && tcp.proxy <= 2 * size + 1, `app -> proxy: ${tcp.proxy} of ${total} bytes by TCP`)
    t.ok(tcp.app >= 0 && tcp.app <= 2 * size + 1, `proxy -> app: ${tcp.app} of ${total} bytes by TCP`)
  })

  t.test('a proxy that stops reading stops the app: the shortcut is bounded', async (t) => {
    let proxy: Socket | null = null
    onConn = (s) => {
      s.on('error', () => {})
      s.pause()
      t.equal(joinHop(capture, netns.cookie, s), true, 'joined at accept')
      s.write('go') // the proxy end has sent: from now on the app's bytes may take the shortcut
      proxy = s
    }
    const r = await env.runInPod(floodingApp(env.peerIP4, 8080, 1500), { timeoutMs: 10_000 })
    t.equal(r.code, 0, r.stderr)
    const { written } = JSON.parse(r.stdout)
    t.ok(proxy !== null, 'accepted')
    // Unbounded, the app would have queued ~1 GB in 1.5 s; bounded, the proxy's receive
    // buffer, TCP's window and the app's send buffer hold a few MiB between them.
    t.ok(written > 0 && written < 64 * MiB, `the app could queue only ${(written / MiB).toFixed(1)} MiB`)
    ;(proxy as Socket | null)?.destroy()
  })
})

t.test('a kernel where sk_msg does not load: capture works, the shortcut is off and says so', async (t) => {
  // Stand-in for an older kernel: every object but sk_msg.bpf.o.
  const dir = mkdtempSync(join(tmpdir(), 'fct-objs-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const built = join(REPO_ROOT, 'build', 'bpf')
  for (const f of readdirSync(built)) if (f.endsWith('.bpf.o') && f !== 'sk_msg.bpf.o') symlinkSync(join(built, f), join(dir, f))
  const pinRoot = uniquePinRoot(t)
  const capture = await Capture.open({ pinRoot, objectDir: dir, log: silentLog })
  t.teardown(safely(() => capture.close()))
  t.equal(capture.sockmap, false)
  t.notOk(existsSync(join(pinRoot, 'link_ferry_sk_msg')), 'no sk_msg link pinned')
  t.equal(capture.addHopEnd(0, { netnsCookie: 1n, localAddress: '127.0.0.1', localPort: 1, remoteAddress: '127.0.0.1', remotePort: 2 }), false)
  t.ok(capture.enrolledUids() !== undefined, 'capture is usable')
})

t.test('splices left by a dead agent are removed by the next one', async (t) => {
  const pinRoot = uniquePinRoot(t)
  const a = { netnsCookie: 7n, localAddress: '10.1.1.1', localPort: 40000, remoteAddress: '10.1.1.2', remotePort: 8080 }
  const b = { netnsCookie: 8n, localAddress: 'fd00::2', localPort: 8080, remoteAddress: 'fd00::2', remotePort: 40001 }
  const first = await Capture.open({ pinRoot, log: silentLog })
  t.equal(first.splice(a, b), true, 'spliced')
  t.equal(first.splice(a, b), false, 'a key is spliced once')
  first.close() // as if killed: no unsplice
  const next = await Capture.open({ pinRoot, log: silentLog })
  t.teardown(safely(() => next.close()))
  t.equal(next.splice(a, b), true, 'the keys are free again (a stale entry would refuse this)')
  t.same(next.unsplice(a, b), { fromA: 0, fromB: 0 })
})

t.test('the raw-address map an earlier agent pinned (ferry_sock_addrs) is unpinned by the next one', async (t) => {
  const pinRoot = uniquePinRoot(t)
  execFileSync('mkdir', ['-p', pinRoot])
  const old = join(pinRoot, 'ferry_sock_addrs')
  execFileSync('bpftool', ['map', 'create', old, 'type', 'lru_hash', 'key', '48', 'value', '24', 'entries', '16', 'name', 'ferry_sock_addrs'])
  t.ok(existsSync(old), 'left by an earlier agent')
  const capture = await Capture.open({ pinRoot, log: silentLog })
  t.teardown(safely(() => capture.close()))
  t.notOk(existsSync(old), 'unpinned')
  t.equal(capture.sockmap, true)
})
