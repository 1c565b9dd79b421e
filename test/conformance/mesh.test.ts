import t, { type Test } from 'tap'
import { uniqueLabName } from '../helpers/names'
import { GRPC_TESTS } from './cases-grpc'
import { HTTP_TESTS } from './cases-http'
import { answeredBy, caseName, weightMismatch, WEIGHT_MAX_TRIES, WEIGHT_REQUESTS, type MeshConformanceTest } from './expectations'
import { CLIENTS, MESH_LAB_UP_MS, MAX_TIME_TO_CONSISTENCY_MS, MeshLab } from './harness'

// Gateway API's mesh conformance suite (conformance/tests/mesh of kubernetes-sigs/
// gateway-api: the MESH-HTTP and MESH-GRPC cases) on a Ferry lab: the suite's setup
// (test/conformance/mesh-lab.yaml), each test's routes applied with `ferry lab apply`
// (test/conformance/routes/, unchanged), its requests sent from inside the pods the suite
// sends from, and its expectations unchanged (test/conformance/cases-*.ts). One lab for
// every test; each test's routes are deleted before the next one's are applied, as the
// suite cleans up its manifests. docs/conformance.md lists the cases and which pass.

/**
 * Tests that cannot pass until HTTPRoute/GRPCRoute are served end to end: they run, and
 * their failures are reported as todo (tap's `todo` on each assertion) rather than
 * failing the file. Remove a test's name here once it passes.
 */
const PENDING: ReadonlySet<string> = new Set([])
const TODO = 'not served yet'
const PENDING_CONSISTENCY_MS = 5_000

const ALL = [...HTTP_TESTS, ...GRPC_TESTS]
for (const name of PENDING) if (!ALL.some((x) => x.shortName === name)) throw new Error(`PENDING names no test: ${name}`)

const lab = new MeshLab(uniqueLabName('gamma'))

t.setTimeout(MESH_LAB_UP_MS + 40 * MAX_TIME_TO_CONSISTENCY_MS)
t.before(async () => { await lab.up() })
t.teardown(async () => { await lab.down() })

t.test('the harness: the echo answers through a plain Service as the conformance echo does', async (t) => {
  const [http, grpc, direct] = await lab.send('v1', [
    { host: 'echo', path: '/harness?x=1', headers: { 'X-Header-Add': 'one', 'Some-Other-Header': 'val' } },
    { protocol: 'grpc', host: 'echo:7070', headers: { 'x-test-case': 'harness' } },
    { host: '$V2_POD_IP:8080', path: '/direct' }
  ])
  t.equal(http[0].code, 200, JSON.stringify(http[0]))
  t.match(http[0].body, {
    path: '/harness?x=1',
    host: 'echo',
    method: 'GET',
    proto: 'HTTP/1.1',
    headers: { 'X-Header-Add': ['one'], 'Some-Other-Header': ['val'] },
    httpPort: '8080',
    namespace: 'gateway-conformance-mesh',
    pod: /^echo-v[12]-/
  }, 'the echo-basic JSON: path as sent, host, method, proto, headers in Go\'s form, namespace, pod')
  t.notOk('Host' in (http[0].body?.headers ?? {}), 'Host is not among the headers (Go\'s server takes it out)')
  t.equal(grpc[0].code, 200, JSON.stringify(grpc[0]))
  t.match(grpc[0].body, {
    fullyQualifiedMethod: '/gateway_api_conformance.echo_basic.grpcecho.GrpcEcho/Echo',
    authority: 'echo:7070',
    context: { namespace: 'gateway-conformance-mesh', pod: /^echo-v[12]-/ }
  }, 'the gRPC echo\'s assertions')
  t.ok((grpc[0].body?.headers ?? []).some((h: any) => h.key === 'x-test-case' && h.value === 'harness'), 'the call\'s metadata among its headers')
  t.match(direct[0], { code: 200, body: { pod: CLIENTS.v2.name, path: '/direct' } }, 'a pod reached by its IP answers with its own name')
})

for (const test of ALL) {
  const todo = PENDING.has(test.shortName) ? TODO : undefined
  t.test(`${test.shortName}${test.provisional === true ? ' (provisional)' : ''}: ${test.description}`, async (t) => {
    await runTest(t, test, todo === undefined ? {} : { todo })
  })
}

/** `extra` goes with every assertion (a pending test's `todo`). */
async function runTest (t: Test, test: MeshConformanceTest, extra: { todo?: string }): Promise<void> {
  const applied: string[] = []
  try {
    for (const file of test.manifests) {
      const r = await lab.apply(file)
      if (r.code !== 0) {
        t.fail(`ferry lab apply ${file}: ${r.stderr.trim()}`, extra)
        return
      }
      applied.push(file)
    }
    // A pending test waits less for consistency: its failures are expected, and the
    // file's run time stays short until routes are served.
    const verdicts = await lab.converge(test.cases, extra.todo === undefined ? MAX_TIME_TO_CONSISTENCY_MS : PENDING_CONSISTENCY_MS)
    test.cases.forEach((c, i) => { t.equal(verdicts[i], null, caseName(c, i), extra) })
    if (test.weights !== undefined) await checkWeights(t, test.weights, extra, extra.todo === undefined ? WEIGHT_MAX_TRIES : 1)
  } finally {
    for (const file of applied.reverse()) {
      const r = await lab.remove(file)
      if (r.code !== 0) t.fail(`ferry lab delete ${file}: ${r.stderr.trim()}`, extra)
    }
  }
}

/**
 * The suite's weight check, retried up to `tries` times as it retries it (statistical
 * variance; a pending test tries once), each try bounded by twice the time to consistency.
 */
async function checkWeights (t: Test, weights: NonNullable<MeshConformanceTest['weights']>, extra: { todo?: string }, tries: number): Promise<void> {
  let why = 'not tried'
  for (let i = 0; i < tries; i++) {
    const [answers] = await lab.send('v1', [weights.request], WEIGHT_REQUESTS, MAX_TIME_TO_CONSISTENCY_MS * 2)
    const failed = answers.filter((a) => a.code !== 200)
    why = answers.length !== WEIGHT_REQUESTS
      ? `${answers.length} answers of ${WEIGHT_REQUESTS}`
      : failed.length > 0 ? `${failed.length} requests failed (${JSON.stringify(failed[0])})` : weightMismatch(answers.map(answeredBy), weights.shares) ?? ''
    if (why === '') break
    t.comment(`distribution try ${i + 1}/${tries}: ${why}`)
  }
  t.equal(why, '', `requests are distributed as the weights say (${JSON.stringify(weights.shares)}, ±5 points over ${WEIGHT_REQUESTS})`, extra)
}
