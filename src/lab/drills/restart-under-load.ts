import { sleep } from '../clock'
import { loadLab } from '../labs'
import { restartController } from '../restart'
import { OUTAGE_LAB } from './outage-lab'
import { SteadyLoad, type LoadTotals } from './steady-load'

// A controller restart under a steady load through two nodes (the lab of outage-lab.ts):
// the load runs `settleMs` before and after `ferry lab restart --controller` (killed, as
// in a crash, down `downForMs`). The agents hold their certificates and configuration;
// not one request may fail.

export interface RestartUnderLoadPlan {
  readonly lab: string
  readonly rate: number
  readonly downForMs: number
  readonly settleMs: number
}

export interface RestartUnderLoadResult {
  readonly load: LoadTotals
  readonly oldPids: number
  readonly newPid: number | undefined
  /** Requests answered while the controller was being restarted. */
  readonly duringRestart: number
}

export async function runRestartUnderLoad (plan: RestartUnderLoadPlan): Promise<RestartUnderLoadResult> {
  const state = loadLab(plan.lab)
  const load = SteadyLoad.start(state, { namespace: OUTAGE_LAB.namespace, pod: OUTAGE_LAB.client, url: OUTAGE_LAB.url, rate: plan.rate, durationMs: 3_600_000 })
  try {
    await load.flowing(Math.max(5, plan.rate), 60_000)
    await sleep(plan.settleMs)
    const before = load.totals.requests
    const r = await restartController(state, { signal: 'SIGKILL', timeoutMs: 60_000, downForMs: plan.downForMs })
    const duringRestart = load.totals.requests - before
    await sleep(plan.settleMs)
    return { load: await load.stop(), oldPids: r.oldPids, newPid: r.newPid, duringRestart }
  } finally {
    await load.stop().catch(() => {})
  }
}
