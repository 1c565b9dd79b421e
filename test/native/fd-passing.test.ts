import t from 'tap'
import { closeSync, fstatSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { isFerryError } from '../../src/errors'
import { dupFd, peerCredentials, recvFds, SCM_MAX_FD, sendFds, unixAccept, unixConnect, unixListen, watchReadable } from '../../src/native'
import { waitFor } from '../helpers/wait'

// The addon's unix sockets and fd passing (native/unix_socket.cc, native/fd_passing.cc,
// native/fd_watch.cc), with real sockets and real fds: what arrives is the same open
// file, close-on-exec; a message cut by the kernel is refused whole and leaves no fd
// behind; the watch wakes the loop when a socket is readable.

const dir = mkdtempSync(join(tmpdir(), 'ferry-fdpass-'))
t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
let n = 0

/** A connected SOCK_SEQPACKET pair: [client, accepted]. */
function pair (): [number, number] {
  const path = join(dir, `s${n++}`)
  const l = unixListen({ path, type: 'seqpacket', mode: 0o600 })
  const c = unixConnect(path, 'seqpacket')
  const a = unixAccept(l)
  closeSync(l)
  if (a === null) throw new Error('nothing to accept')
  t.teardown(() => { for (const fd of [c, a]) { try { closeSync(fd) } catch {} } })
  return [c, a]
}

function openFds (): number { return readdirSync('/proc/self/fd').length }
function cloexec (fd: number): boolean {
  const flags = /flags:\s+([0-7]+)/.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))?.[1] ?? '0'
  return (parseInt(flags, 8) & 0o2000000) !== 0
}

/** `count` fds to send (duplicates of stdin), closed at the end of the test. */
function fdsToSend (count: number): number[] {
  const out: number[] = []
  for (let i = 0; i < count; i++) out.push(dupFd(0))
  t.teardown(() => { for (const fd of out) { try { closeSync(fd) } catch {} } })
  return out
}

t.test('fds sent over SOCK_SEQPACKET arrive as the same open files, close-on-exec, with their message', async (t) => {
  const [c, a] = pair()
  const [x, y] = pair() // y's peer x: data written on y is read on x, so a received y must be y itself
  t.equal(sendFds(a, Buffer.from('hello'), [y]), 5)
  const got = recvFds(c, 4)
  t.ok(got !== null)
  t.equal(got!.payload.toString(), 'hello')
  t.equal(got!.fds.length, 1)
  const received = got!.fds[0]
  t.not(received, y, 'a new fd number')
  t.ok(cloexec(received), 'close-on-exec (MSG_CMSG_CLOEXEC)')
  t.equal(fstatSync(received).ino, fstatSync(y).ino, 'the same socket')
  writeSync(received, Buffer.from('via the passed fd'))
  await waitFor(() => recvFds(x, 0)?.payload.toString() === 'via the passed fd', { what: 'the byte written on the passed fd' })
  closeSync(received)
})

t.test('nothing to read is null; a closed peer is an empty payload', async (t) => {
  const [c, a] = pair()
  t.equal(recvFds(c, 1), null)
  closeSync(a)
  t.same(recvFds(c, 1), { payload: Buffer.alloc(0), fds: [] })
})

t.test(`up to SCM_MAX_FD (${SCM_MAX_FD}) fds in one message; more is refused before anything is sent`, async (t) => {
  const [c, a] = pair()
  const fds = fdsToSend(SCM_MAX_FD + 1)
  try {
    sendFds(a, Buffer.from('x'), fds)
    t.fail('sent too many')
  } catch (err) {
    t.ok(isFerryError(err, 'FERRY_ERR_INVALID_ARG'))
    t.match((err as Error).message, /at most 253 fds per message/)
  }
  t.equal(recvFds(c, SCM_MAX_FD), null, 'nothing went out')
  sendFds(a, Buffer.from('all'), fds.slice(0, SCM_MAX_FD))
  const got = recvFds(c, SCM_MAX_FD)
  t.equal(got?.fds.length, SCM_MAX_FD)
  for (const fd of got?.fds ?? []) closeSync(fd)
})

t.test('a message with more fds than the receiver takes (MSG_CTRUNC) is refused and what arrived is closed', async (t) => {
  // Guards the receiver against keeping a part of a message: without the check the
  // fds that fit would be returned as if they were all.
  const [c, a] = pair()
  const fds = fdsToSend(8)
  sendFds(a, Buffer.from('eight'), fds)
  const before = openFds()
  try {
    recvFds(c, 3)
    t.fail('accepted a truncated message')
  } catch (err) {
    t.ok(isFerryError(err, 'FERRY_ERR_NATIVE'))
    t.equal((err as { errno?: string }).errno, 'EMSGSIZE')
    t.match((err as Error).message, /more than 3 fds in one message \(its fds were closed\)/)
  }
  t.equal(openFds(), before, 'no fd left behind')
})

t.test('a record longer than the receiver reads (MSG_TRUNC) is refused and its fds closed', async (t) => {
  const [c, a] = pair()
  sendFds(a, Buffer.alloc(2000, 0x61), fdsToSend(2))
  const before = openFds()
  t.throws(() => recvFds(c, 4, 1000), /a message longer than 1000 bytes/)
  t.equal(openFds(), before, 'no fd left behind')
})

t.test('peer credentials: the connecting process, as the kernel recorded it', async (t) => {
  const [c, a] = pair()
  t.same(peerCredentials(a), { pid: process.pid, uid: process.getuid?.(), gid: process.getgid?.() })
  t.same(peerCredentials(c), { pid: process.pid, uid: process.getuid?.(), gid: process.getgid?.() })
})

t.test('a listening unix socket gets its mode before it accepts; connect to nothing says why', async (t) => {
  const path = join(dir, 'mode')
  const l = unixListen({ path, type: 'stream', mode: 0o600 })
  t.teardown(() => closeSync(l))
  t.equal(statSync(path).mode & 0o777, 0o600)
  t.equal(unixAccept(l), null, 'nobody waiting')
  const errnoOf = (fn: () => unknown): string | undefined => {
    try { fn() } catch (err) { return (err as { errno?: string }).errno }
    return 'no error'
  }
  t.equal(errnoOf(() => unixConnect(join(dir, 'missing'), 'seqpacket')), 'ENOENT', 'no such file')
  t.equal(errnoOf(() => unixConnect(path, 'seqpacket')), 'EPROTOTYPE', 'a stream socket is not a seqpacket one')
  t.throws(() => unixListen({ path: join(dir, 'x'.repeat(120)), type: 'stream', mode: 0o600 }), /at most 107 bytes|1 to 107 bytes/)
})

t.test('watchReadable wakes when a record arrives and stops on close', async (t) => {
  const [c, a] = pair()
  let calls = 0
  const got: string[] = []
  const w = watchReadable(c, () => {
    calls++
    for (let r = recvFds(c, 0); r !== null && r.payload.length > 0; r = recvFds(c, 0)) got.push(r.payload.toString())
  })
  sendFds(a, Buffer.from('one'), [])
  sendFds(a, Buffer.from('two'), [])
  await waitFor(() => got.length === 2, { what: 'both records' })
  t.same(got, ['one', 'two'])
  w.close()
  const seen = calls
  sendFds(a, Buffer.from('three'), [])
  await new Promise((resolve) => setImmediate(resolve))
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.equal(calls, seen, 'no call after close')
  t.equal(recvFds(c, 0)?.payload.toString(), 'three', 'the record waits for whoever reads')
})
