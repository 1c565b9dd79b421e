import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { labApplyFiles, labDeleteFiles } from '../apply'
import { sleep } from '../clock'
import { loadLab } from '../labs'
import type { EventLog } from './events'
import { churnPodManifest } from './fixture'

// Every period a meshed pod is created (as `ferry lab apply` does: it returns once the
// pod runs, enrolled by its node's agent), and deleted half a period later (`ferry lab
// delete`), on alternating nodes. A period whose create and delete take longer than the
// period starts the next at once. The pod in flight is deleted when the loop ends.

const APPLY_TIMEOUT_MS = 60_000

export async function churnPods (lab: string, everyMs: number, events: EventLog, signal: AbortSignal): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-soak-pod-'))
  try {
    for (let k = 0; ; k++) {
      const tick = k * everyMs
      try { await sleep(Math.max(0, tick - events.elapsed()), signal) } catch { return }
      const file = join(dir, `soak-churn-${k}.yaml`)
      writeFileSync(file, churnPodManifest(k))
      const name = `shop/soak-churn-${k}`
      try {
        await labApplyFiles(loadLab(lab), [file], { timeoutMs: APPLY_TIMEOUT_MS })
        events.record('pod created', true, name)
      } catch (err) {
        events.record('pod created', false, `${name}: ${(err as Error).message}`)
      }
      // Deleted even when the loop is told to stop meanwhile: no pod outlives the soak.
      await sleep(Math.max(0, tick + everyMs / 2 - events.elapsed()), signal).catch(() => {})
      try {
        await labDeleteFiles(loadLab(lab), [file], {})
        events.record('pod deleted', true, name)
      } catch (err) {
        events.record('pod deleted', false, `${name}: ${(err as Error).message}`)
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}
