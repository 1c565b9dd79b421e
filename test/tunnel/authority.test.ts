import t from 'tap'
import { forwardedFor, parseForwardedFor } from '../../src/tunnel/authority'
import { formatAuthority, parseAuthority } from '../../src/tunnel'

// :authority carries the original destination as ip:port (IPv6 bracketed) and nothing
// else: it comes off the network, so anything that is not exactly that is refused.

t.test('parses ip:port and [ipv6]:port', async (t) => {
  t.same(parseAuthority('10.0.0.7:8080'), { address: '10.0.0.7', port: 8080, family: 4 })
  t.same(parseAuthority('[fd00::5]:443'), { address: 'fd00::5', port: 443, family: 6 })
  t.same(parseAuthority('[FD00::A]:1'), { address: 'fd00::a', port: 1, family: 6 }, 'IPv6 lowercased')
  t.same(parseAuthority('[::ffff:10.0.0.7]:65535'), { address: '::ffff:10.0.0.7', port: 65535, family: 6 })
})

t.test('refuses everything else', async (t) => {
  const bad: unknown[] = [undefined, null, 80, '', 'db.data.svc:5432', 'localhost:80', '10.0.0.7', '10.0.0.7:', ':80', '10.0.0.7:0', '10.0.0.7:65536',
    '10.0.0.7:080', '10.0.0.7:+80', '10.0.0.7:8 0', ' 10.0.0.7:80', '10.0.0.7:80 ', '010.0.0.7:80', '10.0.0.256:80', '10.0.7:80',
    'fd00::5:80', '[fd00::5]', '[fd00::5]80', '[fe80::1%eth0]:80', '[fd00::g]:80', '[10.0.0.7]:80', `[${'1:'.repeat(40)}1]:80`, '10.0.0.7:80/x', 'user@10.0.0.7:80']
  for (const b of bad) t.equal(parseAuthority(b), null, JSON.stringify(b))
})

t.test('formats with brackets for IPv6', async (t) => {
  t.equal(formatAuthority({ address: '10.0.0.7', port: 80 }), '10.0.0.7:80')
  t.equal(formatAuthority({ address: 'fd00::5', port: 80 }), '[fd00::5]:80')
  for (const a of ['10.0.0.7:80', '[fd00::5]:80']) t.equal(formatAuthority(parseAuthority(a)!), a, `round trip ${a}`)
})

t.test('forwarded: for= round trip, and junk is ignored', async (t) => {
  t.equal(forwardedFor('10.244.1.5'), 'for=10.244.1.5')
  t.equal(forwardedFor('fd00::9'), 'for="[fd00::9]"')
  t.equal(forwardedFor('pod.example'), null)
  t.equal(parseForwardedFor('for=10.244.1.5'), '10.244.1.5')
  t.equal(parseForwardedFor('for="[FD00::9]"'), 'fd00::9')
  for (const j of [undefined, '', 'for=pod', 'for=10.0.0.1, for=10.0.0.2', 'by=10.0.0.1', 'for="10.0.0.1"', 'for=[fd00::9]', 'for=10.0.0.300']) t.equal(parseForwardedFor(j), null, JSON.stringify(j))
})
