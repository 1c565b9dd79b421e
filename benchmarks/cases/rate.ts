import type { Context } from '../lib/context'
import { measureLoad, type Measured } from './measure'

// 1 KiB responses on keep-alive connections at fixed rates (h2load --rps per
// connection), for latency under a load every path can carry. See lib/h2load.ts for
// how far h2load corrects for coordinated omission.

export const RATES = [1000, 10000] as const
const CONNECTIONS = 20

export interface RateResult extends Measured { readonly targetRps: number }

export async function rates (ctx: Context): Promise<Record<string, Record<string, RateResult>>> {
  const seconds = ctx.opts.quick ? 3 : 4
  const out: Record<string, Record<string, RateResult>> = {}
  for (const rate of RATES) {
    const byPath: Record<string, RateResult> = {}
    for (const path of ctx.paths) {
      const m = await measureLoad(ctx, path, { connections: CONNECTIONS, seconds, rpsPerConnection: rate / CONNECTIONS }, '/1k', `rate${rate}`)
      byPath[path.id] = { ...m, targetRps: rate }
      ctx.log(`rate ${rate} ${path.id}: ${m.load.reqPerSec.toFixed(0)} req/s, p99 ${m.load.latency.p99Ms.toFixed(2)} ms`)
    }
    out[String(rate)] = byPath
  }
  return out
}
