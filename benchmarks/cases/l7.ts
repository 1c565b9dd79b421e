import { loadavg } from 'node:os'
import type { Context } from '../lib/context'
import { CLIENT } from '../lib/context'
import { GRPC_HEADERS, UNARY_PATH, unaryLoad } from '../lib/grpc-load'
import type { H2Spec, LoadSpec } from '../lib/h2load'
import { Lab } from '../lib/lab'
import { applyL7Route, ROUTED_SERVICE } from '../lib/l7-route'
import { startNginxHttpPeer, type HttpPeer } from '../lib/nginx-http-peer'
import { medianByPath, rotated } from '../report/alternated'
import type { AlternatedRun } from '../report/results'
import { measureAt, type Measured } from './measure'

// Ferry's L7 proxy under load, in a lab of its own (benchmarks/lab/bench-l7.yaml, brought
// up with Ferry and --no-mesh): HTTP/1.1 keep-alive (1 KiB from nginx) and gRPC unary
// calls (the @grpc/grpc-js Echo server), each on the direct paths (no Ferry), Ferry's L7
// paths (a Service with ferry.dev/l7 enabled: the request is handled at the source node
// and again at the destination), the same cross-node path through a Service with an
// HTTPRoute (HTTP only: what a route costs over an unrouted L7 request, lib/l7-route.ts),
// Ferry's own L4 cross-node path (HTTP only: the figure
// the L7 CPU target is a ratio to) and the L7 peer (nginx as an HTTP and gRPC reverse
// proxy on both nodes, mutual TLS between them: lib/nginx-http-peer.ts). Per load: req/s
// at saturation (closed loop), proxy CPU per request, latency; and at a fixed 1,000 req/s
// the p99 each proxy adds over the direct path of the same locality. `--runs` alternated
// runs, the paths' order rotated; figures and ratios as report/l7.ts computes them.

export const L7_PATHS = ['direct-same', 'ferry-l7-same', 'direct-cross', 'ferry-l7-cross', 'ferry-l7-routed-cross', 'ferry-l4-cross', 'nginx-cross'] as const
export type L7PathId = typeof L7_PATHS[number]

/** The fixed rate the added p99 is measured at (the target: ≤ 1 ms added). */
export const L7_RATE = 1000
const HTTP_CONNECTIONS = 16
/** gRPC at saturation: GRPC_CONNECTIONS HTTP/2 connections × GRPC_STREAMS calls in flight. */
const GRPC_CONNECTIONS = 4
const GRPC_STREAMS = 8
const RATE_CONNECTIONS = 20
const HTTP_PORT = 8080
const GRPC_PORT = 50051

export interface L7Figures {
  /** HTTP/1.1 keep-alive, 1 KiB, at saturation: by path. */
  readonly http: Record<string, Measured>
  /** gRPC unary at saturation: by path (no ferry-l4-cross, no ferry-l7-routed-cross). */
  readonly grpc: Record<string, Measured>
  /** HTTP/1.1 at L7_RATE req/s. */
  readonly httpRate: Record<string, Measured>
  /** gRPC unary at L7_RATE req/s. */
  readonly grpcRate: Record<string, Measured>
}

export interface L7Result {
  readonly rateRps: number
  /** Every run, in the order they ran. */
  readonly runs: Array<AlternatedRun<L7Figures>>
  /** Each figure's median over the runs. */
  readonly median: L7Figures
}

interface L7Target {
  readonly id: L7PathId
  readonly lab: Lab
  /** Base URL of the HTTP/1.1 server (no trailing slash). */
  readonly http: string
  /** Base URL of the gRPC server (h2c); null where the path carries no gRPC. */
  readonly grpc: string | null
  readonly proxyPids: () => number[]
}

/** The nginx peer while a run holds it (stopped by abortL7 on a signal). */
let livePeer: HttpPeer | null = null

export async function abortL7 (): Promise<void> {
  await livePeer?.stop()
  livePeer = null
}

function targets (direct: Lab, mesh: Lab, peer: HttpPeer): L7Target[] {
  const pod = (lab: Lab, name: string, port: number): string => `http://${lab.pod('bench', name).ipv4}:${port}`
  const svc = (lab: Lab, name: string, port: number): string => `http://${lab.serviceIP('bench', name)}:${port}`
  const none = (): number[] => []
  const agents = (): number[] => mesh.agentPids()
  return [
    { id: 'direct-same', lab: direct, http: pod(direct, 'local-l7', HTTP_PORT), grpc: pod(direct, 'grpc-local', GRPC_PORT), proxyPids: none },
    { id: 'ferry-l7-same', lab: mesh, http: svc(mesh, 'local-l7', HTTP_PORT), grpc: svc(mesh, 'grpc-local', GRPC_PORT), proxyPids: agents },
    { id: 'direct-cross', lab: direct, http: pod(direct, 'server-l7', HTTP_PORT), grpc: pod(direct, 'grpc-server', GRPC_PORT), proxyPids: none },
    { id: 'ferry-l7-cross', lab: mesh, http: svc(mesh, 'server-l7', HTTP_PORT), grpc: svc(mesh, 'grpc-server', GRPC_PORT), proxyPids: agents },
    { id: 'ferry-l7-routed-cross', lab: mesh, http: svc(mesh, ROUTED_SERVICE, HTTP_PORT), grpc: null, proxyPids: agents },
    { id: 'ferry-l4-cross', lab: mesh, http: svc(mesh, 'server', HTTP_PORT), grpc: null, proxyPids: agents },
    { id: 'nginx-cross', lab: direct, http: peer.url('').replace(/\/$/, ''), grpc: `http://${peer.grpcAuthority}`, proxyPids: () => peer.pids }
  ]
}

/** Every path answers before anything is measured: a 1 KiB GET, and a unary call whose trailers say grpc-status 0. */
async function checkPaths (paths: readonly L7Target[], grpcBody: string): Promise<void> {
  for (const p of paths) {
    const r = await p.lab.execPod(CLIENT.namespace, CLIENT.pod, ['curl', '-sf', '-o', '/dev/null', '--max-time', '5', `${p.http}/1k`], 15_000)
    if (r.code !== 0) throw new Error(`l7: path ${p.id} does not answer HTTP (${p.http}/1k): curl exit ${String(r.code)}`)
    if (p.grpc === null) continue
    const g = await p.lab.execPod(CLIENT.namespace, CLIENT.pod, ['curl', '-s', '--http2-prior-knowledge', '--max-time', '5', ...GRPC_HEADERS.flatMap((h) => ['-H', h]),
      '--data-binary', `@${grpcBody}`, '-D', '-', '-o', '/dev/null', `${p.grpc}${UNARY_PATH}`], 15_000)
    if (!/^grpc-status: 0\r?$/m.test(g.stdout)) throw new Error(`l7: path ${p.id} does not answer gRPC (${p.grpc}${UNARY_PATH}): curl exit ${String(g.code)}, ${g.stdout.slice(0, 400)}`)
  }
}

/** Warm-up windows: their length, and the most of them per path and load. */
const WARM_WINDOW_SECONDS = 3
const WARM_MAX_WINDOWS = 10
/** Warm once two windows in a row cost within this fraction of each other per request. */
const WARM_STABLE = 0.1

/**
 * Brings Ferry's proxies to their steady state before anything is measured. A fresh
 * agent's L7 path costs two to four times its steady CPU per request for its first
 * ~10-20 thousand requests (V8 compiles Node's HTTP stack and the engine as they run hot;
 * slower still on a shared machine), which a 1 s warm-up run leaves inside the figures.
 * Each mesh path runs its HTTP (and gRPC) load in WARM_WINDOW_SECONDS windows until two
 * in a row agree within WARM_STABLE, at most WARM_MAX_WINDOWS; logged, not measured.
 */
async function warmProxies (ctx: Pick<Context, 'workDir' | 'log'>, paths: readonly L7Target[], h2: H2Spec): Promise<void> {
  for (const p of paths) {
    if (p.proxyPids().length === 0 || p.id === 'nginx-cross') continue
    const loads: Array<[string, LoadSpec]> = [['http', { url: `${p.http}/1k`, connections: HTTP_CONNECTIONS, seconds: WARM_WINDOW_SECONDS }]]
    if (p.grpc !== null) loads.push(['grpc', { url: `${p.grpc}${UNARY_PATH}`, connections: GRPC_CONNECTIONS, seconds: WARM_WINDOW_SECONDS, h2 }])
    for (const [what, spec] of loads) {
      const costs: number[] = []
      for (let i = 0; i < WARM_MAX_WINDOWS; i++) {
        const m = await measureAt(ctx, p, spec, `l7-warm-${what}`)
        costs.push(m.proxyCpuUsPerRequest ?? 0)
        const n = costs.length
        if (n >= 2 && Math.abs(costs[n - 1]! - costs[n - 2]!) <= WARM_STABLE * costs[n - 2]!) break
      }
      ctx.log(`l7 warm-up ${what} ${p.id}: ${costs.map((c) => c.toFixed(0)).join(' → ')} µs/req`)
    }
  }
}

async function oneRun (ctx: Pick<Context, 'workDir' | 'opts' | 'log'>, order: readonly L7Target[], h2: H2Spec): Promise<L7Figures> {
  const seconds = ctx.opts.quick ? 3 : 6
  const rateSeconds = ctx.opts.quick ? 3 : 4
  const figures: L7Figures = { http: {}, grpc: {}, httpRate: {}, grpcRate: {} }
  const run = async (p: L7Target, spec: LoadSpec, tag: string): Promise<Measured> => await measureAt(ctx, p, spec, tag)
  for (const p of order) {
    const url = `${p.http}/1k`
    await run(p, { url, connections: HTTP_CONNECTIONS, seconds: 1 }, 'l7-http-warmup')
    const m = figures.http[p.id] = await run(p, { url, connections: HTTP_CONNECTIONS, seconds }, 'l7-http')
    ctx.log(`l7 http ${p.id}: ${m.load.reqPerSec.toFixed(0)} req/s, p99 ${m.load.latency.p99Ms.toFixed(2)} ms, ${(m.proxyCpuUsPerRequest ?? NaN).toFixed(1)} µs/req`)
  }
  for (const p of order) {
    if (p.grpc === null) continue
    const url = `${p.grpc}${UNARY_PATH}`
    await run(p, { url, connections: GRPC_CONNECTIONS, seconds: 1, h2 }, 'l7-grpc-warmup')
    const m = figures.grpc[p.id] = await run(p, { url, connections: GRPC_CONNECTIONS, seconds, h2 }, 'l7-grpc')
    ctx.log(`l7 grpc ${p.id}: ${m.load.reqPerSec.toFixed(0)} req/s, p99 ${m.load.latency.p99Ms.toFixed(2)} ms, ${(m.proxyCpuUsPerRequest ?? NaN).toFixed(1)} µs/req`)
  }
  const perConnection = L7_RATE / RATE_CONNECTIONS
  for (const p of order) {
    const m = figures.httpRate[p.id] = await run(p, { url: `${p.http}/1k`, connections: RATE_CONNECTIONS, seconds: rateSeconds, rpsPerConnection: perConnection }, 'l7-http-rate')
    ctx.log(`l7 http at ${L7_RATE}/s ${p.id}: ${m.load.reqPerSec.toFixed(0)} req/s, p99 ${m.load.latency.p99Ms.toFixed(2)} ms`)
  }
  for (const p of order) {
    if (p.grpc === null) continue
    const m = figures.grpcRate[p.id] = await run(p, { url: `${p.grpc}${UNARY_PATH}`, connections: RATE_CONNECTIONS, seconds: rateSeconds, rpsPerConnection: perConnection, h2: { ...h2, streams: 1 } }, 'l7-grpc-rate')
    ctx.log(`l7 grpc at ${L7_RATE}/s ${p.id}: ${m.load.reqPerSec.toFixed(0)} req/s, p99 ${m.load.latency.p99Ms.toFixed(2)} ms`)
  }
  return figures
}

/**
 * The L7 benchmark: its two labs (`labName('m')`, `labName('d')`) and the nginx peer up,
 * `--runs` alternated runs, everything taken down on the way out. `cores`: the peer's
 * nginx workers per node.
 */
export async function l7 (ctx: Pick<Context, 'workDir' | 'opts' | 'log'>, manifest: string, labName: (role: 'm' | 'd') => string, cores: number): Promise<L7Result> {
  try {
    ctx.log('l7: labs up (mesh and no-mesh)')
    const [mesh, direct] = await Promise.all([
      Lab.up(labName('m'), manifest, { mesh: true, ...(ctx.opts.workers === null ? {} : { workers: ctx.opts.workers }) }),
      Lab.up(labName('d'), manifest, { mesh: false })
    ])
    await applyL7Route(mesh)
    livePeer = await startNginxHttpPeer(direct, ctx.workDir, cores, { namespace: 'bench', pod: 'server-l7', port: HTTP_PORT }, { namespace: 'bench', pod: 'grpc-server', port: GRPC_PORT })
    const paths = targets(direct, mesh, livePeer)
    const h2 = unaryLoad(ctx.workDir, GRPC_STREAMS)
    await checkPaths(paths, h2.dataFile)
    await warmProxies(ctx, paths, h2)
    const runs: Array<AlternatedRun<L7Figures>> = []
    for (let i = 0; i < ctx.opts.runs; i++) {
      const order = rotated(paths, i, ctx.opts.runs)
      const startedAt = new Date().toISOString()
      const loadAverage = loadavg()[0]
      runs.push({ startedAt, loadAverage, order: order.map((p) => p.id), figures: await oneRun(ctx, order, h2) })
    }
    const of = (k: keyof L7Figures): Record<string, Measured> => medianByPath(runs.map((r) => r.figures[k]))
    return { rateRps: L7_RATE, runs, median: { http: of('http'), grpc: of('grpc'), httpRate: of('httpRate'), grpcRate: of('grpcRate') } }
  } finally {
    await abortL7()
    await Lab.down(labName('m'))
    await Lab.down(labName('d'))
  }
}
