import { existsSync, readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { CLIENT, REPO_LAB_DIR, type Context } from '../lib/context'
import { sleep } from '../lib/exec'
import { totalRssBytes } from '../lib/proc'

// Many idle connections held open (lab/idle-holder.js in the client pod): the proxies'
// RSS before, and while they hold them, per connection.

export interface IdleResult {
  readonly connections: number
  readonly failed: number
  readonly rssBeforeBytes: number
  readonly rssHeldBytes: number
  readonly bytesPerConnection: number
}

const HOLD_SECONDS = 8

export async function idle (ctx: Context): Promise<Record<string, IdleResult>> {
  const count = ctx.opts.quick ? 300 : 1000
  const out: Record<string, IdleResult> = {}
  for (const path of ctx.paths) {
    const pids = path.proxyPids()
    if (pids.length === 0) continue
    const ready = join(ctx.workDir, `idle-${path.id}.json`)
    rmSync(ready, { force: true })
    const before = totalRssBytes(pids)
    const holder = path.lab.execPod(CLIENT.namespace, CLIENT.pod,
      ['timeout', '-s', 'KILL', '90', 'node', join(REPO_LAB_DIR, 'idle-holder.js'), path.url('/1k'), String(count), String(HOLD_SECONDS), ready], 100_000)
    const deadline = Date.now() + 60_000
    while (!existsSync(ready) && Date.now() < deadline) await sleep(100)
    if (!existsSync(ready)) { await holder; throw new Error(`idle ${path.id}: connections never all opened`) }
    await sleep(1000) // let the proxies settle (buffers allocated on the first request)
    const held = totalRssBytes(pids)
    const state = JSON.parse(readFileSync(ready, 'utf8')) as { open: number, failed: number }
    await holder
    out[path.id] = { connections: state.open, failed: state.failed, rssBeforeBytes: before, rssHeldBytes: held, bytesPerConnection: (held - before) / Math.max(1, state.open) }
    ctx.log(`idle ${path.id}: ${state.open} open, ${((held - before) / 1024 / Math.max(1, state.open)).toFixed(1)} KiB each`)
  }
  return out
}
