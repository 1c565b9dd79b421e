import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Context } from '../lib/context'
import { ferry, sleep } from '../lib/exec'
import { Lab } from '../lib/lab'
import { rssBytes } from '../lib/proc'
import { growthPerPod } from './pods'

// Agent memory per enrolled pod, and start-up time with many pods: one-node labs of
// N sleeping pods (a netns + cgroup + `sleep` each, all meshed, so each is enrolled,
// holds listeners, map entries, links and a certificate). RSS is read after the lab
// is up (every pod enrolled) and a short settle. Start-up: `ferry lab restart --node
// node1 --signal TERM` on the largest lab, timed until the CLI returns, which it does
// once the new agent has enrolled every pod again (it polls /healthz/ready). The agents
// run one data-path worker (`--workers 1`); then one more lab of 100 pods (or the pod
// count nearest it) per count in `moreWorkers`, for memory with more workers.

export interface ScalePoint {
  readonly pods: number
  /** The agent's --workers (absent in results from before workers: one event loop). */
  readonly workers?: number
  readonly labUpMs: number
  readonly agentRssBytes: number
}

export interface ScaleResult {
  readonly points: ScalePoint[]
  /** RSS growth per pod between the smallest and the largest count with 1 worker, bytes. */
  readonly bytesPerPod: number
  readonly restartPods: number
  readonly restartMs: number
}

const POD_COUNT_FOR_WORKERS = 100

export function scaleManifest (pods: number): string {
  const head = 'apiVersion: v1\nkind: Node\nmetadata: { name: node1 }\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: scale\n  labels: { ferry.dev/mesh: enabled }\n'
  const pod = (i: number): string => `---\napiVersion: v1\nkind: Pod\nmetadata: { name: p${i}, namespace: scale, labels: { app: p${i % 10} } }\nspec:\n  nodeName: node1\n  serviceAccountName: sa${i % 10}\n  containers:\n    - { name: main, image: pause, command: ["sleep", "infinity"] }\n`
  return head + Array.from({ length: pods }, (_, i) => pod(i)).join('')
}

export async function scale (ctx: Pick<Context, 'opts' | 'log' | 'workDir'>, labName: (tag: string) => string, moreWorkers: readonly number[] = []): Promise<ScaleResult> {
  const points: ScalePoint[] = []
  let restartMs = NaN
  const counts = ctx.opts.podCounts
  const nearest = counts.reduce((a, b) => Math.abs(b - POD_COUNT_FOR_WORKERS) < Math.abs(a - POD_COUNT_FOR_WORKERS) ? b : a)
  const labs = [...counts.map((pods) => ({ pods, workers: 1 })), ...moreWorkers.map((workers) => ({ pods: nearest, workers }))]
  for (const [i, { pods: n, workers }] of labs.entries()) {
    const file = join(ctx.workDir, `scale-${n}.yaml`)
    writeFileSync(file, scaleManifest(n))
    const name = labName(workers === 1 ? String(n) : `${n}w${workers}`)
    try {
      const lab = await Lab.up(name, file, { mesh: true, workers })
      await sleep(2000)
      points.push({ pods: n, workers, labUpMs: lab.upMs, agentRssBytes: rssBytes(lab.agentPid('node1')) })
      ctx.log(`scale ${n} pods, ${workers} worker(s): lab up ${(lab.upMs / 1000).toFixed(1)} s, agent RSS ${(points[points.length - 1].agentRssBytes / 2 ** 20).toFixed(1)} MiB`)
      if (i === counts.length - 1) {
        const r = await ferry(['lab', 'restart', '--lab', name, '--node', 'node1', '--signal', 'TERM', '--timeout', '120s'], 180_000)
        restartMs = r.ms
        ctx.log(`scale ${n} pods: agent restart to ready ${(restartMs / 1000).toFixed(2)} s`)
      }
    } finally {
      await Lab.down(name)
    }
  }
  const one = points.filter((p) => p.workers === 1)
  return { points, bytesPerPod: growthPerPod(one), restartPods: counts[counts.length - 1] ?? 0, restartMs }
}
