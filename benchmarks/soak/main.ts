import { parseArgs } from 'node:util'
import { runCaOutage } from './ca-outage'
import { runMixed } from './mixed'

// `npm run soak -- [--scenario mixed|ca-outage] [--minutes N] [--out FILE]`: bounded
// reliability runs on a lab, outside the default test suite.
//   mixed      (default) a mixed load through the shop lab for --minutes (default 10),
//              reporting per minute requests, failures, agent RSS, descriptors and map entries.
//   ca-outage  the controller stopped for 10 minutes across the agents' first renewal
//              (--cert-ttl 20m), traffic on the certificates in hand, recovery on return
//              (--minutes sets the certificate lifetime instead: the outage is half of it).
// Each scenario takes its labs down on every exit path and exits non-zero when a
// guarantee did not hold (a failed request, a leak, no recovery).

export interface SoakOptions {
  /** Minutes the scenario runs its load (a scenario may fix its own). */
  readonly minutes: number | undefined
  /** Where the report (Markdown) is written; absent: standard output only. */
  readonly out: string | undefined
}

const SCENARIOS: Readonly<Record<string, (o: SoakOptions) => Promise<boolean>>> = {
  mixed: runMixed,
  'ca-outage': runCaOutage
}

async function main (): Promise<void> {
  const { values } = parseArgs({ options: { scenario: { type: 'string' }, minutes: { type: 'string' }, out: { type: 'string' } }, strict: true })
  const scenario = values.scenario ?? 'mixed'
  const run = SCENARIOS[scenario]
  if (run === undefined) throw new Error(`--scenario: ${scenario} is not one of ${Object.keys(SCENARIOS).join(', ')}`)
  let minutes: number | undefined
  if (values.minutes !== undefined) {
    minutes = Number(values.minutes)
    if (!Number.isInteger(minutes) || minutes < 1 || minutes > 24 * 60) throw new Error(`--minutes: ${values.minutes} is not a whole number of minutes from 1 to 1440`)
  }
  const held = await run({ minutes, out: values.out })
  process.exitCode = held ? 0 : 1
}

main().catch((err: unknown) => {
  process.stderr.write(`soak: ${err instanceof Error ? err.message : String(err)}\n`)
  process.exitCode = 2
})
