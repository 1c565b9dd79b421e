import t from 'tap'
import { MAX_MESSAGE_BYTES, SCM_MAX_FD } from '../../src/native'
import { batchesOf, checkListeners, decodeMessage, encodeMessage, MAX_KEY_BYTES } from '../../src/handoff/protocol'

// The handoff's messages (src/handoff/protocol.ts): what a peer may send, and what each
// side refuses with a message that says why.

const rec = (o: unknown): Buffer => Buffer.from(JSON.stringify(o))

t.test('messages round-trip with the version', async (t) => {
  for (const m of [{ type: 'take' }, { type: 'next' }, { type: 'commit' }, { type: 'done' }, { type: 'error', code: 'FERRY_ERR_HANDOFF', message: 'busy' }] as const) {
    t.same(decodeMessage(encodeMessage(m), 0), m)
  }
  t.same(decodeMessage(encodeMessage({ type: 'fds', keys: ['pod/u1/outbound/4/w0', 'admin'], more: true }), 2), { type: 'fds', keys: ['pod/u1/outbound/4/w0', 'admin'], more: true })
  t.match(encodeMessage({ type: 'take' }).toString(), /^\{"v":1,/)
})

t.test('what a peer gets wrong is named', async (t) => {
  const bad: Array<[Buffer, number, RegExp]> = [
    [Buffer.from([0xff, 0x00]), 0, /not JSON/],
    [rec([1]), 0, /not a JSON object/],
    [rec({ type: 'take' }), 0, /version undefined/],
    [rec({ v: 1, type: 'take' }), 1, /"take" carries 1 fds/],
    [rec({ v: 1, type: 'fds', keys: ['a', 'b'], more: false }), 1, /names 2 keys but carries 1 fds/],
    [rec({ v: 1, type: 'fds', keys: ['a b'], more: false }), 1, /printable ASCII characters without spaces/],
    [rec({ v: 1, type: 'fds', keys: ['x'.repeat(MAX_KEY_BYTES + 1)], more: false }), 1, /1-200 printable/],
    [rec({ v: 1, type: 'fds', keys: 'a', more: false }), 1, /needs keys \(an array\)/],
    [rec({ v: 1, type: 'error', code: 1 }), 0, /needs code and message strings/]
  ]
  for (const [payload, fds, why] of bad) t.throws(() => decodeMessage(payload, fds), { code: 'FERRY_ERR_HANDOFF', message: why })
})

t.test('the owner\'s list: each key once, fds as integers', async (t) => {
  t.same(checkListeners([{ key: 'admin', fd: 7 }, { key: 'ready', fd: 8 }]).length, 2)
  t.throws(() => checkListeners([{ key: 'admin', fd: 7 }, { key: 'admin', fd: 8 }]), /admin is given twice/)
  t.throws(() => checkListeners([{ key: 'admin', fd: -1 }]), /not an fd/)
})

t.test('batches: at most SCM_MAX_FD each, one (empty) batch for nothing; the largest fits a message', async (t) => {
  t.same(batchesOf([]), [[]])
  const list = Array.from({ length: 2 * SCM_MAX_FD + 1 }, (_, i) => i)
  t.same(batchesOf(list).map((b) => b.length), [SCM_MAX_FD, SCM_MAX_FD, 1])
  const widest = encodeMessage({ type: 'fds', keys: Array.from({ length: SCM_MAX_FD }, (_, i) => `${i}`.padEnd(MAX_KEY_BYTES, 'k')), more: true })
  t.ok(widest.length <= MAX_MESSAGE_BYTES, `${widest.length} bytes`)
})
