import { h2load, type LoadSpec, type LoadResult } from '../lib/h2load'
import { rssSampler, totalCpuSeconds } from '../lib/proc'
import { CLIENT, type BenchPath, type Context } from '../lib/context'

// One h2load run on one path, with the proxies' CPU time and peak RSS over the run.

export interface Measured {
  readonly load: LoadResult
  /** CPU seconds of the path's proxies during the run. */
  readonly proxyCpuSeconds: number
  /** Proxy CPU per request, µs (null on the direct path). */
  readonly proxyCpuUsPerRequest: number | null
  /** Peak RSS of the path's proxies during the run, bytes (null on the direct path). */
  readonly proxyRssPeakBytes: number | null
}

export async function measureLoad (ctx: Pick<Context, 'workDir'>, path: BenchPath, spec: Omit<LoadSpec, 'url'>, urlPath: string, tag: string): Promise<Measured> {
  return await measureAt(ctx, path, { ...spec, url: path.url(urlPath) }, tag)
}

/** The same for any load on any target: its id names h2load's log, its proxies are measured. */
export async function measureAt (ctx: Pick<Context, 'workDir'>, target: Pick<BenchPath, 'lab' | 'proxyPids'> & { readonly id: string }, spec: LoadSpec, tag: string): Promise<Measured> {
  const pids = target.proxyPids()
  const cpu0 = totalCpuSeconds(pids)
  const rss = pids.length > 0 ? rssSampler(pids) : null
  let load: LoadResult
  let peak: number | null = null
  try {
    load = await h2load(target.lab, CLIENT, spec, ctx.workDir, `${tag}-${target.id}`)
  } finally {
    peak = rss?.stop() ?? null
  }
  const cpu = totalCpuSeconds(pids) - cpu0
  const done = load.succeeded
  return {
    load,
    proxyCpuSeconds: cpu,
    proxyCpuUsPerRequest: pids.length === 0 || done === 0 ? null : (cpu / done) * 1e6,
    proxyRssPeakBytes: peak
  }
}
