import t, { type Test } from 'tap'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseAllDocuments, stringify } from 'yaml'
import { loadLab } from '../../src/lab/labs'
import { netnsPath } from '../../src/lab/topology'
import { openNetns } from '../../src/native/netns'
import { REPO, ferry, ferryOk } from '../helpers/cli'
import { execInPod } from '../helpers/lab'
import { uniqueLabName } from '../helpers/names'
import { OTLP_KIND, startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from '../helpers/otlp-receiver'

// Tracing across the lab with the example shop: dev/client (node2) asks web (node1) for a
// checkout with a W3C traceparent; web calls cart (cart-a on node1 or cart-b on node2),
// cart calls payments (node2). The shop's programs forward the trace headers
// (examples/shop/http-json.js). With 100 % sampling the agents export, over OTLP/gRPC to
// a receiver this test serves in the lab's underlay (built from OpenTelemetry's .proto
// files), a client and a server span per hop, all in the client's trace, each the child
// of the one before: client → proxy (node2) → proxy (node1) → web → proxy → … → payments.
// An echo pod shows what an application receives: the same trace, the proxy's span as parent.
//
// The shop's manifest is used as it is but for `ferry.dev/l7: enabled` on its namespace
// (L7 at the source for its Services, at the destination for its pods), the containers'
// working directory (the copy lives elsewhere) and the echo pod.

const lab = uniqueLabName('l7trace')
const SHOP = join(REPO, 'examples', 'shop')
const APPS = join(REPO, 'test', 'fixtures', 'apps')
/** The controller's address on the underlay: every node reaches it over its uplink. */
const RECEIVER = { host: '172.30.0.254', port: 4317 }
const dir = mkdtempSync(join(tmpdir(), 'ferry-l7trace-'))
let receiver: OtlpReceiver | null = null

const ECHO = `
apiVersion: v1
kind: Pod
metadata: { name: echo, namespace: shop, labels: { app: echo } }
spec:
  nodeName: node1
  serviceAccountName: echo
  containers:
    - name: echo
      command: ["node", "http-echo-server.js"]
      workingDir: ${APPS}
      env: [{ name: PORT, value: "8080" }, { name: POD_NAME, value: echo }]
      ports: [{ name: http, containerPort: 8080 }]
---
apiVersion: v1
kind: Service
metadata: { name: echo, namespace: shop }
spec:
  selector: { app: echo }
  ports: [{ name: http, port: 8080, targetPort: http }]
`

/** shop.yaml and dev.yaml with L7 on for the shop, and the echo pod. */
function manifest (): string {
  const docs = [...parseAllDocuments(readFileSync(join(SHOP, 'shop.yaml'), 'utf8')), ...parseAllDocuments(readFileSync(join(SHOP, 'dev.yaml'), 'utf8'))].map((d) => d.toJSON())
  for (const o of docs) {
    if (o.kind === 'Namespace' && o.metadata.name === 'shop') o.metadata.labels = { ...o.metadata.labels, 'ferry.dev/l7': 'enabled' }
    if (o.kind === 'Pod') for (const c of o.spec.containers) c.workingDir ??= SHOP
  }
  const file = join(dir, 'shop-l7.yaml')
  writeFileSync(file, docs.map((d) => stringify(d)).join('---\n') + '---\n' + ECHO)
  return file
}

t.setTimeout(240_000)
t.before(async () => {
  await ferryOk(['lab', 'up', '--name', lab, '--otlp-endpoint', `http://${RECEIVER.host}:${RECEIVER.port}`, '--trace-sampling', '100', manifest()], { timeoutMs: 180_000 })
  // The receiver listens in the lab's underlay, beside the controller: the agents' exporters
  // connect only when they have spans to send, so it may start after them.
  const state = loadLab(lab)
  const underlay = openNetns(netnsPath(state.plan.paths, state.plan.underlay.netns))
  try {
    const fd = underlay.listen({ family: 4, address: RECEIVER.host, port: RECEIVER.port })
    receiver = await startOtlpReceiver({ protocol: 'grpc', fd, host: RECEIVER.host, port: RECEIVER.port })
  } finally {
    underlay.close()
  }
})
t.teardown(async () => {
  await receiver?.close()
  await ferry(['lab', 'down', lab], { timeoutMs: 60_000 })
  rmSync(dir, { recursive: true, force: true })
})

const hex = (n: number): string => Array.from({ length: n }, () => Math.floor(Math.random() * 16).toString(16)).join('')

async function curlFromDev (url: string, traceparent: string): Promise<string> {
  const r = await execInPod(lab, 'dev', 'client', ['curl', '-sS', '--max-time', '15', '-H', `traceparent: ${traceparent}`, url])
  if (r.code !== 0) throw new Error(`curl ${url}: ${r.stderr}`)
  return r.stdout
}

function describe (s: ReceivedSpan): string {
  return `${s.kind === OTLP_KIND.CLIENT ? 'CLIENT' : 'SERVER'} ${String(s.resource['service.name'])}@${String(s.resource['k8s.node.name'])} ${s.spanId}<-${String(s.parentSpanId)} → ${String(s.attributes['ferry.destination.workload'] ?? '?')}`
}

t.test('a checkout web → cart → payments: six spans in the client\'s trace, each the child of the one before, across both nodes — through either cart', async (t) => {
  // Until both carts served one: cart-a (web's node: the same-node path) and cart-b (through
  // the tunnel). Each worker balances round robin on its own, so a few may take the same.
  const carts = new Set<string>()
  for (let i = 0; i < 8 && carts.size < 2; i++) await t.test(`checkout ${i + 1}`, async (t) => { carts.add(await tracedCheckout(t)) })
  t.same([...carts].sort(), ['cart-a', 'cart-b'], 'both carts were on a traced chain')
})

/** One checkout from dev/client; checks its trace and returns the cart that served it. */
async function tracedCheckout (t: Test): Promise<string> {
  const traceId = hex(32)
  const parent = hex(16)
  const out = JSON.parse(await curlFromDev('http://web.shop:8080/checkout?user=tracer&amount=3', `00-${traceId}-${parent}-01`))
  t.match(out, { web: 'web', cart: /^cart-[ab]$/, payments: 'payments', user: 'tracer', amount: 3 }, 'the checkout went through the chain')
  const r = receiver as OtlpReceiver
  const spans = (await r.waitForSpans((all) => all.filter((s) => s.traceId === traceId).length >= 6, 30_000)).filter((s) => s.traceId === traceId)
  t.comment(spans.map(describe).join('\n'))
  t.equal(spans.length, 6, 'a client and a server span per hop, nothing more')
  // Walk the chain from the client's span down.
  const children = (id: string): ReceivedSpan[] => spans.filter((s) => s.parentSpanId === id)
  const chain: ReceivedSpan[] = []
  let at = parent
  for (;;) {
    const next = children(at)
    if (next.length === 0) break
    t.equal(next.length, 1, `one child of ${at}`)
    chain.push(next[0] as ReceivedSpan)
    at = (next[0] as ReceivedSpan).spanId
  }
  t.equal(chain.length, 6, 'one unbroken chain from the client\'s span')
  t.same(chain.map((s) => s.kind), [OTLP_KIND.CLIENT, OTLP_KIND.SERVER, OTLP_KIND.CLIENT, OTLP_KIND.SERVER, OTLP_KIND.CLIENT, OTLP_KIND.SERVER], 'client, server, per hop')
  // Workloads as Istio names them (src/discovery/workload-name.ts): the pods web and payments, and cart-a/cart-b's Deployment cart.
  t.same(chain.map((s) => s.attributes['ferry.destination.workload']), ['web', 'web', 'cart', 'cart', 'payments', 'payments'], 'the hops are web, cart, payments in order')
  t.same(chain.filter((s) => s.kind === OTLP_KIND.CLIENT).map((s) => s.attributes['ferry.destination.service']), ['web', 'cart', 'payments'].map((s) => `${s}.shop.svc.cluster.local`), 'each client span names the Service called')
  t.same(chain.map((s) => s.resource['service.name']), ['client.dev', 'web.shop', 'web.shop', 'cart.shop', 'cart.shop', 'payments.shop'],
    'each span under its workload: a client span the caller\'s, a server span the callee\'s')
  t.equal(chain[0]?.resource['k8s.node.name'], 'node2', 'the first client span is made on dev/client\'s node')
  t.equal(chain[1]?.resource['k8s.node.name'], 'node1', 'web\'s server span on web\'s node')
  t.equal(chain[3]?.resource['k8s.node.name'], out.cart === 'cart-a' ? 'node1' : 'node2', `${String(out.cart)}'s server span on its node`)
  t.equal(chain[5]?.resource['k8s.node.name'], 'node2', 'payments\' server span on its node')
  for (const s of chain) {
    t.match(s.attributes, { 'http.request.method': s.attributes['ferry.destination.workload'] === 'payments' ? 'POST' : 'GET', 'http.response.status_code': 200, 'network.protocol.version': '1.1' }, describe(s))
  }
  t.equal(chain[1]?.attributes['ferry.source.principal'], 'spiffe://cluster.local/ns/dev/sa/client', 'the destination knows the client\'s identity from the tunnel')
  t.equal(new Set(chain.map((s) => s.attributes['ferry.request_id'])).size, 1, 'one x-request-id along the chain (the shop forwards it)')
  return String(out.cart)
}

t.test('the application receives the client\'s trace with the proxy\'s span as parent, and an x-request-id', async (t) => {
  const traceId = hex(32)
  const parent = hex(16)
  const echo = JSON.parse(await curlFromDev('http://echo.shop:8080/headers', `00-${traceId}-${parent}-01`))
  const m = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/.exec(String(echo.headers.traceparent))
  t.ok(m !== null, `a sampled traceparent reached the application: ${String(echo.headers.traceparent)}`)
  t.equal(m?.[1], traceId, 'the client\'s trace')
  t.match(echo.headers['x-request-id'], /^[0-9a-f-]{36}$/, 'an x-request-id was added')
  const r = receiver as OtlpReceiver
  const spans = (await r.waitForSpans((all) => all.filter((s) => s.traceId === traceId).length >= 2, 30_000)).filter((s) => s.traceId === traceId)
  const server = spans.find((s) => s.kind === OTLP_KIND.SERVER)
  const client = spans.find((s) => s.kind === OTLP_KIND.CLIENT)
  t.equal(server?.spanId, m?.[2], 'the parent the application sees is the destination proxy\'s server span')
  t.equal(server?.parentSpanId, client?.spanId, 'whose parent is the source proxy\'s client span')
  t.equal(client?.parentSpanId, parent, 'whose parent is the client\'s')
})
