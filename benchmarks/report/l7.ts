import type { L7Figures, L7PathId, L7Result } from '../cases/l7'
import { median } from './stats'

// The L7 benchmark's figures as the report shows them: per load a table of the paths,
// and the ratios its targets are about — each computed within one run (Ferry against
// that run's direct paths, its own L4 path and the nginx peer, measured minutes apart at
// most), then the median over the runs; and, without a target, what a route costs: the
// routed cross-node path against the unrouted L7 one and L4. Reported, never asserted. Pure.

type V = number | null | undefined
const num = (v: V): number | null => typeof v === 'number' && Number.isFinite(v) ? v : null
const div = (a: V, b: V): number | null => num(a) === null || num(b) === null || b === 0 ? null : (a as number) / (b as number)
const sub = (a: V, b: V): number | null => num(a) === null || num(b) === null ? null : (a as number) - (b as number)

export interface L7Ratio {
  readonly id: string
  readonly label: string
  /** The target's bound, and whether it is an upper one; null: no target, shown for context. */
  readonly target: { readonly bound: number, readonly atMost: boolean } | null
  readonly format: (v: number) => string
  readonly of: (f: L7Figures) => number | null
}

const times = (v: number): string => `${v.toFixed(2)}×`
const plusMs = (v: number): string => `${v >= 0 ? '+' : ''}${v.toFixed(3)} ms`
const cpu = (f: Record<string, { proxyCpuUsPerRequest: number | null }>, id: string): V => f[id]?.proxyCpuUsPerRequest
const rps = (f: Record<string, { load: { reqPerSec: number } }>, id: string): V => f[id]?.load.reqPerSec
const p99 = (f: Record<string, { load: { latency: { p99Ms: number } } }>, id: string): V => f[id]?.load.latency.p99Ms

export const L7_RATIOS: readonly L7Ratio[] = [
  { id: 'http-cpu-vs-l4', label: 'HTTP/1.1 cross-node proxy CPU per request: Ferry L7 ÷ Ferry L4', target: { bound: 1.5, atMost: true }, format: times, of: (f) => div(cpu(f.http, 'ferry-l7-cross'), cpu(f.http, 'ferry-l4-cross')) },
  { id: 'http-cpu-vs-nginx', label: 'HTTP/1.1 cross-node proxy CPU per request: Ferry L7 ÷ nginx', target: { bound: 1, atMost: true }, format: times, of: (f) => div(cpu(f.http, 'ferry-l7-cross'), cpu(f.http, 'nginx-cross')) },
  { id: 'grpc-cpu-vs-nginx', label: 'gRPC unary cross-node proxy CPU per request: Ferry L7 ÷ nginx', target: { bound: 1, atMost: true }, format: times, of: (f) => div(cpu(f.grpc, 'ferry-l7-cross'), cpu(f.grpc, 'nginx-cross')) },
  { id: 'http-p99-added-cross', label: `HTTP/1.1 p99 added at the fixed rate, cross-node: Ferry L7 − direct`, target: { bound: 1, atMost: true }, format: plusMs, of: (f) => sub(p99(f.httpRate, 'ferry-l7-cross'), p99(f.httpRate, 'direct-cross')) },
  { id: 'http-p99-added-same', label: 'HTTP/1.1 p99 added at the fixed rate, same node: Ferry L7 − direct', target: { bound: 1, atMost: true }, format: plusMs, of: (f) => sub(p99(f.httpRate, 'ferry-l7-same'), p99(f.httpRate, 'direct-same')) },
  { id: 'grpc-p99-added-cross', label: 'gRPC p99 added at the fixed rate, cross-node: Ferry L7 − direct', target: { bound: 1, atMost: true }, format: plusMs, of: (f) => sub(p99(f.grpcRate, 'ferry-l7-cross'), p99(f.grpcRate, 'direct-cross')) },
  { id: 'grpc-p99-added-same', label: 'gRPC p99 added at the fixed rate, same node: Ferry L7 − direct', target: { bound: 1, atMost: true }, format: plusMs, of: (f) => sub(p99(f.grpcRate, 'ferry-l7-same'), p99(f.grpcRate, 'direct-same')) },
  { id: 'http-cpu-routed-vs-l7', label: 'HTTP/1.1 cross-node proxy CPU per request: Ferry L7 routed ÷ Ferry L7 unrouted', target: null, format: times, of: (f) => div(cpu(f.http, 'ferry-l7-routed-cross'), cpu(f.http, 'ferry-l7-cross')) },
  { id: 'http-cpu-routed-vs-l4', label: 'HTTP/1.1 cross-node proxy CPU per request: Ferry L7 routed ÷ Ferry L4', target: null, format: times, of: (f) => div(cpu(f.http, 'ferry-l7-routed-cross'), cpu(f.http, 'ferry-l4-cross')) },
  { id: 'http-rps-routed-vs-l7', label: 'HTTP/1.1 cross-node req/s at saturation: Ferry L7 routed ÷ Ferry L7 unrouted', target: null, format: times, of: (f) => div(rps(f.http, 'ferry-l7-routed-cross'), rps(f.http, 'ferry-l7-cross')) },
  { id: 'http-p99-routed-vs-l7', label: 'HTTP/1.1 p99 at the fixed rate, cross-node: Ferry L7 routed − Ferry L7 unrouted', target: null, format: plusMs, of: (f) => sub(p99(f.httpRate, 'ferry-l7-routed-cross'), p99(f.httpRate, 'ferry-l7-cross')) },
  { id: 'http-rps-vs-nginx', label: 'HTTP/1.1 cross-node req/s at saturation: Ferry L7 ÷ nginx', target: null, format: times, of: (f) => div(rps(f.http, 'ferry-l7-cross'), rps(f.http, 'nginx-cross')) },
  { id: 'grpc-rps-vs-nginx', label: 'gRPC unary cross-node req/s at saturation: Ferry L7 ÷ nginx', target: null, format: times, of: (f) => div(rps(f.grpc, 'ferry-l7-cross'), rps(f.grpc, 'nginx-cross')) },
  { id: 'http-p99-added-nginx', label: 'HTTP/1.1 p99 added at the fixed rate, cross-node: nginx − direct', target: null, format: plusMs, of: (f) => sub(p99(f.httpRate, 'nginx-cross'), p99(f.httpRate, 'direct-cross')) },
  { id: 'grpc-p99-added-nginx', label: 'gRPC p99 added at the fixed rate, cross-node: nginx − direct', target: null, format: plusMs, of: (f) => sub(p99(f.grpcRate, 'nginx-cross'), p99(f.grpcRate, 'direct-cross')) }
]

export interface L7RatioValue {
  readonly ratio: L7Ratio
  /** Each run's value (null where a figure is missing). */
  readonly values: ReadonlyArray<number | null>
  readonly median: number
  /** Whether the median meets the target; null without a target or a value. */
  readonly met: boolean | null
}

export function l7Ratios (r: L7Result): L7RatioValue[] {
  return L7_RATIOS.map((ratio) => {
    const values = r.runs.map((run) => ratio.of(run.figures))
    const m = median(values)
    const met = ratio.target === null || Number.isNaN(m) ? null : ratio.target.atMost ? m <= ratio.target.bound : m >= ratio.target.bound
    return { ratio, values, median: m, met }
  })
}

const cell = (v: V, digits: number): string => num(v) === null ? '—' : (v as number).toFixed(digits)

/** One load's table: each path's req/s, latency and proxy CPU per request (the medians). */
export function l7LoadTable (byPath: L7Figures[keyof L7Figures], order: readonly string[]): string {
  const rows = order.filter((id) => byPath[id] !== undefined).map((id) => {
    const m = byPath[id]
    return `| ${id} | ${cell(m.load.reqPerSec, 0)} | ${cell(m.load.latency.p50Ms, 3)} | ${cell(m.load.latency.p99Ms, 3)} | ${cell(m.proxyCpuUsPerRequest, 1)} | ${m.load.failed + m.load.errored + m.load.non2xx} |`
  })
  return ['| path | req/s | p50 ms | p99 ms | proxy CPU µs/req | failed |', '| --- | ---: | ---: | ---: | ---: | ---: |', ...rows].join('\n')
}

export function l7RatiosTable (r: L7Result): string {
  const rows = l7Ratios(r).map((v) => {
    const target = v.ratio.target === null ? 'context' : `${v.ratio.target.atMost ? '≤' : '≥'} ${v.ratio.format(v.ratio.target.bound)}`
    const runs = v.values.map((x) => x === null ? '—' : v.ratio.format(x)).join(', ')
    const median = Number.isNaN(v.median) ? '—' : v.ratio.format(v.median)
    return `| ${v.ratio.label} | ${runs} | ${median} | ${target} | ${v.met === null ? '' : v.met ? 'met' : '**missed**'} |`
  })
  return ['| figure | per run | median | target | |', '| --- | --- | ---: | --- | --- |', ...rows].join('\n')
}

/** The three cross-node Ferry paths a route's cost is read from. */
export const ROUTE_COST_PATHS = { l4: 'ferry-l4-cross', l7: 'ferry-l7-cross', routed: 'ferry-l7-routed-cross' } as const

/**
 * What a route costs, for one load: req/s, p50, p99 and proxy CPU per request of Ferry's
 * cross-node L4, L7 unrouted and L7 routed paths, and their ratios (L7 ÷ L4, routed ÷ L4,
 * routed ÷ unrouted). From the figures given (medians over runs, or one run's).
 */
export function routeCostTable (byPath: L7Figures[keyof L7Figures]): string {
  const { l4, l7, routed } = ROUTE_COST_PATHS
  const rows: Array<[string, (m: L7Figures['http'][string]) => V, number]> = [
    ['req/s', (m) => m.load.reqPerSec, 0],
    ['p50 ms', (m) => m.load.latency.p50Ms, 3],
    ['p99 ms', (m) => m.load.latency.p99Ms, 3],
    ['proxy CPU µs/req', (m) => m.proxyCpuUsPerRequest, 1]
  ]
  const ratio = (v: number | null): string => v === null ? '—' : times(v)
  const lines = rows.map(([label, of, digits]) => {
    const [a, b, c] = [l4, l7, routed].map((id) => byPath[id] === undefined ? null : of(byPath[id]))
    return `| ${label} | ${cell(a, digits)} | ${cell(b, digits)} | ${cell(c, digits)} | ${ratio(div(b, a))} | ${ratio(div(c, a))} | ${ratio(div(c, b))} |`
  })
  return ['| figure | L4 | L7 | L7 routed | L7 ÷ L4 | routed ÷ L4 | routed ÷ L7 |', '| --- | ---: | ---: | ---: | ---: | ---: | ---: |', ...lines].join('\n')
}

/** The report's L7 section. */
export function l7Section (r: L7Result): string[] {
  const order: readonly L7PathId[] = ['direct-same', 'ferry-l7-same', 'direct-cross', 'ferry-l7-cross', 'ferry-l7-routed-cross', 'ferry-l4-cross', 'nginx-cross']
  const runs = r.runs.length === 1 ? 'one run' : `medians of ${r.runs.length} alternated runs`
  return [
    `**L7** (benchmarks/lab/bench-l7.yaml; ${runs}; proxy CPU: both agents for Ferry, both nginx for the peer):`,
    '',
    'HTTP/1.1 keep-alive, 1 KiB, at saturation:',
    '',
    l7LoadTable(r.median.http, order),
    '',
    'gRPC unary (Echo, @grpc/grpc-js server), at saturation:',
    '',
    l7LoadTable(r.median.grpc, order),
    '',
    `HTTP/1.1 at ${r.rateRps} req/s:`,
    '',
    l7LoadTable(r.median.httpRate, order),
    '',
    `gRPC unary at ${r.rateRps} req/s:`,
    '',
    l7LoadTable(r.median.grpcRate, order),
    '',
    'What a route costs (cross-node, HTTP/1.1; the medians above; `ferry-l7-routed-cross`: the Service `server-routed` with benchmarks/lab/bench-l7-route.yaml):',
    '',
    'At saturation:',
    '',
    routeCostTable(r.median.http),
    '',
    `At ${r.rateRps} req/s:`,
    '',
    routeCostTable(r.median.httpRate),
    '',
    'L7 ratios (each run\'s, and their median; a target missed is reported, not failed):',
    '',
    l7RatiosTable(r)
  ]
}
