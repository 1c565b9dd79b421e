import t, { type Test } from 'tap'
import { connect, createServer, type Server, type Socket } from 'node:net'
import { SynFilter, type SynListenOptions } from '../../src/tunnel-syn'
import { waitFor } from '../helpers/wait'

// The tunnel port's admission in the kernel (bpf/tunnel_syn.bpf.c, src/tunnel-syn), with
// real sockets over loopback: sources are 127.0.0.x addresses (all of 127/8 is local).
// A listener made by SynFilter.listen is served by a plain net.Server, standing for the
// agent: what its 'connection' event never sees, the agent never accepted.
//
// Guards the per-source SYN rate in the kernel (without the filter every connection
// below would be accepted), that one table serves every listener of the filter (so the
// rate holds for the node however many worker listeners it has), and TCP_DEFER_ACCEPT
// on those listeners. Counts are bounded with the rate's own slack (a token every
// second), never timed.

const RATE = { perSecond: 1, burst: 4 }

function load (t: Test): SynFilter {
  const filter = SynFilter.load(RATE)
  t.teardown(() => { filter.close() })
  return filter
}

interface Served { server: Server, port: number, accepted: Socket[], from: (address: string) => Socket[] }

async function serve (t: Test, filter: SynFilter, o: Partial<SynListenOptions> = {}): Promise<Served> {
  const opts: SynListenOptions = { family: 4, address: '127.0.0.1', port: 0, backlog: 64, dualStack: false, deferAcceptSeconds: 0, ...o }
  const fd = filter.listen(opts)
  const accepted: Socket[] = []
  const server = createServer((s) => { s.on('error', () => {}); accepted.push(s) })
  await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen({ fd, backlog: opts.backlog }, resolve) })
  t.teardown(async () => {
    for (const s of accepted) s.destroy()
    await new Promise<void>((resolve) => server.close(() => { resolve() }))
  })
  const port = (server.address() as { port: number }).port
  const from = (address: string): Socket[] => accepted.filter((s) => s.remoteAddress === address || s.remoteAddress === `::ffff:${address}`)
  return { server, port, accepted, from }
}

interface Attempts { sockets: Socket[], connected: () => number }

/** Opens `n` connections from `local` at once; they are destroyed at teardown. */
function open (t: Test, n: number, port: number, local: string, host = '127.0.0.1'): Attempts {
  const sockets: Socket[] = []
  let connected = 0
  for (let i = 0; i < n; i++) {
    const s = connect({ host, port, localAddress: local })
    s.on('error', () => {})
    s.once('connect', () => { connected++ })
    sockets.push(s)
  }
  t.teardown(() => { for (const s of sockets) s.destroy() })
  return { sockets, connected: () => connected }
}

/** What the rate may admit `burst` plus one a second for the time elapsed since `since`. */
function allowance (since: number): number {
  return RATE.burst + Math.ceil((Date.now() - since) / 1000) * RATE.perSecond
}

t.test('a source over its SYN rate has its SYNs dropped in the kernel: the listener accepts only its burst; a second source is unaffected', async (t) => {
  const filter = load(t)
  const served = await serve(t, filter)
  const started = Date.now()
  const over = open(t, 12, served.port, '127.0.0.2')
  // 12 SYNs at once: the burst passes, the rest are dropped before TCP makes anything of them.
  const counts = await waitFor(() => { const c = filter.counts(); return c.dropped >= 12 - allowance(started) && served.from('127.0.0.2').length >= RATE.burst ? c : null }, { what: 'the burst accepted, the rest dropped', timeoutMs: 5000 })
  const admitted = served.from('127.0.0.2').length
  t.ok(admitted >= RATE.burst && admitted <= allowance(started), `the listener accepted ${admitted} of 12 (burst ${RATE.burst})`)
  t.ok(counts.dropped >= 12 - admitted, `the kernel dropped the other SYNs (${counts.dropped})`)
  t.ok(over.connected() <= allowance(started), `and the client saw only those connect (${over.connected()}): the rest wait in SYN_SENT, unanswered`)
  t.equal(over.sockets.filter((s) => s.destroyed).length, 0, 'nothing was reset: a dropped SYN gets no answer')

  // Another source has its own bucket, full.
  const other = open(t, RATE.burst, served.port, '127.0.0.3')
  await waitFor(() => served.from('127.0.0.3').length === RATE.burst && other.connected() === RATE.burst ? true : null, { what: 'the second source\'s connections', timeoutMs: 5000 })
  t.pass(`a second source connects ${RATE.burst} times at once, all accepted`)
  t.ok(filter.counts().admitted >= admitted + RATE.burst, 'admitted SYNs are counted')
})

t.test('one table for every listener of the filter: a source\'s burst spent on one listener is spent on the other', async (t) => {
  const filter = load(t)
  const a = await serve(t, filter)
  const b = await serve(t, filter)
  const started = Date.now()
  open(t, RATE.burst, a.port, '127.0.0.4')
  await waitFor(() => a.from('127.0.0.4').length === RATE.burst ? true : null, { what: 'the burst on the first listener', timeoutMs: 5000 })
  const dropped = filter.counts().dropped
  open(t, 6, b.port, '127.0.0.4')
  await waitFor(() => filter.counts().dropped >= dropped + 6 - (allowance(started) - RATE.burst) ? true : null, { what: 'SYNs to the second listener dropped', timeoutMs: 5000 })
  t.ok(b.from('127.0.0.4').length <= allowance(started) - RATE.burst, `the second listener accepted ${b.from('127.0.0.4').length} (only what the rate refilled meanwhile)`)
  // The same source on a listener of another filter (another table) is not limited by this one.
  const c = await serve(t, load(t))
  open(t, RATE.burst, c.port, '127.0.0.4')
  await waitFor(() => c.from('127.0.0.4').length === RATE.burst ? true : null, { what: 'a separate filter\'s listener', timeoutMs: 5000 })
  t.pass('a listener of a separately loaded filter has its own table')
})

t.test('a peer node\'s address is exempt: its SYNs pass however many (a spoofed SYN cannot spend a peer\'s bucket); taken off the list, it is judged again', async (t) => {
  const filter = load(t)
  const served = await serve(t, filter)
  filter.setPeers(['127.0.0.8', 'fd00::8', 'not an address'])
  open(t, 12, served.port, '127.0.0.8')
  await waitFor(() => served.from('127.0.0.8').length === 12 ? true : null, { what: 'all of the peer\'s connections', timeoutMs: 5000 })
  t.match(filter.counts(), { peer: 12, dropped: 0 }, 'counted as a peer\'s, none dropped')
  filter.setPeers([])
  const started = Date.now()
  open(t, 12, served.port, '127.0.0.8')
  await waitFor(() => filter.counts().dropped >= 12 - allowance(started) ? true : null, { what: 'the SYNs over the rate dropped', timeoutMs: 5000 })
  t.ok(served.from('127.0.0.8').length <= 12 + allowance(started), `no longer a peer: ${served.from('127.0.0.8').length - 12} more accepted of 12`)
})

t.test('IPv6 sources are judged too', async (t) => {
  const filter = load(t)
  const served = await serve(t, filter, { family: 6, address: '::1' })
  const started = Date.now()
  open(t, 10, served.port, '::1', '::1')
  await waitFor(() => served.from('::1').length >= RATE.burst && filter.counts().dropped >= 10 - allowance(started) ? true : null, { what: 'the burst accepted, the rest dropped', timeoutMs: 5000 })
  t.ok(served.from('::1').length <= allowance(started), `accepted ${served.from('::1').length} of 10`)
})

t.test('TCP_DEFER_ACCEPT: a connection is accepted with its first bytes; a silent one waits in the kernel, and reaches accept() only once the defer period is over', async (t) => {
  const filter = load(t)
  // Long enough that the silent connection cannot be accepted while the test looks (the
  // kernel rounds 10 s up to 15 s, its SYN-ACK retransmission schedule).
  const long = await serve(t, filter, { deferAcceptSeconds: 10 })
  const [silent] = open(t, 1, long.port, '127.0.0.5').sockets
  const [talker] = open(t, 1, long.port, '127.0.0.6').sockets
  await new Promise<void>((resolve) => silent.once('connect', resolve))
  talker.write('hello')
  const got = await waitFor(() => long.from('127.0.0.6')[0], { what: 'the connection that sent', timeoutMs: 5000 })
  const first = await new Promise<string>((resolve) => got.once('data', (c: Buffer) => { resolve(String(c)) }))
  t.equal(first, 'hello', 'accepted with its bytes')
  t.equal(long.from('127.0.0.5').length, 0, 'the silent connection, connected on its side, is not accepted')

  // With a 1 s period, the silent connection is accepted after it, with nothing to read:
  // user space still needs its own first-byte timeout.
  const short = await serve(t, filter, { deferAcceptSeconds: 1 })
  open(t, 1, short.port, '127.0.0.7')
  const late = await waitFor(() => short.from('127.0.0.7')[0], { what: 'the silent connection after the defer period', timeoutMs: 10_000 })
  t.equal(late.bytesRead, 0, 'accepted silent once the period is over')
})

// Guards the code of a port that cannot be had: FERRY_ERR_LISTEN with the errno, not a
// bad argument (the arguments are fine; the port is taken).
t.test('a port in use is FERRY_ERR_LISTEN with EADDRINUSE', async (t) => {
  const filter = load(t)
  const taken = await serve(t, filter)
  t.throws(() => filter.listen({ family: 4, address: '127.0.0.1', port: taken.port, backlog: 8, dualStack: false, deferAcceptSeconds: 0 }), { code: 'FERRY_ERR_LISTEN', errno: 'EADDRINUSE' })
})

t.test('bad limits are refused before anything loads', async (t) => {
  t.throws(() => SynFilter.load({ perSecond: 0, burst: 4 }), { code: 'FERRY_ERR_INVALID_ARG' })
  t.throws(() => SynFilter.load({ perSecond: 1, burst: 1.5 }), { code: 'FERRY_ERR_INVALID_ARG' })
  const filter = load(t)
  t.throws(() => filter.listen({ family: 4, address: '::1', port: 0, backlog: 8, dualStack: false, deferAcceptSeconds: 0 }), { code: 'FERRY_ERR_INVALID_ARG' })
  filter.close()
  t.throws(() => filter.counts(), { code: 'FERRY_ERR_INVALID_ARG' }, 'a closed filter says so')
})
