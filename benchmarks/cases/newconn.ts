import type { Context } from '../lib/context'
import { measureLoad, type Measured } from './measure'

// A new connection per request: h2load sends `Connection: close`, the server closes
// after each 1 KiB answer, h2load reconnects. A fixed number of requests (h2load does not
// reconnect in duration mode), bounded in time.

const CONNECTIONS = 8

export async function newconn (ctx: Context): Promise<Record<string, Measured>> {
  const requests = ctx.opts.quick ? 1000 : 3000
  const out: Record<string, Measured> = {}
  for (const path of ctx.paths) {
    out[path.id] = await measureLoad(ctx, path, { connections: CONNECTIONS, seconds: 30, requests, closeEachRequest: true }, '/1k', 'newconn')
    ctx.log(`newconn ${path.id}: ${out[path.id].load.reqPerSec.toFixed(0)} conn/s`)
  }
  return out
}
