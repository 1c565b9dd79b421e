import t, { type Test } from 'tap'
import { chmodSync, closeSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { isFerryError } from '../../src/errors'
import { takeOver } from '../../src/handoff'
import { recvFds, sendFds, unixConnect, unixListen } from '../../src/native'
import { waitFor } from '../helpers/wait'
import { type Answer, ask, StandIn } from './agents'

// The listener handoff between two real agent processes (src/handoff/): an old one
// holding TCP listeners on 127.0.0.1 and a new one taking them over through a unix
// socket (SCM_RIGHTS through the addon). The client counts what it sees; the agents'
// own reports are only used to know when things happened.

t.setTimeout(120_000)

const dir = mkdtempSync(join(tmpdir(), 'ferry-handoff-'))
t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
let n = 0
const socketPath = (): string => join(dir, `h${n++}.sock`)
const REQUEST_TIMEOUT_MS = 500

async function oldAgent (t: Test, path: string, listeners = 1): Promise<{ old: StandIn, ports: Record<string, number> }> {
  const old = new StandIn(t, ['old', path, String(listeners), String(REQUEST_TIMEOUT_MS)])
  const { ports } = await old.event('listening')
  return { old, ports }
}

/** Connections from `workers` loops until stop(); each answer with the time it was asked. */
function load (port: number, workers: number, max: number): { answers: Array<{ at: number, a: Answer }>, stop: () => Promise<void> } {
  const answers: Array<{ at: number, a: Answer }> = []
  let running = true
  const loops = Array.from({ length: workers }, async () => {
    while (running && answers.length < max) {
      const at = Date.now()
      answers.push({ at, a: await ask(port) })
    }
  })
  return { answers, stop: async () => { running = false; await Promise.all(loops) } }
}

const errorsOf = (answers: Array<{ a: Answer }>): string[] => answers.flatMap(({ a }) => 'error' in a ? [a.error] : [])
const servedBy = (answers: Array<{ a: Answer }>, by: 'old' | 'new'): number => answers.filter(({ a }) => 'by' in a && a.by === by).length

t.test('a new agent takes over under load: no refusal, reset or timeout, and after "done" only the new agent answers', async (t) => {
  // Guards the handoff itself: without it the new agent cannot listen on the old
  // one's address, and closing the old one's listener refuses or resets connections.
  const path = socketPath()
  const { old, ports } = await oldAgent(t, path)
  const port = ports['tcp/0']
  const run = load(port, 4, 20_000)
  await waitFor(() => servedBy(run.answers, 'old') >= 100, { what: '100 answers from the old agent' })
  const fresh = new StandIn(t, ['new', path])
  const took = await fresh.event('took')
  t.same(took.keys, ['tcp/0'])
  t.equal(took.from, old.pid, 'from the old agent (SO_PEERCRED)')
  await old.event('started')
  fresh.send('serve')
  await fresh.event('serving')
  t.notOk(old.has('handed-off'), 'the old agent accepts until the new one commits')
  fresh.send('complete')
  await fresh.event('done')
  t.ok(old.has('handed-off'), '"done" comes after the old agent stopped accepting')
  const doneAt = Date.now()
  await waitFor(() => run.answers.filter((x) => x.at > doneAt && 'by' in x.a).length >= 200, { timeoutMs: 30_000, what: '200 answers after the handoff' })
  await run.stop()
  t.same(errorsOf(run.answers), [], `${run.answers.length} connections, none refused, reset or timed out`)
  t.ok(servedBy(run.answers, 'new') >= 200, 'the new agent serves')
  const late = run.answers.filter((x) => x.at > doneAt)
  t.equal(servedBy(late, 'old'), 0, 'nothing reaches the old agent once it said it stopped accepting')
})

t.test('connections queued when the old agent stops accepting are accepted by the new one', async (t) => {
  // The new agent commits before it accepts anything: between the two, connections wait
  // in the kernel's accept queue of the one listening socket both processes held. Guards
  // against the old agent's close tearing the socket down (that would reset them).
  const path = socketPath()
  const { old, ports } = await oldAgent(t, path)
  const fresh = new StandIn(t, ['new', path])
  await fresh.event('took')
  fresh.send('complete')
  await fresh.event('done')
  await old.event('handed-off')
  const queued = Array.from({ length: 20 }, async () => await ask(ports['tcp/0'], 15_000))
  await new Promise((resolve) => setTimeout(resolve, 200)) // let them all reach the queue
  fresh.send('serve')
  const answers = await Promise.all(queued)
  t.same(answers.map((a) => 'by' in a ? a.by : a.error), Array(20).fill('new'), 'all 20 accepted by the new agent')
})

t.test('a new agent that goes away before committing leaves the old one serving', async (t) => {
  const path = socketPath()
  const { old, ports } = await oldAgent(t, path)
  const first = new StandIn(t, ['new', path])
  await first.event('took')
  await old.event('started')
  await first.stop('SIGKILL')
  const abandoned = await old.event('abandoned')
  t.match(abandoned.reason, /closed the handoff connection/)
  const answers = await Promise.all(Array.from({ length: 10 }, async () => await ask(ports['tcp/0'])))
  t.same(answers.map((a) => 'by' in a ? a.by : a.error), Array(10).fill('old'), 'the old agent still accepts')
  const second = new StandIn(t, ['new', path])
  t.same((await second.event('took')).keys, ['tcp/0'], 'and hands over to the next new agent')
})

t.test('hundreds of listeners cross in batches of at most 253 fds, each under its key', async (t) => {
  const path = socketPath()
  const { ports } = await oldAgent(t, path, 300)
  const fresh = new StandIn(t, ['new', path])
  const took = await fresh.event('took')
  t.equal(took.keys.length, 300)
  fresh.send('serve')
  const serving = await fresh.event('serving')
  t.same(serving.ports, ports, 'every key names the socket the old agent listed under it')
})

t.test('one takeover at a time: a second new agent is told the old one is busy', async (t) => {
  const path = socketPath()
  await oldAgent(t, path)
  const first = new StandIn(t, ['new', path])
  await first.event('took')
  const second = new StandIn(t, ['new', path])
  const refused = await second.event('error')
  t.equal(refused.code, 'FERRY_ERR_HANDOFF')
  t.match(refused.message, /busy: another agent is taking over/)
  first.send('abandon')
  await first.event('abandoned')
  const third = new StandIn(t, ['new', path])
  await third.event('took')
})

t.test('nobody listening is a fresh start: null, without waiting for the deadline', { timeout: 20_000 }, async (t) => {
  t.equal(await takeOver(join(dir, 'never-made.sock'), { timeoutMs: 60_000 }), null, 'no socket file')
  const stale = socketPath()
  closeSync(unixListen({ path: stale, type: 'seqpacket', mode: 0o600 })) // the file of an agent that died
  t.equal(await takeOver(stale, { timeoutMs: 60_000 }), null, 'a socket file nobody listens on')
})

t.test('an old agent that never answers cannot hang the new one: the deadline ends it', async (t) => {
  const path = socketPath()
  const l = unixListen({ path, type: 'seqpacket', mode: 0o600 }) // connects complete in the backlog; nobody reads
  t.teardown(() => closeSync(l))
  await t.rejects(takeOver(path, { timeoutMs: 300 }), { code: 'FERRY_ERR_HANDOFF', message: /sent no listeners within \d+ ms/ })
})

t.test('a peer that is neither root nor our uid gets nothing, even when it can reach the socket', async (t) => {
  const own = mkdtempSync(join(tmpdir(), 'ferry-handoff-perm-'))
  t.teardown(() => { rmSync(own, { recursive: true, force: true }) })
  const path = join(own, 'h.sock')
  const { old, ports } = await oldAgent(t, path)
  const nobody = { uid: 65534, gid: 65534 }
  const blocked = new StandIn(t, ['new', path], nobody)
  const denied = await blocked.event('error')
  t.equal(denied.errno, 'EACCES', 'the 0700 directory and the 0600 socket keep it out')
  // A socket reachable by mistake (a loose mount): SO_PEERCRED still refuses.
  chmodSync(own, 0o755)
  chmodSync(path, 0o666)
  const intruder = new StandIn(t, ['new', path], nobody)
  const refused = await intruder.event('error')
  t.equal(refused.code, 'FERRY_ERR_HANDOFF')
  t.match(refused.message, /uid 65534 may not take this agent's listeners/)
  t.notOk(old.has('started'), 'no fd left the old agent')
  t.same(await ask(ports['tcp/0']), { by: 'old', pid: old.pid }, 'which serves on')
  const root = new StandIn(t, ['new', path])
  await root.event('took')
})

t.test('garbage, truncated and out-of-order requests get a clear error; the old agent serves on', async (t) => {
  const path = socketPath()
  const { old, ports } = await oldAgent(t, path)
  /** Sends one raw record (with fds) and returns the error the old agent answers. */
  const answerTo = async (payload: Buffer | null, fds: number[] = []): Promise<string> => {
    const fd = unixConnect(path, 'seqpacket')
    try {
      if (payload !== null) sendFds(fd, payload, fds)
      const reply = await waitFor(() => recvFds(fd, 0), { what: 'the old agent\'s answer' })
      const m = JSON.parse(reply.payload.toString())
      t.equal(m.type, 'error')
      return m.message as string
    } finally {
      closeSync(fd)
    }
  }
  t.match(await answerTo(Buffer.from('hello')), /handoff protocol error: not JSON/)
  t.match(await answerTo(Buffer.from('{"v":9,"type":"take"}')), /version 9, this agent speaks 1/)
  t.match(await answerTo(Buffer.from('{"v":1,"type":"steal"}')), /unknown message type "steal"/)
  t.match(await answerTo(Buffer.from('{"v":1,"type":"commit"}')), /expected "take", got "commit"/)
  t.match(await answerTo(Buffer.alloc(100 * 1024, 0x7b)), /a message longer than 65536 bytes/)
  const extra = unixListen({ path: join(dir, `extra${n++}`), type: 'stream', mode: 0o600 })
  t.match(await answerTo(Buffer.from('{"v":1,"type":"take"}'), [extra]), /more than 0 fds in one message/)
  closeSync(extra)
  t.match(await answerTo(null), new RegExp(`sent no "take" within ${REQUEST_TIMEOUT_MS} ms`))
  t.notOk(old.has('started'), 'no takeover started')
  t.same(await ask(ports['tcp/0']), { by: 'old', pid: old.pid }, 'the old agent still serves')
  const fresh = new StandIn(t, ['new', path])
  t.same((await fresh.event('took')).keys, ['tcp/0'], 'and still hands over')
})

t.test('bad arguments are refused before any socket is touched', async (t) => {
  await t.rejects(takeOver('relative.sock', { timeoutMs: 1000 }), { code: 'FERRY_ERR_INVALID_ARG' })
  await t.rejects(takeOver(join(dir, 'x'.repeat(120)), { timeoutMs: 1000 }), { code: 'FERRY_ERR_INVALID_ARG' })
  await t.rejects(takeOver(join(dir, 'a.sock'), { timeoutMs: 0 }), { code: 'FERRY_ERR_INVALID_ARG' })
  t.ok(isFerryError(await takeOver(join(dir, 'a.sock'), { timeoutMs: -1 }).catch((e) => e), 'FERRY_ERR_INVALID_ARG'))
})
