import t from 'tap'
import { connect, createServer, type Socket } from 'node:net'
import { once } from 'node:events'
import { parseClusterList } from '../../src/discovery/cluster-list'
import { InboundAuthorizer, resetEnds } from '../../src/proxy/authorize'
import { Conn } from '../../src/proxy/conn'
import { listText, namespaceObj, podObj } from '../discovery/fixture'
import { ap, policySet } from '../policy/helpers'
import { captureLog } from './harness'

// The authorize stage on its own: no policy set allows everything; a decision is put on
// the connection for the access log and counted by policy; dry-run is logged, never
// enforced; a new set closes live connections it denies; an evaluator failure denies
// and never throws.

const snapshot = parseClusterList(listText([namespaceObj('prod', {}), podObj({ name: 'db', namespace: 'prod', labels: { app: 'db' } })]), 'f', 1)
const db = snapshot.pods[0]
const DENY_DEV = ap('prod', 'deny-dev', 'action: DENY\nrules:\n  - from:\n      - source:\n          namespaces: ["dev"]')
const DRY_DENY_DEV = ap('prod', 'deny-dev', 'action: DENY\nrules:\n  - from:\n      - source:\n          namespaces: ["dev"]', { annotations: { 'istio.io/dry-run': 'true' } })

function conn (principal: string | null, ip = '10.244.1.7', port = 8080): Conn {
  const c = new Conn('inbound', null, () => 0)
  c.sourcePrincipal = principal
  c.source.ip = ip
  c.originalDst = { address: '10.244.0.5', port, family: 4 }
  return c
}

function counting (): { metrics: { authzDenied: (p: string, b: string) => void }, denied: string[] } {
  const denied: string[] = []
  return { metrics: { authzDenied: (p, b) => { denied.push(`${p} ${b}`) } }, denied }
}

t.test('no policy set: allowed, nothing recorded', async (t) => {
  const a = new InboundAuthorizer({ log: captureLog().log })
  const c = conn('spiffe://cluster.local/ns/dev/sa/web')
  t.equal(a.authorize(c, db), true)
  t.equal(c.authz, null)
})

t.test('with a configuration source (requireConfig), fail closed until its first valid snapshot', async (t) => {
  const { metrics, denied } = counting()
  const a = new InboundAuthorizer({ log: captureLog().log, metrics, requireConfig: true })
  t.match(a.readiness(), { ready: false, required: true, generation: 0, reason: /no configuration loaded yet/ })
  const c = conn('spiffe://cluster.local/ns/stage/sa/web')
  t.equal(a.authorize(c, db), false, 'denied: the policies exist but are not known yet')
  t.same(c.authz, { allowed: false, basis: 'no-config' })
  t.equal(a.authorize(conn(null), db, 'dev'), false, 'same-node and plaintext sources alike')
  t.same(denied, ['- no-config', '- no-config'])
  a.rejected(['/etc/ferry: cannot read (ENOENT)'])
  t.match(a.readiness(), { ready: false, reason: /cannot be read and no configuration was ever in force/, issues: [/\/etc\/ferry: cannot read/] }, 'readiness says why')
  a.swap(policySet(''))
  t.same(a.readiness(), { ready: true, required: true, generation: 1 }, 'ready with the first valid snapshot; the issues are gone')
  t.equal(a.authorize(conn('spiffe://cluster.local/ns/stage/sa/web'), db), true, 'then the policies decide')
})

t.test('without a configuration source: allow all, always ready', async (t) => {
  const a = new InboundAuthorizer({ log: captureLog().log })
  t.same(a.readiness(), { ready: true, required: false, generation: 0 })
  t.equal(a.authorize(conn(null), db), true)
})

t.test('DENY by namespace: from the verified principal, or the known namespace of a same-node pod; counted by policy', async (t) => {
  const { metrics, denied } = counting()
  const a = new InboundAuthorizer({ log: captureLog().log, metrics })
  a.swap(policySet(DENY_DEV))
  const dev = conn('spiffe://cluster.local/ns/dev/sa/web')
  t.equal(a.authorize(dev, db), false)
  t.match(dev.authz, { allowed: false, basis: 'deny-matched', policy: 'prod/deny-dev', rule: 0 })
  t.equal(a.authorize(conn('spiffe://cluster.local/ns/stage/sa/web'), db), true)
  t.equal(a.authorize(conn(null), db), true, 'a plaintext peer has no namespace')
  t.equal(a.authorize(conn(null), db, 'dev'), false, 'a same-node pod without a certificate: its namespace is known')
  t.same(denied, ['prod/deny-dev deny-matched', 'prod/deny-dev deny-matched'])
})

t.test('dry-run: logged, not enforced', async (t) => {
  const { log, lines } = captureLog()
  const a = new InboundAuthorizer({ log })
  a.swap(policySet(DRY_DENY_DEV))
  const c = conn('spiffe://cluster.local/ns/dev/sa/web')
  t.equal(a.authorize(c, db), true)
  t.match(c.authz, { allowed: true, dryRunAllowed: false, dryRun: ['DENY prod/deny-dev rule 0 matched'] })
  t.match(lines.find((l) => l.msg === 'authorization dry-run'), { dryRunAllowed: false, destination: 'prod/db', port: 8080 })
})

t.test('never throws: an evaluation failure denies and is logged', async (t) => {
  const { log, lines } = captureLog()
  const a = new InboundAuthorizer({ log })
  const set = policySet(DENY_DEV)
  a.swap({ ...set, authz: { forWorkload: () => { throw new Error('boom') } } as any })
  t.equal(a.authorize(conn(null), db), false)
  t.ok(lines.some((l) => l.msg === 'authorization failed; denying'))
})

t.test('a new policy set resets live connections it denies and keeps the others', async (t) => {
  const server = createServer((s) => { s.on('error', () => {}); s.pipe(s) })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => { server.close() })
  const port = (server.address() as { port: number }).port
  const a = new InboundAuthorizer({ log: captureLog().log })
  a.swap(policySet(''))
  const open = async (principal: string): Promise<{ c: Conn, s: Socket, closed: Promise<string> }> => {
    const s = connect(port, '127.0.0.1')
    await once(s, 'connect')
    const closed = new Promise<string>((resolve) => { s.on('error', (e: NodeJS.ErrnoException) => { resolve(e.code ?? 'error') }); s.on('close', () => { resolve('close') }) })
    const c = conn(principal)
    t.equal(a.authorize(c, db), true)
    const untrack = a.track(c, db, null, () => { c.end('denied', null); resetEnds(s) })
    s.on('close', untrack)
    return { c, s, closed }
  }
  const dev = await open('spiffe://cluster.local/ns/dev/sa/web')
  const stage = await open('spiffe://cluster.local/ns/stage/sa/web')
  t.equal(a.liveCount(), 2)
  t.equal(a.swap(policySet(DENY_DEV)), 1, 'one connection closed')
  t.equal(dev.c.result, 'denied')
  t.match(dev.c.authz, { policy: 'prod/deny-dev' })
  await dev.closed
  t.equal(stage.c.result, null, 'the other connection lives on')
  stage.s.write('ping')
  const [echo] = await once(stage.s, 'data') as [Buffer]
  t.equal(echo.toString(), 'ping')
  stage.s.destroy()
})

const L7_POLICIES = ap('prod', 'deny-admin', 'action: DENY\nrules:\n  - to:\n      - operation:\n          ports: ["8080"]\n          paths: ["/admin*"]') +
  ap('prod', 'allow-get', 'rules:\n  - to:\n      - operation:\n          methods: ["GET"]')

function view (method: string, path: string): { method: string, path: string, host: string, header: (n: string) => string | undefined } {
  return { method, path, host: 'db', header: () => undefined }
}

t.test('authorizeRequest: each request decided on its own; the connection keeps the last request\'s fields; denials counted', async (t) => {
  const { metrics, denied } = counting()
  const a = new InboundAuthorizer({ log: captureLog().log, metrics })
  a.swap(policySet(L7_POLICIES))
  const c = conn('spiffe://cluster.local/ns/prod/sa/api')
  t.equal(a.authorizeRequest(c, db, view('GET', '/admin')), false)
  t.match(c.authz, { allowed: false, basis: 'deny-matched', policy: 'prod/deny-admin', rule: 0 })
  t.equal(a.authorizeRequest(c, db, view('GET', '/public')), true, 'the next request on the same connection is allowed')
  t.match(c.authz, { allowed: true, basis: 'allow-matched', policy: 'prod/allow-get' })
  t.equal(a.authorizeRequest(c, db, view('DELETE', '/public')), false)
  t.match(c.authz, { allowed: false, basis: 'no-allow-matched' })
  t.same(denied, ['prod/deny-admin deny-matched', '- no-allow-matched'])
  t.equal(a.authorize(conn('spiffe://cluster.local/ns/prod/sa/api'), db), false, 'a connection that is not HTTP on that port: the L7 DENY applies without its L7 conditions')
  t.equal(a.authorize(conn('spiffe://cluster.local/ns/prod/sa/api', undefined, 9090), db), false, 'on another port the ALLOW cannot match it either')
})

t.test('l7PolicyFor: the L7 policy that selects the pod on that port; null without a policy set', async (t) => {
  const a = new InboundAuthorizer({ log: captureLog().log })
  t.equal(a.l7PolicyFor(db, 8080), null)
  a.swap(policySet(L7_POLICIES))
  t.equal(a.l7PolicyFor(db, 8080), 'prod/deny-admin')
  t.equal(a.l7PolicyFor(db, 9090), 'prod/allow-get')
  a.swap(policySet(DENY_DEV))
  t.equal(a.l7PolicyFor(db, 8080), null, 'a new set answers anew')
})

t.test('a swap does not close an L7 connection (its requests are decided one by one), only L4 ones it denies', async (t) => {
  const a = new InboundAuthorizer({ log: captureLog().log })
  a.swap(policySet(''))
  let closed = ''
  const l4 = conn('spiffe://cluster.local/ns/prod/sa/api')
  const l7 = conn('spiffe://cluster.local/ns/prod/sa/api')
  a.track(l4, db, null, () => { closed += 'l4' })
  a.track(l7, db, null, () => { closed += 'l7' }, true)
  t.equal(a.swap(policySet(L7_POLICIES)), 1)
  t.equal(closed, 'l4')
})
