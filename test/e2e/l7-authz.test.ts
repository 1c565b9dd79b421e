import t from 'tap'
import { join } from 'node:path'
import { REPO, ferry, ferryOk } from '../helpers/cli'
import { counter, execInPod, metrics, pod } from '../helpers/lab'
import { waitFor } from '../helpers/wait'
import { uniqueLabName } from '../helpers/names'

// L7 authorization through Ferry across nodes (test/fixtures/apps/l7-authz-lab.yaml):
// authz/client on node1 asks authz/app on node2, whose namespace is not switched to L7
// — the policy (DENY paths /admin*, ALLOW only GET) engages it by itself. Real curl,
// the real HTTP echo server, one keep-alive connection carrying denied and allowed
// requests, the path-normalization bypass attempts, a client dialing the pod IP, and
// `ferry policy check --path` against the live agent.

const lab = uniqueLabName('e2el7az')
const fixture = join(REPO, 'test/fixtures/apps/l7-authz-lab.yaml')
const policies = join(REPO, 'test/fixtures/policies/l7-deny-admin-allow-get.yaml')
const SVC = 'http://app.authz.svc.cluster.local'

t.setTimeout(240_000)
t.before(async () => {
  await ferryOk(['lab', 'up', '--name', lab, fixture], { timeoutMs: 120_000 })
  await ferryOk(['lab', 'apply', '--lab', lab, policies])
  // In force at node2 once /admin is refused (the agents pick the files up within a poll).
  await waitFor(async () => (await curlCodes([`${SVC}/admin`]))[0]?.code === 403, { timeoutMs: 30_000, intervalMs: 250, what: 'the L7 policy in force' })
})
t.teardown(async () => { await ferry(['lab', 'down', lab], { timeoutMs: 60_000 }) })

interface Answer { readonly code: number, readonly connects: number }

/** Every URL in one curl run: one connection, kept alive (num_connects 0 after the first). */
async function curlCodes (urls: string[], extra: string[] = [], from = 'client'): Promise<Answer[]> {
  const args = ['curl', '-sS', '--path-as-is', '--max-time', '5', ...extra]
  for (const u of urls) args.push('-o', '/dev/null', '-w', '%{http_code} %{num_connects}\\n', u)
  const r = await execInPod(lab, 'authz', from, args)
  return r.stdout.trim().split('\n').filter((l) => l !== '').map((l) => {
    const [code, connects] = l.split(' ').map(Number)
    return { code, connects }
  })
}

t.test('one keep-alive connection: denied requests get 403, allowed ones 200, the connection stays', async (t) => {
  const paths = ['/public', '/admin', '/public', '/admin/users', '/x/y', '/ADMIN']
  const answers = await curlCodes(paths.map((p) => SVC + p))
  t.same(answers.map((a) => a.code), [200, 403, 200, 403, 200, 200], '/ADMIN is another path (case-sensitive, as in Istio)')
  t.same(answers.map((a) => a.connects), [1, 0, 0, 0, 0, 0], 'every request on the one connection curl opened')
  const body = await execInPod(lab, 'authz', 'client', ['curl', '-sS', '--max-time', '5', `${SVC}/admin`])
  t.equal(body.stdout, 'RBAC: access denied', 'the body Istio answers')
  const post = await curlCodes([`${SVC}/public`], ['-X', 'POST'])
  t.same(post.map((a) => a.code), [403], 'only GET is allowed')
})

t.test('path-normalization bypass attempts are denied; the application receives the normalized path', async (t) => {
  const attempts = ['//admin', '/./admin', '/%61dmin', '/public/../admin', '/public/..//admin', '/%2e%2e/admin', '/admin/', '/admin?x=1']
  const answers = await curlCodes(attempts.map((p) => SVC + p))
  t.same(answers.map((a) => a.code), attempts.map(() => 403), attempts.join(' '))
  const echoed = await execInPod(lab, 'authz', 'client', ['curl', '-sS', '--path-as-is', '--max-time', '5', `${SVC}//public/./a/../b?q=1`])
  t.equal(JSON.parse(echoed.stdout).path, '/public/b?q=1', 'merged slashes and dot segments, the query as sent')
  const bad = await curlCodes([`${SVC}/a%zz`])
  t.same(bad.map((a) => a.code), [400], 'an invalid percent-encoding is refused')
})

t.test('a client dialing the pod IP directly meets the same rules', async (t) => {
  const ip = pod(lab, 'authz', 'app').ips[0]
  const answers = await curlCodes([`http://${ip}:8080/public`, `http://${ip}:8080/admin`, `http://${ip}:8080//admin`])
  t.same(answers.map((a) => a.code), [200, 403, 403])
})

const SAME_NODE_ATTEMPTS = ['/public', '/admin', '//admin', '/./admin', '/%61dmin', '/public/../admin']

t.test('same node, through the Service (L7 at the source): the destination\'s decisions on the normalized path', async (t) => {
  const answers = await curlCodes(SAME_NODE_ATTEMPTS.map((p) => SVC + p), [], 'neighbour')
  t.same(answers.map((a) => a.code), [200, 403, 403, 403, 403, 403])
  const echoed = await execInPod(lab, 'authz', 'neighbour', ['curl', '-sS', '--path-as-is', '--max-time', '5', `${SVC}//public/./b`])
  t.equal(JSON.parse(echoed.stdout).path, '/public/b')
})

// No source decision here (a pod IP): the destination's, made on this node from the
// app's workload (its L7 policy), handles the requests.
t.test('same node, the pod IP dialed directly: the destination\'s L7 decisions', async (t) => {
  const ip = pod(lab, 'authz', 'app').ips[0]
  const answers = await curlCodes(SAME_NODE_ATTEMPTS.map((p) => `http://${ip}:8080${p}`), [], 'neighbour')
  t.same(answers.map((a) => a.code), [200, 403, 403, 403, 403, 403])
  t.same(answers.map((a) => a.connects), [1, 0, 0, 0, 0, 0], 'every request on the one connection curl opened')
  const echoed = await execInPod(lab, 'authz', 'neighbour', ['curl', '-sS', '--path-as-is', '--max-time', '5', `http://${ip}:8080//public/./b`])
  t.equal(JSON.parse(echoed.stdout).path, '/public/b', 'the application receives the normalized path')
  const post = await curlCodes([`http://${ip}:8080/public`], ['-X', 'POST'], 'neighbour')
  t.same(post.map((a) => a.code), [403], 'only GET is allowed')
})

t.test('same node, the pod IP dialed directly: bytes that are not HTTP do not get past the L7 policy', async (t) => {
  const greeter = pod(lab, 'authz', 'greeter').ips[0]
  const r = await execInPod(lab, 'authz', 'neighbour', ['node', 'greeter-client.js', '--host', greeter, '--port', '2525', '--timeout-ms', '3000'])
  t.not(r.code, 0, `refused: ${r.stdout}`)
  t.match(JSON.parse(r.stdout), { ok: false, echoes: [] }, 'a server-first program: no line is echoed through')
})

t.test('bytes that are not HTTP on a port the L7 policy selects: decided as a connection, the L7 DENY applies without its L7 conditions', async (t) => {
  const ip = pod(lab, 'authz', 'greeter').ips[0]
  const r = await execInPod(lab, 'authz', 'client', ['node', 'greeter-client.js', '--host', ip, '--port', '2525', '--timeout-ms', '3000'])
  t.not(r.code, 0, `refused: ${r.stdout}`)
  t.match(JSON.parse(r.stdout), { ok: false, echoes: [] }, 'no line is echoed through')
  const text = await metrics(lab, 'node2')
  t.ok(counter(text, 'ferry_authz_denied_total', { policy: 'authz/deny-admin', basis: 'deny-matched' }) >= 1)
})

t.test('denials are counted by policy on the destination node', async (t) => {
  const text = await metrics(lab, 'node2')
  t.ok(counter(text, 'ferry_authz_denied_total', { policy: 'authz/deny-admin', basis: 'deny-matched' }) >= 10, 'the /admin requests')
  t.ok(counter(text, 'ferry_authz_denied_total', { policy: '-', basis: 'no-allow-matched' }) >= 1, 'the POST')
})

t.test('ferry policy check --path /admin --method GET explains it from the live agent', async (t) => {
  const r = await ferry(['policy', 'check', '--lab', lab, '--node', 'node2', '--from', 'authz/client', '--to', 'authz/app:80', '--path', '/admin', '--method', 'GET'])
  t.equal(r.code, 3, `denied (exit 3): ${r.stderr}`)
  t.match(r.stdout, /request {5}GET \/admin\n/)
  t.match(r.stdout, /decided by {2}DENY policy authz\/deny-admin, rule 0/)
  t.match(r.stdout, /because {5}spec\.rules\[0\]\.to\[0\]\.operation\.paths: request path "\/admin" matches paths\[0\] "\/admin\*"/)
  const ok = await ferry(['policy', 'check', '--lab', lab, '--node', 'node2', '--from', 'authz/client', '--to', 'authz/app:80', '--path', '/public'])
  t.equal(ok.code, 0, ok.stdout)
  t.match(ok.stdout, /decided by {2}ALLOW policy authz\/allow-get, rule 0/)
  t.match(ok.stdout, /destination: pod authz\/app port 8080: L7 engaged[^\n]*authz\/deny-admin|L7 engaged/)
})
