import t from 'tap'
import { endToEndHeaders } from '../../src/http/hop-by-hop'

// What a hop forwards: end-to-end headers only (RFC 9110 §7.6.1), `te: trailers` kept.

t.test('hop-by-hop headers and those Connection names are not forwarded', async (t) => {
  t.same(endToEndHeaders({ host: 'a', connection: 'keep-alive, X-Secret', 'x-secret': '1', 'keep-alive': 'timeout=5', 'x-app': 'v', te: 'trailers', upgrade: 'h2c' }), { 'x-app': 'v', te: 'trailers' })
  t.same(endToEndHeaders({ te: 'gzip', 'x-app': 'v' }), { 'x-app': 'v' }, 'te other than trailers is dropped')
})

// Found by test/fuzz/http-layer.test.ts: a Connection header held as a list threw a TypeError on the data path.
t.test('a Connection header held as a list names headers too, and an empty one names none', async (t) => {
  t.same(endToEndHeaders({ connection: ['close', 'X-A'] as any, 'x-a': '1', 'x-b': '2' }), { 'x-b': '2' })
  t.same(endToEndHeaders({ connection: [] as any, 'x-b': '2' }), { 'x-b': '2' })
})
