import { median, medianRecord } from './stats'
import type { AlternatedRun, Results } from './results'

// The alternated runs, summarized: each path's median figures over the runs, and the
// figures the targets compare — each computed within one run (Ferry against that run's
// peers, measured minutes apart at most), then their median over the runs. Pure.

/** Each path's figures, median over the runs that measured it (field by field). */
export function medianByPath<T> (runs: ReadonlyArray<Record<string, T>>): Record<string, T> {
  const paths = [...new Set(runs.flatMap((r) => Object.keys(r)))]
  return Object.fromEntries(paths.map((p) => [p, medianRecord(runs.flatMap((r) => r[p] === undefined ? [] : [r[p]]))]))
}

/** The same for the fixed-rate runs: by rate, then path. */
export function medianByRate<T> (runs: ReadonlyArray<Record<string, Record<string, T>>>): Record<string, Record<string, T>> {
  const rates = [...new Set(runs.flatMap((r) => Object.keys(r)))]
  return Object.fromEntries(rates.map((rate) => [rate, medianByPath(runs.flatMap((r) => r[rate] === undefined ? [] : [r[rate]]))]))
}

/**
 * The order of run `run` (from 0) of `runs`: `paths` rotated by an even share of their
 * number per run, so that no path always runs first or last, nor always right after the
 * same one at the same point of the run.
 */
export function rotated<T> (paths: readonly T[], run: number, runs: number): T[] {
  if (paths.length === 0) return []
  const step = Math.max(1, Math.floor(paths.length / Math.max(1, runs)))
  const k = (run * step) % paths.length
  return [...paths.slice(k), ...paths.slice(0, k)]
}

/** One figure in every run, and its median. */
export interface AlternatedFigure {
  readonly id: string
  readonly label: string
  readonly values: ReadonlyArray<number | null>
  readonly median: number
  readonly format: (v: number) => string
}

type V = number | null | undefined
const num = (v: V): number | null => typeof v === 'number' && Number.isFinite(v) ? v : null
const div = (a: V, b: V): number | null => num(a) === null || num(b) === null || b === 0 ? null : (a as number) / (b as number)
const sub = (a: V, b: V): number | null => num(a) === null || num(b) === null ? null : (a as number) - (b as number)
/** The better of the peers' values (max or min of those measured); null when none is. */
const better = (values: V[], higher: boolean): number | null => {
  const xs = values.map(num).filter((v): v is number => v !== null)
  return xs.length === 0 ? null : higher ? Math.max(...xs) : Math.min(...xs)
}

const times = (v: number): string => `${v.toFixed(2)}×`
const whole = (v: number): string => v.toFixed(0)
const micros = (v: number): string => `${v.toFixed(1)} µs`
const plusMs = (v: number): string => `${v >= 0 ? '+' : ''}${v.toFixed(3)} ms`
const msText = (v: number): string => `${v.toFixed(3)} ms`

function figure<T> (id: string, label: string, runs: ReadonlyArray<AlternatedRun<T>> | undefined, of: (figures: T) => number | null | undefined, format: (v: number) => string): AlternatedFigure {
  const values = (runs ?? []).map((r) => num(of(r.figures)))
  return { id, label, values, median: median(values), format }
}

/**
 * The figures of the runs, in the order the report shows them. A run without `runs`
 * (an older results file) counts as one run of its top-level figures.
 */
export function alternatedFigures (r: Results): AlternatedFigure[] {
  const one = <T>(x: T | undefined): Array<AlternatedRun<T>> | undefined => x === undefined ? undefined : [{ startedAt: r.startedAt, order: [], figures: x }]
  const ka = r.runs?.keepalive ?? one(r.keepalive)
  const nc = r.runs?.newconn ?? one(r.newconn)
  const bulk = r.runs?.bulk ?? one(r.bulk)
  const rates = r.runs?.rates ?? one(r.rates)
  const peers = ['haproxy-cross', 'nginx-cross']
  const out: AlternatedFigure[] = []
  for (const p of ['ferry-cross', ...peers]) out.push(figure(`keepalive-rps:${p}`, `keep-alive req/s, ${p}`, ka, (f) => f[p]?.load.reqPerSec, whole))
  out.push(figure('keepalive-rps-ratio', 'keep-alive req/s, ferry-cross ÷ the better peer', ka, (f) => div(f['ferry-cross']?.load.reqPerSec, better(peers.map((p) => f[p]?.load.reqPerSec), true)), times))
  for (const p of ['ferry-cross', ...peers]) out.push(figure(`keepalive-cpu:${p}`, `keep-alive proxy CPU per request, ${p}`, ka, (f) => f[p]?.proxyCpuUsPerRequest, micros))
  out.push(figure('keepalive-cpu-ratio', 'keep-alive proxy CPU per request, ferry-cross ÷ the better peer', ka, (f) => div(f['ferry-cross']?.proxyCpuUsPerRequest, better(peers.map((p) => f[p]?.proxyCpuUsPerRequest), false)), times))
  out.push(figure('same-node-ratio', 'keep-alive req/s, ferry-same ÷ direct-same', ka, (f) => div(f['ferry-same']?.load.reqPerSec, f['direct-same']?.load.reqPerSec), times))
  for (const p of ['ferry-cross', ...peers]) out.push(figure(`newconn-rate:${p}`, `new connections/s, ${p}`, nc, (f) => f[p]?.load.reqPerSec, whole))
  out.push(figure('newconn-ratio', 'new connections/s, ferry-cross ÷ haproxy-cross', nc, (f) => div(f['ferry-cross']?.load.reqPerSec, f['haproxy-cross']?.load.reqPerSec), times))
  for (const p of ['ferry-cross', 'haproxy-cross']) out.push(figure(`newconn-cpu:${p}`, `proxy CPU per new connection, ${p}`, nc, (f) => f[p]?.proxyCpuUsPerRequest, micros))
  for (const p of ['ferry-cross', 'haproxy-cross']) out.push(figure(`bulk:${p}`, `bulk MB/s, ${p}`, bulk, (f) => f[p]?.mbPerSec, whole))
  out.push(figure('bulk-ratio', 'bulk MB/s, ferry-cross ÷ haproxy-cross', bulk, (f) => div(f['ferry-cross']?.mbPerSec, f['haproxy-cross']?.mbPerSec), times))
  const rateKeys = [...new Set((rates ?? []).flatMap((x) => Object.keys(x.figures)))].sort((a, b) => Number(a) - Number(b))
  for (const rate of rateKeys) {
    for (const p of ['ferry-cross', 'haproxy-cross']) out.push(figure(`p99:${rate}:${p}`, `p99 at ${rate} req/s, ${p}`, rates, (f) => f[rate]?.[p]?.load.latency.p99Ms, msText))
    out.push(figure(`p99-over:${rate}`, `p99 at ${rate} req/s, ferry-cross − haproxy-cross`, rates, (f) => sub(f[rate]?.['ferry-cross']?.load.latency.p99Ms, f[rate]?.['haproxy-cross']?.load.latency.p99Ms), plusMs))
  }
  return out
}
