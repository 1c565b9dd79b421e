import { readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { parseH2loadLog, parseH2loadSummary, summarizeMicros, type H2loadSummary, type LatencySummary } from '../report/stats'
import type { Lab } from './lab'

// h2load (Debian nghttp2-client) run inside the client pod, HTTP/1.1 (--h1) or HTTP/2
// with prior knowledge (gRPC-style requests), one thread. Latency comes from its per-request log (--log-file: time from writing the
// request to the end of the response), not its summary, so p99.9 is exact.
//
// Coordinated omission: with --rps each connection sends on a fixed schedule, so a slow
// answer does not stop the clock for the requests behind it on *other* connections;
// but on one connection HTTP/1.1 keeps one request in flight, and a request due while
// the previous one is outstanding is sent late and timed from when it was sent. The
// delay it waited is lost. So a run whose achieved rate is below the target rate
// under-reports its latency; the report shows achieved rates next to targets.

export interface LoadSpec {
  readonly url: string
  readonly connections: number
  /** Upper bound on the run; with `requests` unset, the run's duration (-D). */
  readonly seconds: number
  /** A fixed number of requests (-n) instead of a duration: h2load does not reconnect in -D mode. */
  readonly requests?: number
  /** Requests per second per connection (fixed-rate runs). */
  readonly rpsPerConnection?: number
  /** New connection per request (Connection: close). */
  readonly closeEachRequest?: boolean
  /** HTTP/2 with prior knowledge instead of HTTP/1.1: gRPC-style requests (lib/grpc-load.ts). */
  readonly h2?: H2Spec
}

export interface H2Spec {
  /** Concurrent streams per connection (-m). */
  readonly streams: number
  /** Request headers added (-H "name: value"). */
  readonly headers: readonly string[]
  /** The request body of every request (-d: a file the pod can read; the pods share the host's filesystem). */
  readonly dataFile: string
}

export interface LoadResult extends H2loadSummary {
  readonly latency: LatencySummary
  readonly non2xx: number
}

/** h2load's argv for `spec`, one thread, the per-request log to `log`. Pure. */
export function h2loadArgs (spec: LoadSpec, log: string): string[] {
  const args = ['h2load', ...(spec.h2 === undefined ? ['--h1'] : []), '-t', '1', '-c', String(spec.connections), `--log-file=${log}`]
  if (spec.h2 !== undefined) {
    args.push('-m', String(spec.h2.streams), '-d', spec.h2.dataFile)
    for (const h of spec.h2.headers) args.push('-H', h)
  }
  if (spec.requests !== undefined) args.push('-n', String(spec.requests))
  else args.push('-D', String(spec.seconds))
  if (spec.rpsPerConnection !== undefined) args.push(`--rps=${spec.rpsPerConnection}`)
  if (spec.closeEachRequest === true) args.push('-H', 'Connection: close')
  args.push(spec.url)
  return args
}

export async function h2load (lab: Lab, client: { namespace: string, pod: string }, spec: LoadSpec, logDir: string, tag: string): Promise<LoadResult> {
  const log = join(logDir, `h2load-${tag}.log`)
  // `timeout` inside the pod: killing `lab exec` would not stop h2load.
  const args = ['timeout', '-s', 'KILL', String(spec.seconds + 10), ...h2loadArgs(spec, log)]
  const r = await lab.execPod(client.namespace, client.pod, args, (spec.seconds + 20) * 1000)
  if (r.code !== 0) throw new Error(`h2load ${tag} exited ${String(r.code)}: ${r.stderr.slice(-500)}${r.stdout.slice(-500)}`)
  const summary = parseH2loadSummary(r.stdout)
  const parsed = parseH2loadLog(readFileSync(log, 'utf8'))
  rmSync(log, { force: true })
  return { ...summary, latency: summarizeMicros(parsed.latenciesUs), non2xx: parsed.non2xx }
}
