import t from 'tap'
import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { connect } from 'node:http2'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { echoRequest, GRPC_HEADERS, grpcFrame, UNARY_PATH, unaryLoad } from '../../benchmarks/lib/grpc-load'
import { h2loadArgs } from '../../benchmarks/lib/h2load'
import { clientSideHttpConfig, serverSideHttpConfig } from '../../benchmarks/lib/nginx-http-peer'
import { makePeerCerts } from '../../benchmarks/lib/peer'
import { parseH2loadLog, parseH2loadSummary } from '../../benchmarks/report/stats'
import { l7Ratios, l7Section } from '../../benchmarks/report/l7'
import type { L7Figures, L7Result } from '../../benchmarks/cases/l7'
import type { Measured } from '../../benchmarks/cases/measure'
import { parseAllDocuments } from 'yaml'
import { buildSnapshot } from '../../src/resources/loader'
import type { RouteConfig } from '../../src/routing/routing-table'
import { RoutingTable } from '../../src/routing/routing-table'
import { cluster, pod, service } from '../routing/fixture'

// The L7 benchmark's parts, fast and without a lab: the gRPC request h2load sends (a real
// @grpc/grpc-js server on loopback answers it with grpc-status 0, and h2load carries it),
// h2load's arguments, the nginx peer's configuration (nginx -t), the routed Service and
// its HTTPRoute, and the ratios and tables of the report from made-up figures. No timing
// is asserted.

const APPS = join(__dirname, '..', 'fixtures', 'apps')
const BENCH_LAB = join(__dirname, '..', '..', 'benchmarks', 'lab')
const dir = mkdtempSync(join(tmpdir(), 'ferry-bench-l7-'))
t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })

async function run (cmd: string, args: string[], timeoutMs = 30_000): Promise<{ code: number, stdout: string, stderr: string }> {
  return await new Promise((resolve) => {
    execFile(cmd, args, { timeout: timeoutMs, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof (err as any).code === 'number' ? (err as any).code : 1, stdout, stderr })
    })
  })
}

t.test('the unary request: EchoRequest { message } in one gRPC frame', async (t) => {
  t.same([...echoRequest('hello')], [0x0a, 5, ...Buffer.from('hello')], 'field 1, length-delimited')
  t.same([...grpcFrame(Buffer.from([1, 2, 3]))], [0, 0, 0, 0, 3, 1, 2, 3], 'not compressed, 4-byte big-endian length')
  const spec = unaryLoad(dir, 8)
  t.same([...readFileSync(spec.dataFile)], [0, 0, 0, 0, 7, 0x0a, 5, ...Buffer.from('hello')])
  t.same(spec.headers, GRPC_HEADERS)
})

t.test('h2load arguments: HTTP/1.1 by default, HTTP/2 streams, body and headers for gRPC', async (t) => {
  t.same(h2loadArgs({ url: 'http://a/1k', connections: 16, seconds: 6 }, '/l'), ['h2load', '--h1', '-t', '1', '-c', '16', '--log-file=/l', '-D', '6', 'http://a/1k'])
  t.same(h2loadArgs({ url: 'http://a/x', connections: 20, seconds: 4, rpsPerConnection: 50, h2: { streams: 1, headers: ['te: trailers'], dataFile: '/d' } }, '/l'),
    ['h2load', '-t', '1', '-c', '20', '--log-file=/l', '-m', '1', '-d', '/d', '-H', 'te: trailers', '-D', '4', '--rps=50', 'http://a/x'])
})

t.test('on loopback, a real @grpc/grpc-js Echo server answers the request OK, and h2load carries it', async (t) => {
  const child: ChildProcess = spawn(process.execPath, [join(APPS, 'grpc-server.js'), '--port', '0'], { stdio: ['ignore', 'pipe', 'inherit'] })
  t.teardown(() => { child.kill('SIGKILL') })
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('grpc-server.js: not listening after 20 s')), 20_000)
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const e = JSON.parse(line)
      if (e.event === 'listening') { clearTimeout(timer); resolve(e.port) }
    })
  })
  const spec = unaryLoad(dir, 4)
  const session = connect(`http://127.0.0.1:${port}`)
  t.teardown(() => { session.close() })
  const answer = await new Promise<{ status: number, trailers: Record<string, unknown>, body: Buffer }>((resolve, reject) => {
    const headers: Record<string, string> = { ':method': 'POST', ':path': UNARY_PATH }
    for (const h of spec.headers) { const i = h.indexOf(':'); headers[h.slice(0, i)] = h.slice(i + 1).trim() }
    const req = session.request(headers)
    let status = 0
    let trailers: Record<string, unknown> = {}
    const chunks: Buffer[] = []
    req.on('response', (h) => { status = Number(h[':status']) })
    req.on('trailers', (h) => { trailers = h })
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => resolve({ status, trailers, body: Buffer.concat(chunks) }))
    req.on('error', reject)
    req.end(readFileSync(spec.dataFile))
  })
  t.equal(answer.status, 200)
  t.equal(answer.trailers['grpc-status'], '0', 'the call succeeded')
  t.ok(answer.body.includes(Buffer.from('hello')), 'the reply echoes the message')

  const log = join(dir, 'h2load.log')
  const [h2load, ...args] = h2loadArgs({ url: `http://127.0.0.1:${port}${UNARY_PATH}`, connections: 2, seconds: 20, requests: 200, h2: spec }, log)
  const r = await run(h2load, args, 30_000)
  t.equal(r.code, 0, r.stderr)
  t.match(parseH2loadSummary(r.stdout), { succeeded: 200, failed: 0 })
  const parsed = parseH2loadLog(readFileSync(log, 'utf8'))
  t.equal(parsed.latenciesUs.length, 200, 'a latency per request')
  t.equal(parsed.non2xx, 0, 'every answer 200')
})

t.test('the nginx L7 peer\'s configuration is valid for this nginx (nginx -t)', async (t) => {
  await makePeerCerts(dir)
  writeFileSync(join(dir, 'node1.conf'), clientSideHttpConfig(dir, 2, '127.0.0.1', '127.0.0.2'))
  writeFileSync(join(dir, 'node2.conf'), serverSideHttpConfig(dir, 2, '127.0.0.2', { http: '127.0.0.3:8080', grpc: '127.0.0.3:50051' }))
  for (const node of ['node1', 'node2']) {
    const r = await run('nginx', ['-t', '-q', '-p', dir, '-e', join(dir, `${node}-test.log`), '-c', join(dir, `${node}.conf`)])
    t.equal(r.code, 0, `${node}: ${r.stderr}`)
  }
})

t.test('the routed Service: the L7 pod behind a second Service, whose HTTPRoute is admitted and compiles to one rule with retries and a timeout', async (t) => {
  const manifest = parseAllDocuments(readFileSync(join(BENCH_LAB, 'bench-l7.yaml'), 'utf8')).map((d) => d.toJS())
  const routed = manifest.find((o) => o.kind === 'Service' && o.metadata.name === 'server-routed')
  const unrouted = manifest.find((o) => o.kind === 'Service' && o.metadata.name === 'server-l7')
  t.same(routed.spec.selector, unrouted.spec.selector, 'the same pod as the unrouted L7 path')
  t.equal(routed.metadata.annotations?.['ferry.dev/l7'], undefined, 'L7 because of its route, not an annotation')
  const file = join(BENCH_LAB, 'bench-l7-route.yaml')
  const snapshot = buildSnapshot([{ path: file, text: readFileSync(file, 'utf8') }], { origin: BENCH_LAB, generation: 1 })
  t.equal(snapshot.httpRoutes.length, 1, 'admitted, nothing refused')
  const c = cluster([service('bench', 'server-routed', [8080], { app: 'server-l7' })], [pod('bench', 'server-l7', { app: 'server-l7' })])
  const table = RoutingTable.build(c, snapshot as unknown as Partial<RouteConfig>)
  const routes = table.routesFor('bench/server-routed', 8080, 'bench')
  t.equal(routes?.entries.length, 1, 'one rule, matching every request')
  const rule = routes!.entries[0].rule
  t.equal(rule.backends.length, 1, 'one backend')
  t.equal(rule.timeoutMs, 5000, 'a request timeout')
  t.equal(rule.retry?.attempts, 2, 'a retry policy')
  t.same(rule.retry?.on.statuses, [502, 503, 504])
  t.same([...table.problems()], [], 'everything resolves')
})

function measured (reqPerSec: number, p99Ms: number, cpuUs: number | null): Measured {
  return {
    load: { seconds: 1, reqPerSec, total: reqPerSec, succeeded: reqPerSec, failed: 0, errored: 0, timeout: 0, non2xx: 0, latency: { count: reqPerSec, p50Ms: p99Ms / 2, p99Ms, p999Ms: p99Ms * 2, maxMs: p99Ms * 3 } },
    proxyCpuSeconds: cpuUs === null ? 0 : cpuUs * reqPerSec / 1e6,
    proxyCpuUsPerRequest: cpuUs,
    proxyRssPeakBytes: cpuUs === null ? null : 50 * 2 ** 20
  }
}

function figures (l7CpuUs: number): L7Figures {
  return {
    http: { 'direct-cross': measured(20000, 1, null), 'ferry-l7-cross': measured(8000, 3, l7CpuUs), 'ferry-l7-routed-cross': measured(7200, 3.5, l7CpuUs * 1.1), 'ferry-l4-cross': measured(12000, 2, 40), 'nginx-cross': measured(9000, 3, 80) },
    grpc: { 'direct-cross': measured(5000, 4, null), 'ferry-l7-cross': measured(4000, 6, 90), 'nginx-cross': measured(4500, 5, 100) },
    httpRate: { 'direct-same': measured(1000, 0.5, null), 'ferry-l7-same': measured(1000, 0.9, 70), 'direct-cross': measured(1000, 0.6, null), 'ferry-l7-cross': measured(1000, 1.8, 70), 'ferry-l7-routed-cross': measured(1000, 2.1, 77), 'nginx-cross': measured(1000, 1.2, 90) },
    grpcRate: { 'direct-cross': measured(1000, 1, null), 'ferry-l7-cross': measured(1000, 1.5, 90) }
  }
}

t.test('the L7 ratios are computed per run, their median judged against the targets, and shown', async (t) => {
  const runs = [50, 70, 60].map((cpu, i) => ({ startedAt: `2026-01-01T00:0${i}:00.000Z`, loadAverage: 1, order: ['direct-cross'], figures: figures(cpu) }))
  const result: L7Result = { rateRps: 1000, runs, median: figures(60) }
  const byId = new Map(l7Ratios(result).map((v) => [v.ratio.id, v]))
  t.same(byId.get('http-cpu-vs-l4')?.values, [50 / 40, 70 / 40, 60 / 40])
  t.equal(byId.get('http-cpu-vs-l4')?.median, 1.5)
  t.equal(byId.get('http-cpu-vs-l4')?.met, true, '1.5× meets ≤ 1.5×')
  t.equal(byId.get('http-cpu-vs-nginx')?.median, 0.75)
  t.equal(byId.get('http-p99-added-cross')?.met, false, '+1.2 ms misses ≤ 1 ms')
  t.ok(Math.abs((byId.get('http-p99-added-same')?.median ?? NaN) - 0.4) < 1e-9)
  t.same(byId.get('grpc-p99-added-same')?.values, [null, null, null], 'a path not measured: no value')
  t.equal(byId.get('grpc-p99-added-same')?.met, null, 'and no verdict')
  t.equal(byId.get('http-rps-vs-nginx')?.met, null, 'context figures have no target')
  const md = l7Section(result).join('\n')
  t.match(md, /\| ferry-l7-cross \| 8000 \| 1\.500 \| 3\.000 \| 60\.0 \| 0 \|/, 'a path row of the saturation table')
  t.match(md, /Ferry L7 ÷ Ferry L4 \| 1\.25×, 1\.75×, 1\.50× \| 1\.50× \| ≤ 1\.50× \| met \|/, 'a ratio row: every run, the median, the target')
  t.match(md, /\*\*missed\*\*/, 'a missed target is said')
})

t.test('what a route costs: the routed cross-node path against unrouted L7 and L4, per run, for context', async (t) => {
  const runs = [50, 70, 60].map((cpu, i) => ({ startedAt: `2026-01-01T00:0${i}:00.000Z`, loadAverage: 1, order: ['ferry-l7-routed-cross'], figures: figures(cpu) }))
  const result: L7Result = { rateRps: 1000, runs, median: figures(60) }
  const byId = new Map(l7Ratios(result).map((v) => [v.ratio.id, v]))
  const near = (a: number | undefined, b: number): boolean => a !== undefined && Math.abs(a - b) < 1e-9
  t.ok(near(byId.get('http-cpu-routed-vs-l7')?.median, 1.1), 'routed CPU ÷ unrouted L7 CPU')
  t.ok(near(byId.get('http-cpu-routed-vs-l4')?.median, 66 / 40), 'routed CPU ÷ L4 CPU')
  t.ok(near(byId.get('http-rps-routed-vs-l7')?.median, 0.9), 'routed req/s ÷ unrouted L7 req/s')
  t.ok(near(byId.get('http-p99-routed-vs-l7')?.median, 0.3), 'p99 at the fixed rate: routed − unrouted')
  t.equal(byId.get('http-cpu-routed-vs-l7')?.met, null, 'no target: shown, never judged')
  const md = l7Section(result).join('\n')
  t.match(md, /\| ferry-l7-routed-cross \| 7200 \| 1\.750 \| 3\.500 \| 66\.0 \| 0 \|/, 'the routed path has its row, after the unrouted one')
  t.ok(md.indexOf('| ferry-l7-cross |') < md.indexOf('| ferry-l7-routed-cross |'))
  t.match(md, /Ferry L7 routed ÷ Ferry L7 unrouted \| 1\.10×, 1\.10×, 1\.10× \| 1\.10× \| context \|/)
})
