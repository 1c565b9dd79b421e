import t, { type Test } from 'tap'
import { execFileSync } from 'node:child_process'
import { connect, createServer, type Server, type Socket } from 'node:net'
import { join } from 'node:path'
import { PATHS, PORTS } from '../../src/config/env'
import { SynFilter } from '../../src/tunnel-syn'
import { uniqueName } from '../helpers/names'
import { inParallel, startIntruder, tally } from '../helpers/reuseport-intruder'

// The tunnel port spread over the data-path workers' listeners, and only over them
// (bpf/tunnel_lookup.bpf.c, src/tunnel-syn/steering.ts), on the real kernel. The SynFilter
// attaches its sk_lookup program to the netns of the process that loads it, as the
// agent's does in the node's netns: so this file runs itself again inside a network
// namespace it makes, standing in for the node. There, each worker's listener on
// [::]:15008 is made by SynFilter.listen with reusePort, and a root process (python3, same
// uid) binds [::]:15008 with SO_REUSEPORT — joining their group — and the more specific
// 0.0.0.0, 127.0.0.1 and ::1 on the same port, which the kernel's own lookup prefers.
// Clients connect over the namespace's loopback (sk_lookup runs for it as for any
// interface).
//
// Guards BPF_SK_LOOKUP_F_NO_REUSEPORT and the SK_DROP with no live listener. Seen on this
// kernel: with flags 0 the intruder takes its share of the group's connections (39 of 240
// with 4 workers, and connections keep reaching a worker out of the live set); with
// SK_PASS instead of SK_DROP it gets every connection while no worker is live; without
// the program at all its more specific sockets (127.0.0.1, ::1) take all 240.

const INSIDE = 'FERRY_TEST_NODE_NETNS'
const PORT = PORTS.tunnel
/** The SYN rate is not this test's subject: every client is 127.0.0.1 or ::1. */
const LIMITS = { perSecond: 1000, burst: 65536 }
const CONNECTIONS = 240
const PARALLEL = 16

if (process.env[INSIDE] === undefined) {
  t.test('in a network namespace standing in for the node', async (t) => {
    const name = uniqueName('fts')
    execFileSync('ip', ['netns', 'add', name])
    t.teardown(() => {
      // Whatever the run inside left behind (an intruder if it crashed) goes with it.
      for (const pid of execFileSync('ip', ['netns', 'pids', name], { encoding: 'utf8' }).split('\n').filter(Boolean)) {
        try { process.kill(Number(pid), 'SIGKILL') } catch {}
      }
      execFileSync('ip', ['netns', 'del', name])
    })
    execFileSync('ip', ['-n', name, 'link', 'set', 'lo', 'up'])
    await t.spawn('nsenter', [`--net=${join(PATHS.netnsDir, name)}`, '--', process.execPath, ...process.execArgv, __filename], { env: { ...process.env, [INSIDE]: name } }, 'this file, run inside it')
  })
} else {
  inside()
}

function inside (): void {
  t.test('4 workers: every connection reaches a worker\'s listener, each worker gets some; a node process on the port (in their reuseport group, or on a more specific address) gets none', async (t) => {
    const filter = load(t)
    await tunnelWorkers(t, filter, 4)
    filter.setLiveWorkers([0, 1, 2, 3])
    const intruder = await startIntruder(t, [], [`:::${PORT}`, `0.0.0.0:${PORT}`, `127.0.0.1:${PORT}`, `::1:${PORT}`])
    const counts = tally(await connectMany(PORT, CONNECTIONS))
    const byWorker = [0, 1, 2, 3].map((w) => counts.get(`worker ${w}`) ?? 0)
    t.equal(byWorker.reduce((a, b) => a + b, 0), CONNECTIONS, `all ${CONNECTIONS} answered by a worker (by worker: ${byWorker.join(', ')}; all answers: ${JSON.stringify([...counts])})`)
    t.ok(byWorker.every((c) => c > 0), 'each worker accepted some')
    t.equal(intruder.accepted(), 0, 'the intruder accepted none')
  })

  // Guards the turn counter of bpf/tunnel_lookup.bpf.c: a node has few pooled sessions,
  // and with a hash of the client's address and port a few connections often land on one
  // worker (eight connections spread over 4 workers exactly 2 each about 1 time in 40).
  t.test('the workers take tunnel connections in turn: 8 connections one after the other, 2 to each of 4 workers; a worker out of the live set is skipped', async (t) => {
    const filter = load(t)
    await tunnelWorkers(t, filter, 4)
    filter.setLiveWorkers([0, 1, 2, 3])
    const sequential = async (n: number): Promise<string[]> => {
      const answers: string[] = []
      for (let i = 0; i < n; i++) answers.push(await fetch('127.0.0.1', PORT))
      return answers
    }
    t.same([...tally(await sequential(8))].sort(), [['worker 0', 2], ['worker 1', 2], ['worker 2', 2], ['worker 3', 2]])
    filter.setLiveWorkers([0, 2, 3])
    t.same([...tally(await sequential(6))].sort(), [['worker 0', 2], ['worker 2', 2], ['worker 3', 2]])
  })

  t.test('no live listener: the SYN is refused (RST), never handed to another process\'s socket; a worker out of the live set gets nothing new', async (t) => {
    const filter = load(t)
    const fds = await tunnelWorkers(t, filter, 2)
    const intruder = await startIntruder(t, [], [`:::${PORT}`, `0.0.0.0:${PORT}`])
    filter.setLiveWorkers([])
    t.equal(await fetch('127.0.0.1', PORT), 'error ECONNREFUSED', 'v4: no worker live')
    t.equal(await fetch('::1', PORT), 'error ECONNREFUSED', 'v6: no worker live')
    filter.setLiveWorkers([0, 1])
    filter.setListener(0, null)
    filter.setListener(1, null)
    t.equal(await fetch('127.0.0.1', PORT), 'error ECONNREFUSED', 'live workers, but their listeners taken out')
    filter.setListener(0, fds[0])
    filter.setListener(1, fds[1])
    filter.setLiveWorkers([1])
    t.same([...tally(await connectMany(PORT, 40))], [['worker 1', 40]], 'worker 0 out of the live set: all 40 to worker 1')
    t.equal(intruder.accepted(), 0, 'the intruder accepted none')
  })

  t.test('other ports are not the program\'s business', async (t) => {
    const filter = load(t)
    await tunnelWorkers(t, filter, 1)
    const other = createServer((s) => { s.on('error', () => {}); s.end('other') })
    await new Promise<void>((resolve) => other.listen(0, '127.0.0.1', resolve))
    t.teardown(() => new Promise<void>((resolve) => other.close(() => { resolve() })))
    t.equal(await fetch('127.0.0.1', (other.address() as { port: number }).port), 'other')
    t.equal(await fetch('127.0.0.1', PORT), 'worker 0', 'worker 0 is live from the start')
  })

  t.test('the worker choice wants one fixed port, a wildcard address and worker ids in range', async (t) => {
    const filter = load(t)
    const base = { family: 6 as const, address: '::', port: PORT, backlog: 16, dualStack: true, deferAcceptSeconds: 0, reusePort: true }
    t.throws(() => filter.setListener(0, 0), { code: 'FERRY_ERR_INVALID_ARG' }, 'no reusePort listener yet: nothing to choose among')
    t.throws(() => filter.listen({ ...base, port: 0 }), { code: 'FERRY_ERR_INVALID_ARG' }, 'port 0')
    t.throws(() => filter.listen({ ...base, address: '::1' }), { code: 'FERRY_ERR_INVALID_ARG' }, 'a specific address')
    await tunnelWorkers(t, filter, 1)
    t.throws(() => filter.listen({ ...base, port: PORT + 1 }), { code: 'FERRY_ERR_INVALID_ARG' }, 'another port than the first')
    t.throws(() => { filter.setLiveWorkers([8]) }, { code: 'FERRY_ERR_INVALID_ARG' }, 'worker 8')
    t.throws(() => { filter.setListener(-1, null) }, { code: 'FERRY_ERR_INVALID_ARG' }, 'worker -1')
  })
}

function load (t: Test): SynFilter {
  const filter = SynFilter.load(LIMITS)
  t.teardown(() => { filter.close() })
  return filter
}

/** `n` workers' listeners on [::]:PORT, in the live set's map, answering "worker w"; their fds. */
async function tunnelWorkers (t: Test, filter: SynFilter, n: number): Promise<number[]> {
  const fds: number[] = []
  for (let w = 0; w < n; w++) {
    const fd = filter.listen({ family: 6, address: '::', port: PORT, backlog: 512, dualStack: true, deferAcceptSeconds: 0, reusePort: true })
    filter.setListener(w, fd)
    const server: Server = createServer((s) => { s.on('error', () => {}); s.end(`worker ${w}`) })
    await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen({ fd, backlog: 512 }, resolve) })
    t.teardown(() => new Promise<void>((resolve) => server.close(() => { resolve() })))
    fds.push(fd)
  }
  return fds
}

/** Connects and resolves with everything received, or "error CODE" ("error TIMEOUT": no end within 5 s). */
async function fetch (host: string, port: number): Promise<string> {
  const s: Socket = connect({ host, port })
  return await new Promise((resolve) => {
    let data = ''
    const timer = setTimeout(() => { s.destroy(); resolve('error TIMEOUT') }, 5000)
    const done = (result: string): void => { clearTimeout(timer); resolve(result) }
    s.on('data', (d) => { data += String(d) })
    s.on('end', () => { done(data) })
    s.on('error', (e: NodeJS.ErrnoException) => { done(`error ${e.code ?? ''}`) })
  })
}

/** `n` connections to the port, over IPv4 and IPv6 alternately, PARALLEL at a time: what each received. */
async function connectMany (port: number, n: number): Promise<string[]> {
  return await inParallel(n, PARALLEL, async (i) => await fetch(i % 2 === 0 ? '127.0.0.1' : '::1', port))
}

