import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { SHOP_MANIFEST, writeSoakManifest } from '../../src/lab/soak/fixture'
import { longSoakPlan } from '../../src/lab/soak/plan'
import { renderSoakReport } from '../../src/lab/soak/report'
import { runMixedSoak } from '../../src/lab/soak/run'
import { soakSampler } from '../../src/lab/soak/sample'
import { agentResources } from '../lib/agent-resources'
import { Lab } from '../lib/lab'
import type { SoakOptions } from './main'

// The mixed soak (src/lab/soak/run.ts) through the shop lab and the soak's own pods
// (src/lab/soak/fixture.ts), with certificates rotating every minute (--cert-ttl 2m,
// renewed at half-life), the agents' resources read at the end of every minute
// (lib/agent-resources.ts; src/lab/soak/sample.ts). The report goes to standard output and --out; the lab goes
// down on every exit path.

const DEFAULT_MINUTES = 10

/** The mixed soak through the shop lab; true when every guarantee held. */
export async function runMixed (o: SoakOptions): Promise<boolean> {
  const plan = longSoakPlan(o.minutes ?? DEFAULT_MINUTES)
  const name = `soak${process.pid}`.slice(0, 15)
  const dir = mkdtempSync(join(tmpdir(), 'ferry-soak-'))
  const down = (): void => { void Lab.down(name) }
  process.once('SIGINT', down)
  process.once('SIGTERM', down)
  try {
    const say = (line: string): void => { process.stderr.write(`soak: ${line}\n`) }
    say(`lab ${name} up (shop + soak pods, --cert-ttl 2m)`)
    const lab = await Lab.up(name, [SHOP_MANIFEST, writeSoakManifest(dir)], { mesh: true, certTtlMs: plan.certTtlMs })
    const sampleAgent = soakSampler(name, async (node) => await agentResources(lab, node))
    say(`running ${plan.durationMs / 60_000} min of mixed load`)
    const result = await runMixedSoak({ lab: name, plan, sampleAgent, log: say })
    const report = `# Mixed soak, ${plan.durationMs / 60_000} min, ${new Date().toISOString()}\n\n${renderSoakReport(result)}`
    process.stdout.write(report)
    if (o.out !== undefined) writeFileSync(o.out, report)
    return result.held
  } finally {
    process.off('SIGINT', down)
    process.off('SIGTERM', down)
    if (Lab.live.has(name)) await Lab.down(name)
    rmSync(dir, { recursive: true, force: true })
  }
}
