import t from 'tap'
import { MAX_PROBE, SharedTable, STALE_MS } from '../../src/limits/shared-table'

// The shared table behind the node-wide limits: a key's slot is found again (by another
// view of the same memory, as another worker would), distinct keys get distinct slots, a
// slot unused for STALE_MS is reclaimed unless busy, and a full table answers -1.

const spec = { slots: 64, payloadWords: 3 }

function pair (slots = spec.slots, busy?: (w: Int32Array, base: number) => boolean): [SharedTable, SharedTable] {
  const s = { ...spec, slots }
  const buffer = new SharedArrayBuffer(SharedTable.bytesFor(s))
  return [new SharedTable(buffer, 0, s, busy), new SharedTable(buffer, 0, s, busy)]
}

t.test('two views of the memory find the same slot for a key; different keys, different slots', async (t) => {
  const [a, b] = pair()
  const now = 1_000_000
  const x = a.find('backend-x', now)
  t.ok(x >= 0)
  a.words[x] = 42
  t.equal(b.find('backend-x', now), x, 'the other view lands on the same slot')
  t.equal(b.words[x], 42)
  const keys = Array.from({ length: 40 }, (_, i) => `k${i}`)
  const slots = new Set(keys.map((k) => a.find(k, now)))
  t.equal(slots.size, 40, 'every key its own slot')
  t.notOk(slots.has(x))
  t.equal(a.used(), 41)
})

t.test('a slot unused for STALE_MS is reclaimed by another key; its payload starts at zero', async (t) => {
  const [a, b] = pair(1)
  const now = 5_000_000
  const x = a.find('old', now)
  a.words[x] = 7
  t.equal(a.find('new', now + STALE_MS - 1000), -1, 'still in use: the one-slot table is full')
  t.equal(a.full(), 1)
  const y = b.find('new', now + STALE_MS + 1000)
  t.equal(y, x, 'reclaimed')
  t.equal(b.words[y], 0, 'payload zeroed')
  // The first view's cached slot of "old" is no longer "old"'s: it looks again.
  t.equal(a.find('old', now + STALE_MS + 1000), -1, 'old lost its slot')
})

t.test('a busy slot is never reclaimed, however old', async (t) => {
  const [a] = pair(1, (w, base) => w[base] > 0)
  const x = a.find('held', 0)
  a.words[x] = 1
  t.equal(a.find('other', STALE_MS * 10), -1)
  a.words[x] = 0
  t.equal(a.find('other', STALE_MS * 10), x)
})

t.test('a key is looked for at most MAX_PROBE slots past its home: a full chain answers -1', async (t) => {
  const [a] = pair(MAX_PROBE * 4)
  let found = 0
  let refused = 0
  for (let i = 0; i < MAX_PROBE * 8; i++) {
    if (a.find(`key-${i}`, 0) >= 0) found++
    else refused++
  }
  t.ok(found <= MAX_PROBE * 4)
  t.ok(refused >= MAX_PROBE * 4, 'the rest are refused, not overwritten')
  t.equal(a.used(), found)
})
