import { CLIENT, type Context } from '../lib/context'
import { totalCpuSeconds } from '../lib/proc'

// Bulk transfer on one connection: curl downloads a 1 GiB file (sparse, so nginx's
// sendfile reads zeros from the page cache and the disk is never in the way), for at
// most MAX_SECONDS: a slower path is measured on what it moved in that time.

export const BULK_FILE = '/files/1g'
export const BULK_BYTES = 2 ** 30
const CURL_TIMED_OUT = 28
const MAX_SECONDS = 10

export interface BulkResult {
  readonly bytes: number
  readonly seconds: number
  readonly mbPerSec: number
  /** Proxy CPU seconds per GiB moved (null on the direct path). */
  readonly proxyCpuSecondsPerGiB: number | null
}

export async function bulk (ctx: Context): Promise<Record<string, BulkResult>> {
  const out: Record<string, BulkResult> = {}
  for (const path of ctx.paths) {
    const pids = path.proxyPids()
    const cpu0 = totalCpuSeconds(pids)
    const r = await path.lab.execPod(CLIENT.namespace, CLIENT.pod,
      ['curl', '-sS', '-o', '/dev/null', '--max-time', String(MAX_SECONDS), '-w', '%{size_download} %{time_total}', path.url(BULK_FILE)], (MAX_SECONDS + 25) * 1000)
    const cpu = totalCpuSeconds(pids) - cpu0
    const [bytes, seconds] = r.stdout.trim().split(' ').map(Number)
    // 28 is curl's --max-time: a slow path is measured on what it moved in the time.
    if ((r.code !== 0 && r.code !== CURL_TIMED_OUT) || !(bytes > 0)) throw new Error(`bulk ${path.id}: curl exited ${String(r.code)}: ${r.stderr}`)
    out[path.id] = { bytes, seconds, mbPerSec: bytes / seconds / 1e6, proxyCpuSecondsPerGiB: pids.length === 0 ? null : cpu / (bytes / 2 ** 30) }
    ctx.log(`bulk ${path.id}: ${out[path.id].mbPerSec.toFixed(0)} MB/s`)
  }
  return out
}
