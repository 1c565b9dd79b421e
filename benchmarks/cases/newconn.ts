import type { LoadSpec } from '../lib/h2load'
import type { Context, RunOptions } from '../lib/context'
import { measureLoad, type Measured } from './measure'

// A new connection per request: h2load sends `Connection: close`, the server closes
// after each 1 KiB answer, h2load reconnects. A fixed number of requests (h2load does not
// reconnect in duration mode), bounded in time.

const CONNECTIONS = 8

export function newconnSpec (opts: Pick<RunOptions, 'quick'>): Omit<LoadSpec, 'url'> {
  return { connections: CONNECTIONS, seconds: 30, requests: opts.quick ? 1000 : 2000, closeEachRequest: true }
}

export async function newconn (ctx: Context): Promise<Record<string, Measured>> {
  const out: Record<string, Measured> = {}
  for (const path of ctx.paths) {
    out[path.id] = await measureLoad(ctx, path, newconnSpec(ctx.opts), '/1k', 'newconn')
    ctx.log(`newconn ${path.id}: ${out[path.id].load.reqPerSec.toFixed(0)} conn/s`)
  }
  return out
}
