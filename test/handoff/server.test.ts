import t from 'tap'
import { chmodSync, closeSync, existsSync, fstatSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { HandoffServer, takeOver } from '../../src/handoff'
import { tcpListen, unixListen } from '../../src/native'
import { createLogger } from '../../src/telemetry/logger'

// HandoffServer's own rules, in one process (the two-process behaviour is in
// handoff.test.ts): where it agrees to listen, its states, and which socket file it
// leaves behind.

const dir = mkdtempSync(join(tmpdir(), 'ferry-handoff-srv-'))
t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
const log = createLogger({ name: 'handoff-test', level: 'silent' })
let n = 0

function server (path: string, listeners: Array<{ key: string, fd: number }> = [], events: string[] = []): HandoffServer {
  const s = HandoffServer.listen({
    path,
    log,
    listeners: () => listeners,
    onHandedOff: () => { events.push('handed-off') },
    onTakeoverStarted: () => { events.push('started') },
    onTakeoverAbandoned: () => { events.push('abandoned') }
  })
  t.teardown(() => { s.close() })
  return s
}

t.test('the socket is 0600 in a 0700 directory made for it; close() removes it', async (t) => {
  const path = join(dir, `d${n++}`, 'handoff.sock')
  const s = server(path)
  t.equal(statSync(path).mode & 0o777, 0o600)
  t.equal(statSync(join(path, '..')).mode & 0o777, 0o700)
  t.equal(s.state, 'listening')
  s.close()
  t.equal(s.state, 'closed')
  t.notOk(existsSync(path), 'removed: nobody listens there any more')
})

t.test('a directory others may write, or something that is not a socket at the path, is refused', async (t) => {
  const open = join(dir, `open${n++}`)
  mkdirSync(open, { mode: 0o777 })
  chmodSync(open, 0o777)
  t.throws(() => server(join(open, 'h.sock')), { code: 'FERRY_ERR_HANDOFF', message: /writable by nobody else \(it is uid 0, mode 777\)/ })
  const file = join(dir, `file${n++}`)
  writeFileSync(file, 'not a socket')
  t.throws(() => server(file), { code: 'FERRY_ERR_HANDOFF', message: /something that is not a socket is in the way/ })
  t.ok(existsSync(file), 'and left alone')
  t.throws(() => server('relative.sock'), { code: 'FERRY_ERR_INVALID_ARG' })
})

t.test('a stale socket is replaced; after a handoff the file is left for the new agent', async (t) => {
  const path = join(dir, `s${n++}.sock`)
  const first = server(path)
  first.close()
  closeSync(unixListen({ path, type: 'seqpacket', mode: 0o600 })) // a dead agent's file
  const events: string[] = []
  const fd = tcpListen({ family: 4, address: '127.0.0.1', port: 0, backlog: 8 })
  t.teardown(() => { try { closeSync(fd) } catch {} })
  const s = server(path, [{ key: 'admin', fd }], events)
  const taken = await takeOver(path, { timeoutMs: 5000 })
  t.ok(taken !== null)
  t.same([...taken!.listeners.keys()], ['admin'])
  t.equal(fstatSync(taken!.listeners.get('admin')!).ino, fstatSync(fd).ino, 'the same socket')
  t.equal(s.state, 'taking')
  t.same(events, ['started'])
  await taken!.complete()
  t.same(events, ['started', 'handed-off'])
  t.equal(s.state, 'handed-off')
  const inode = statSync(path).ino
  s.close()
  t.equal(statSync(path).ino, inode, 'the file stays: the new agent replaces it with its own')
  closeSync(taken!.listeners.get('admin')!)
  t.equal(await takeOver(path, { timeoutMs: 5000 }), null, 'nobody listens there now: the next start is fresh')
})

t.test('closing the server during a takeover ends it: the new agent\'s commit fails, the old one tells nobody', async (t) => {
  const path = join(dir, `c${n++}.sock`)
  const events: string[] = []
  const s = server(path, [], events)
  const taken = await takeOver(path, { timeoutMs: 5000 })
  t.same(taken?.listeners.size, 0, 'an agent with no listeners hands over an empty set')
  s.close()
  await s.idle()
  await t.rejects(taken!.complete({ timeoutMs: 2000 }), { code: 'FERRY_ERR_HANDOFF', message: /closed the handoff connection|cannot send "commit"/ })
  t.same(events, ['started'], 'no abandoned hook once closed')
})

t.test('the new agent adopts the fds it needs by key and closes the rest', async (t) => {
  const path = join(dir, `a${n++}.sock`)
  const mine = [0, 1, 2].map(() => tcpListen({ family: 4, address: '127.0.0.1', port: 0, backlog: 8 }))
  t.teardown(() => { for (const fd of mine) { try { closeSync(fd) } catch {} } })
  server(path, [{ key: 'pod/u1/outbound/4/w0', fd: mine[0] }, { key: 'pod/gone/outbound/4/w0', fd: mine[1] }, { key: 'tunnel/w1', fd: mine[2] }])
  const taken = await takeOver(path, { timeoutMs: 5000 })
  const kept = taken!.adopt('pod/u1/outbound/4/w0')
  t.equal(fstatSync(kept!).ino, fstatSync(mine[0]).ino)
  t.equal(taken!.adopt('pod/u1/outbound/4/w0'), undefined, 'adopted once')
  t.equal(taken!.adopt('admin'), undefined, 'none came under that key')
  const dropped = [taken!.listeners.get('pod/gone/outbound/4/w0')!, taken!.listeners.get('tunnel/w1')!]
  t.same(taken!.closeUnadopted().sort(), ['pod/gone/outbound/4/w0', 'tunnel/w1'])
  for (const fd of dropped) t.throws(() => fstatSync(fd), { code: 'EBADF' }, 'closed')
  t.ok(fstatSync(kept!).isSocket(), 'the adopted one stays open')
  closeSync(kept!)
  taken!.abandon()
})
