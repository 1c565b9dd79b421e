import t from 'tap'
import { join } from 'node:path'
import { REPO, ferry, ferryOk } from '../helpers/cli'
import { agentGet } from '../helpers/agent-admin'
import { accessLines, execInPod, labDir } from '../helpers/lab'
import { waitFor } from '../helpers/wait'
import { uniqueLabName } from '../helpers/names'

// The seed's case in the shop lab, as examples/policies/README.md tells a user to run it:
// the shop (examples/shop/shop.yaml) plays production, examples/shop/dev.yaml adds
// namespace dev with a client pod. Before the policy dev/client reaches the shop; after
// `ferry lab apply examples/policies/deny-dev-to-shop.yaml` it is refused — through the
// tunnel and on the same node — while the shop's own chain web → cart → payments → db
// keeps working, and `ferry policy check` explains the decision, from the files with the
// lab's cluster file and from a running agent's live configuration.

const lab = uniqueLabName('shoppol')
const POLICY = join(REPO, 'examples/policies/deny-dev-to-shop.yaml')
const WEB = 'http://web.shop:8080/'
const CART = 'http://cart.shop:8080/'

t.setTimeout(180_000)
t.before(async () => {
  await ferryOk(['lab', 'up', '--name', lab, join(REPO, 'examples/shop/shop.yaml'), join(REPO, 'examples/shop/dev.yaml')], { timeoutMs: 150_000 })
})
t.teardown(async () => { await ferry(['lab', 'down', lab], { timeoutMs: 60_000 }) })

async function fromDev (url: string): Promise<{ code: number, stdout: string, stderr: string }> {
  return await execInPod(lab, 'dev', 'client', ['curl', '-sS', '--max-time', '5', url])
}

async function checkout (user: string): Promise<any> {
  const r = await execInPod(lab, 'shop', 'web', ['curl', '-sS', '--max-time', '10', `http://web:8080/checkout?user=${user}&amount=5`])
  if (r.code !== 0) throw new Error(`checkout failed: ${r.stderr}`)
  return JSON.parse(r.stdout)
}

t.test('before the policy: dev/client reaches the shop', async (t) => {
  const web = await fromDev(WEB)
  t.equal(web.code, 0, `dev/client → shop/web: ${web.stderr}`)
  t.match(JSON.parse(web.stdout), { shop: 'ferry example shop', served_by: 'web' })
  const cart = await fromDev(CART)
  t.equal(cart.code, 0, `dev/client → shop/cart: ${cart.stderr}`)
})

t.test('after ferry lab apply deny-dev-to-shop.yaml: dev is refused, the shop works', async (t) => {
  const out = await ferryOk(['lab', 'apply', '--lab', lab, POLICY])
  t.match(out, /applied .*deny-dev-to-shop\.yaml/)
  const started = Date.now()
  for (const node of ['node1', 'node2']) {
    await waitFor(async () => {
      const r = await agentGet(lab, node, '/debug/config')
      return r.body.resources?.some((x: { ref: string }) => x.ref === 'shop/deny-dev-to-shop')
    }, { timeoutMs: 20_000, intervalMs: 20, what: `${node} to enforce shop/deny-dev-to-shop` })
  }
  t.comment(`both agents enforce it ${Date.now() - started} ms after lab apply returned`)

  const web = await fromDev(WEB)
  t.not(web.code, 0, 'dev/client → shop/web (node1, through the tunnel) refused')
  // Normally reset once the tunnel answers 403; once in CI the attempt was refused at
  // connect instead (not yet explained, see the closing note): both are refusals.
  t.match(web.stderr, /reset|Recv failure|Empty reply|Couldn't connect/i, `curl says the connection was refused: ${web.stderr.trim()}`)
  // cart is cart-a (node1: the tunnel) and cart-b (node2: the same node as the client), in turn.
  for (let i = 0; i < 2; i++) t.not((await fromDev(CART)).code, 0, `dev/client → shop/cart, attempt ${i + 1}: refused`)
  for (const [node, pod] of [['node1', 'web'], ['node1', 'cart-a'], ['node2', 'cart-b']]) {
    const line = await waitFor(() => accessLines(lab, node).find((a) => a.direction === 'inbound' && a.result === 'denied' && a.destination?.pod === pod),
      { what: `a denied inbound line for ${pod} on ${node}` })
    t.match(line, { source: { namespace: 'dev', pod: 'client' }, source_principal: 'spiffe://cluster.local/ns/dev/sa/client', authz: { allowed: false, basis: 'deny-matched', policy: 'shop/deny-dev-to-shop', rule: 0 } },
      `${node}: shop/${pod} denied dev/client, naming the policy`)
  }

  const orders = [await checkout('alice'), await checkout('bob'), await checkout('carol')]
  for (const o of orders) t.match(o, { web: 'web', cart: /^cart-[ab]$/, payments: 'payments', amount: 5, user_payments: 1 }, `shop checkout for ${String(o.user)}: web → cart → payments → db`)
  t.same(new Set(orders.map((o) => o.cart)), new Set(['cart-a', 'cart-b']), 'both carts served (same node and tunnel)')
  t.notOk(['node1', 'node2'].some((n) => accessLines(lab, n).some((a) => a.result === 'denied' && a.source?.namespace === 'shop')), 'no shop connection denied')
})

t.test('ferry policy check explains it: from the files with the lab\'s cluster file', async (t) => {
  const cluster = join(labDir(lab), 'cluster.json')
  const denied = await ferry(['policy', 'check', '--dir', POLICY, '--cluster-file', cluster, '--from', 'dev/client', '--to', 'shop/web:8080'])
  t.equal(denied.code, 3, `exit 3: denied (${denied.stderr})`)
  t.match(denied.stdout, /^DENIED {2}pod dev\/client \(spiffe:\/\/cluster\.local\/ns\/dev\/sa\/client, 10\.244\.2\.\d+\)\n {5}→ {3}service shop\/web:8080 → pod web \(workload web\) port 8080\n/)
  t.match(denied.stdout, /decided by {2}DENY policy shop\/deny-dev-to-shop, rule 0 {2}\(examples\/policies\/deny-dev-to-shop\.yaml:\d+\)/)
  t.match(denied.stdout, /because {5}spec\.rules\[0\]\.from\[0\]\.source\.namespaces: source namespace "dev" matches namespaces\[0\] "dev"/)
  const allowed = await ferry(['policy', 'check', '--dir', POLICY, '--cluster-file', cluster, '--from', 'shop/web', '--to', 'shop/cart:8080'])
  t.equal(allowed.code, 0, 'shop/web → shop/cart: allowed (exit 0)')
  t.match(allowed.stdout, /^ALLOWED {2}pod shop\/web [^\n]*\n {5}→ {3}service shop\/cart:8080 → pod cart-a \(workload cart\) port 8080\n {2}decided by {2}default: no DENY policy matched and no ALLOW policy applies to the workload\n/,
    'the policy applies to shop/cart too, and does not match a source in shop')
})

t.test('ferry policy check --lab explains it from the running agent\'s live configuration', async (t) => {
  const config = await agentGet(lab, 'node1', '/debug/config')
  t.equal(config.status, 200)
  t.match(config.body, { node: 'node1', config: { ready: true, required: true }, resources: [{ kind: 'AuthorizationPolicy', ref: 'shop/deny-dev-to-shop', apiVersion: 'security.istio.io/v1', summary: 'DENY', file: /config\/deny-dev-to-shop\.yaml$/ }] }, '/debug/config lists the policy in force')
  const generation: number = config.body.generation
  const r = await ferry(['policy', 'check', '--lab', lab, '--from', 'dev/client', '--to', 'shop/web:8080'])
  t.equal(r.code, 3, `exit 3: denied (${r.stderr})`)
  t.match(r.stdout, /decided by {2}DENY policy shop\/deny-dev-to-shop, rule 0/)
  t.match(r.stdout, new RegExp(`answered by agent node1 of lab ${lab} \\(127\\.0\\.0\\.1:15020 in netns \\S+\\): live configuration generation ${generation}\\n$`))
  const json = await ferry(['policy', 'check', '--lab', lab, '--node', 'node2', '--json', '--from', 'dev/client', '--to', 'shop/cart:8080'])
  t.equal(json.code, 3)
  const body = JSON.parse(json.stdout)
  t.match(body, { allowed: false, answeredBy: /agent node2 of lab/, source: /^pod dev\/client/ })
  t.equal(body.results.length, 1, 'cart-a and cart-b share their labels: one workload to explain')
  t.match(body.results[0].explanation.decision, { allowed: false, basis: 'deny-matched', policy: 'shop/deny-dev-to-shop' })
  const bad = await ferry(['policy', 'check', '--lab', lab, '--from', 'dev/nobody', '--to', 'shop/web:8080'])
  t.equal(bad.code, 1, 'an unknown pod is an error')
  t.match(bad.stderr, /FERRY_ERR_WORKLOAD_NOT_FOUND.*no pod nobody in namespace dev/)
})

t.test('ferry lab delete: dev reaches the shop again', async (t) => {
  await ferryOk(['lab', 'delete', '--lab', lab, 'deny-dev-to-shop.yaml'])
  await waitFor(async () => (await fromDev(WEB)).code === 0, { timeoutMs: 20_000, what: 'dev/client allowed again' })
  t.pass('dev/client → shop/web allowed again')
})
