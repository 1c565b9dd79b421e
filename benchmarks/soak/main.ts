import { parseArgs } from 'node:util'
import { runCaOutage } from './ca-outage'
import { runChurnSoak } from './churn'
import { runMixed } from './mixed'

// `npm run soak -- [--scenario mixed|ca-outage|churn] [--minutes N] [--pods N --wave N] [--out FILE]`: bounded
// reliability runs on a lab, outside the default test suite.
//   mixed      (default) a mixed load through the shop lab for --minutes (default 10),
//              reporting per minute requests, failures, agent RSS, descriptors and map entries.
//   ca-outage  the controller stopped for 10 minutes across the agents' first renewal
//              (--cert-ttl 20m), traffic on the certificates in hand, recovery on return
//              (--minutes sets the certificate lifetime instead: the outage is half of it).
//   churn      --pods (default 1000) pods created and deleted in waves of --wave (default
//              100) on one lab node beside surviving pods' keep-alive traffic; the agent's
//              fds, memory after GC, map entries, pinned links and cgroup attachments
//              back within 5 % afterwards, no survivor's connection failed.
// Each scenario takes its labs down on every exit path and exits non-zero when a
// guarantee did not hold (a failed request, a leak, no recovery).

export interface SoakOptions {
  /** Minutes the scenario runs its load (a scenario may fix its own). */
  readonly minutes: number | undefined
  /** Where the report (Markdown) is written; absent: standard output only. */
  readonly out: string | undefined
  /** churn: pods created and deleted in all (a multiple of `wave`). */
  readonly pods?: number | undefined
  /** churn: pods per wave. */
  readonly wave?: number | undefined
}

const SCENARIOS: Readonly<Record<string, (o: SoakOptions) => Promise<boolean>>> = {
  mixed: runMixed,
  'ca-outage': runCaOutage,
  churn: runChurnSoak
}

async function main (): Promise<void> {
  const { values } = parseArgs({ options: { scenario: { type: 'string' }, minutes: { type: 'string' }, out: { type: 'string' }, pods: { type: 'string' }, wave: { type: 'string' } }, strict: true })
  const scenario = values.scenario ?? 'mixed'
  const run = SCENARIOS[scenario]
  if (run === undefined) throw new Error(`--scenario: ${scenario} is not one of ${Object.keys(SCENARIOS).join(', ')}`)
  let minutes: number | undefined
  if (values.minutes !== undefined) {
    minutes = Number(values.minutes)
    if (!Number.isInteger(minutes) || minutes < 1 || minutes > 24 * 60) throw new Error(`--minutes: ${values.minutes} is not a whole number of minutes from 1 to 1440`)
  }
  const pods = count('--pods', values.pods, 100_000)
  const wave = count('--wave', values.wave, pods ?? 100_000)
  if (pods !== undefined && wave !== undefined && pods % wave !== 0) throw new Error(`--pods ${pods} is not a multiple of --wave ${wave}`)
  const held = await run({ minutes, out: values.out, pods, wave })
  process.exitCode = held ? 0 : 1
}

/** A whole number from 1 to `max`, or undefined when not given. */
function count (option: string, text: string | undefined, max: number): number | undefined {
  if (text === undefined) return undefined
  const n = Number(text)
  if (!Number.isInteger(n) || n < 1 || n > max) throw new Error(`${option}: ${text} is not a whole number from 1 to ${max}`)
  return n
}

main().catch((err: unknown) => {
  process.stderr.write(`soak: ${err instanceof Error ? err.message : String(err)}\n`)
  process.exitCode = 2
})
