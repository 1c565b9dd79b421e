import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { getAgentJson, labAgentEndpoint } from '../agent-admin'
import { sleep } from '../clock'
import { labApplyFiles } from '../apply'
import { loadLab } from '../labs'
import { labDelete } from '../policies'
import type { EventLog } from './events'
import { POLICY_FILE, POLICY_STATES, SOAK_NAMESPACE, type PolicyState } from './fixture'

// Every period, the lab's policy moves to the next of fixture.ts's states (as `ferry lab
// apply` / `ferry lab delete` would), and the change counts once every agent's
// /debug/config shows it; an apply that fails, or agents that do not show it in
// SEEN_TIMEOUT_MS, is a failed event. The file is removed when the loop ends.

const SEEN_TIMEOUT_MS = 20_000
const POLL_MS = 250
const REF = `${SOAK_NAMESPACE}/soak-policy`

export async function cyclePolicies (lab: string, everyMs: number, events: EventLog, signal: AbortSignal): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-soak-policy-'))
  try {
    for (let k = 1; ; k++) {
      const wait = k * everyMs - events.elapsed()
      try { await sleep(Math.max(0, wait), signal) } catch { return }
      const s = POLICY_STATES[(k - 1) % POLICY_STATES.length]
      try {
        await applyState(lab, s, dir)
        const ms = await seenByAgents(lab, s)
        events.record('policy', true, `${s.name} (every agent in ${ms} ms)`)
      } catch (err) {
        events.record('policy', false, `${s.name}: ${(err as Error).message}`)
      }
    }
  } finally {
    await labDelete(loadLab(lab).plan, [POLICY_FILE]).catch(() => {})
    rmSync(dir, { recursive: true, force: true })
  }
}

async function applyState (lab: string, s: PolicyState, dir: string): Promise<void> {
  const state = loadLab(lab)
  if (s.yaml === null) { await labDelete(state.plan, [POLICY_FILE]); return }
  const file = join(dir, POLICY_FILE)
  writeFileSync(file, s.yaml)
  await labApplyFiles(state, [file], { timeoutMs: SEEN_TIMEOUT_MS })
}

/** ms until every node's agent shows the state in /debug/config. */
async function seenByAgents (lab: string, s: PolicyState): Promise<number> {
  const started = Date.now()
  const nodes = loadLab(lab).plan.nodes.map((n) => n.name)
  const pending = new Set(nodes)
  while (pending.size > 0) {
    if (Date.now() - started > SEEN_TIMEOUT_MS) throw new Error(`not in force on ${[...pending].join(', ')} after ${SEEN_TIMEOUT_MS} ms`)
    for (const node of [...pending]) if (await shows(lab, node, s)) pending.delete(node)
    if (pending.size > 0) await sleep(POLL_MS)
  }
  return Date.now() - started
}

async function shows (lab: string, node: string, s: PolicyState): Promise<boolean> {
  const endpoint = labAgentEndpoint(lab, node)
  try {
    const r = await getAgentJson(endpoint, '/debug/config', { timeoutMs: 5000 })
    const resources = (r.body?.resources ?? []) as Array<{ ref: string, summary: string }>
    const ours = resources.find((x) => x.ref === REF)
    return s.summary === null ? ours === undefined : ours?.summary === s.summary
  } catch {
    return false
  } finally {
    endpoint.close()
  }
}
