import { loadavg } from 'node:os'
import { rotated } from '../report/alternated'
import type { AlternatedRun } from '../report/results'
import type { Context } from './context'

// Alternated runs: a benchmark runs `ctx.opts.runs` times, every path in each run, the
// paths' order rotated from run to run, so Ferry and the peers are interleaved and the
// machine's noise of any minute hits them alike. Each finished run is appended to `into`
// at once, so the runs done before a failure are kept.

export async function alternate<T> (ctx: Context, name: string, into: Array<AlternatedRun<T>>, measure: (ctx: Context) => Promise<T>): Promise<void> {
  for (let run = 0; run < ctx.opts.runs; run++) {
    const paths = rotated(ctx.paths, run, ctx.opts.runs)
    const loadAverage = loadavg()[0]
    ctx.log(`${name} run ${run + 1} of ${ctx.opts.runs} (load average ${loadAverage.toFixed(1)}): ${paths.map((p) => p.id).join(' → ')}`)
    const startedAt = new Date().toISOString()
    into.push({ startedAt, loadAverage, order: paths.map((p) => p.id), figures: await measure({ ...ctx, paths }) })
  }
}
