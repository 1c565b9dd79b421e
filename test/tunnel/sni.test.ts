import t from 'tap'
import { spiffeIdOf } from '../../src/identity/spiffe-id'
import { isTunnelSni, SniIndex, sniOf } from '../../src/tunnel'

// The SNI encoding is a wire contract between agents (possibly of different versions):
// base32(sha256(uri)[0..20]) + ".id.ferry.internal". These vectors pin it; they were
// cross-checked with Python's base64.b32encode(hashlib.sha256(uri).digest()[:20]).lower().

const WEB = 'spiffe://cluster.local/ns/app/sa/web'
const DB = 'spiffe://cluster.local/ns/data/sa/db'

t.test('known vectors', async (t) => {
  t.equal(sniOf(WEB), '3ljmqafnrmkdacv6af36qjjdt6gnmcou.id.ferry.internal')
  t.equal(sniOf(DB), 'gz27shl2yz5gavqesjambdszclijwzfk.id.ferry.internal')
  t.equal(sniOf(spiffeIdOf('cluster.local', 'app', 'web')), sniOf(WEB), 'a SpiffeId and its URI encode alike')
})

t.test('the name is a valid host name of fixed length, distinct per identity', async (t) => {
  const names = ['app/web', 'app/api', 'data/db', 'a/b'].map((x) => sniOf(`spiffe://cluster.local/ns/${x.split('/')[0]}/sa/${x.split('/')[1]}`))
  names.push(sniOf('spiffe://other.example/ns/app/sa/web'), sniOf(`spiffe://cluster.local/ns/${'n'.repeat(63)}/sa/${'s'.repeat(253)}`))
  for (const n of names) {
    t.ok(isTunnelSni(n), n)
    t.equal(n.length, 50)
    t.match(n, /^[a-z2-7]{32}\.id\.ferry\.internal$/)
  }
  t.equal(new Set(names).size, names.length, 'trust domain, namespace and account all count')
  for (const bad of ['', 'web.app.svc', '3ljmqafnrmkdacv6af36qjjdt6gnmcou.id.ferry.internal.', '3LJMQAFNRMKDACV6AF36QJJDT6GNMCOU.id.ferry.internal', '3ljmqafnrmkdacv6af36qjjdt6gnmco1.id.ferry.internal']) {
    t.notOk(isTunnelSni(bad), `not ours: ${JSON.stringify(bad)}`)
  }
})

t.test('SniIndex maps names back to the identities the agent serves', async (t) => {
  const index = new SniIndex()
  t.equal(index.add(WEB), sniOf(WEB))
  index.add(spiffeIdOf('cluster.local', 'data', 'db'))
  t.equal(index.size, 2)
  t.equal(index.identityOf(sniOf(DB)), DB)
  t.equal(index.identityOf(sniOf('spiffe://cluster.local/ns/x/sa/y')), null)
  index.delete(WEB)
  t.equal(index.identityOf(sniOf(WEB)), null)
  t.equal(index.size, 1)
})
