import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { runCaOutage as runOutageDrill, type CaOutageResult } from '../../src/lab/drills/ca-outage'
import { outageLabManifest } from '../../src/lab/drills/outage-lab'
import { exec, execOk, FERRY } from '../lib/exec'
import { formatCaOutageReport } from './ca-outage-report'
import type { SoakOptions } from './main'

// `npm run soak -- --scenario ca-outage [--minutes L] [--out FILE]`: the controller away
// for half of the certificates' lifetime across the agents' first renewal, on a
// two-node lab run as on a cluster (`--kubernetes-api`: the agents also take their
// configuration from the controller's stream) with `--cert-ttl L` (default 20 minutes;
// --minutes sets L): stopped
// L/20 (1 min) before the first renewal (due at L/2), back L/20 before the earliest
// expiry, so 10 minutes down. A steady load runs from node1 to node2 throughout, and two
// more minutes after recovery. The scenario itself is src/lab/drills/ca-outage.ts, the
// one the test suite runs with 60-second certificates (test/e2e/controller-outage.test.ts).
// Prints (and with --out writes) a report per minute; false when a guarantee did not hold.

const DEFAULT_LIFETIME_MIN = 20
const RATE = 20
const AFTER_RECOVERY_MS = 120_000
/** The shortest lead before renewal and before expiry (for a short --minutes). */
const MIN_LEAD_MS = 10_000

export async function runCaOutage (o: SoakOptions): Promise<boolean> {
  const lifetimeMs = (o.minutes ?? DEFAULT_LIFETIME_MIN) * 60_000
  const lead = Math.max(MIN_LEAD_MS, lifetimeMs / 20)
  const lab = `bsoakca${process.pid}`
  const dir = mkdtempSync(join(tmpdir(), 'ferry-soak-ca-'))
  const say = (line: string): void => { process.stdout.write(`[${new Date().toISOString()}] ${line}\n`) }
  let result: CaOutageResult
  try {
    writeFileSync(join(dir, 'lab.yaml'), outageLabManifest())
    say(`lab ${lab} up with --kubernetes-api --cert-ttl ${lifetimeMs / 1000}s on ${cpus().length} CPUs`)
    await execOk(process.execPath, [FERRY, 'lab', 'up', '--name', lab, '--kubernetes-api', '--cert-ttl', `${lifetimeMs / 1000}s`, join(dir, 'lab.yaml')], { timeoutMs: 300_000 })
    result = await runOutageDrill({
      lab,
      stopBeforeRenewalMs: lead,
      returnBeforeExpiryMs: lead,
      afterRecoveryMs: AFTER_RECOVERY_MS,
      recoveryTimeoutMs: lead,
      streamReconnectTimeoutMs: 60_000,
      sampleEveryMs: Math.max(1000, Math.min(10_000, lifetimeMs / 120)),
      rate: RATE,
      log: say
    })
  } finally {
    say(`lab ${lab} down`)
    await exec(process.execPath, [FERRY, 'lab', 'down', lab], { timeoutMs: 120_000 }).catch(() => {})
    rmSync(dir, { recursive: true, force: true })
  }
  const report = formatCaOutageReport(result, { lifetimeMs, rate: RATE })
  process.stdout.write('\n' + report)
  if (o.out !== undefined) writeFileSync(o.out, report)
  return result.held
}
