import type { LoadSpec } from '../lib/h2load'
import type { Context, RunOptions } from '../lib/context'
import { measureLoad, type Measured } from './measure'

// 1 KiB responses on keep-alive connections, as fast as each path goes (h2load's
// closed loop: CONNECTIONS connections, one request in flight on each). A short
// warm-up run first fills pools and JITs.

export const CONNECTIONS = 16

/** The measured run (the warm-up is 1 s on the same connections count). */
export function keepaliveSpec (opts: Pick<RunOptions, 'quick'>): Omit<LoadSpec, 'url'> {
  return { connections: CONNECTIONS, seconds: opts.quick ? 3 : 6 }
}

export async function keepalive (ctx: Context): Promise<Record<string, Measured>> {
  const out: Record<string, Measured> = {}
  for (const path of ctx.paths) {
    await measureLoad(ctx, path, { connections: CONNECTIONS, seconds: 1 }, '/1k', 'warmup')
    out[path.id] = await measureLoad(ctx, path, keepaliveSpec(ctx.opts), '/1k', 'keepalive')
    ctx.log(`keepalive ${path.id}: ${out[path.id].load.reqPerSec.toFixed(0)} req/s, p99 ${out[path.id].load.latency.p99Ms.toFixed(2)} ms`)
  }
  return out
}
