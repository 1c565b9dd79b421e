import { join } from 'node:path'
import { REPO, ferry, ferryOk } from './cli'

// The two-node lab of the L7 test programs (test/fixtures/apps/l7-lab.yaml), as the L7
// end-to-end tests use it: brought up under a unique name, taken down whatever happens,
// and programs run in its pods (working directory: the programs' folder) with a time
// limit of their own, since large transfers outlast `execInPod`'s 30 s.

export const L7_MANIFEST = join(REPO, 'test/fixtures/apps/l7-lab.yaml')
/** `ferry lab up` of the L7 lab: 13 pods on two nodes, slow on a busy machine. */
export const L7_LAB_UP_MS = 240_000

export async function l7LabUp (lab: string): Promise<void> {
  await ferryOk(['lab', 'up', '--name', lab, L7_MANIFEST], { timeoutMs: L7_LAB_UP_MS })
}

export async function l7LabDown (lab: string): Promise<void> {
  await ferry(['lab', 'down', lab], { timeoutMs: 90_000 })
}

export interface PodRun { code: number, stdout: string, stderr: string, ms: number }

/**
 * Runs argv in pod `namespace/name` of `lab`, bounded by `timeoutMs` twice over: `timeout`
 * inside the pod (killing `lab exec` would not stop the program) and the CLI's own limit.
 */
export async function runIn (lab: string, namespace: string, name: string, argv: string[], timeoutMs = 30_000): Promise<PodRun> {
  const started = performance.now()
  const r = await ferry(['lab', 'exec', '--lab', lab, name, '-n', namespace, '--', 'timeout', '-s', 'KILL', String(Math.ceil(timeoutMs / 1000)), ...argv], { timeoutMs: timeoutMs + 15_000 })
  return { ...r, ms: performance.now() - started }
}

/** runIn, then the first JSON line the program printed; throws with its output when it failed. */
export async function jsonFrom (lab: string, namespace: string, name: string, argv: string[], timeoutMs = 30_000): Promise<any> {
  const r = await runIn(lab, namespace, name, argv, timeoutMs)
  const line = r.stdout.split('\n').find((l) => l.startsWith('{'))
  if (line === undefined) throw new Error(`${argv.join(' ')} in ${namespace}/${name} exited ${r.code} without a JSON line: ${r.stderr.slice(-2000)}${r.stdout.slice(-2000)}`)
  return JSON.parse(line)
}

/** Every JSON line a program printed (the gRPC clients print one per call). */
export async function jsonLinesFrom (lab: string, namespace: string, name: string, argv: string[], timeoutMs = 30_000): Promise<any[]> {
  const r = await runIn(lab, namespace, name, argv, timeoutMs)
  const lines = r.stdout.split('\n').filter((l) => l.startsWith('{'))
  if (lines.length === 0) throw new Error(`${argv.join(' ')} in ${namespace}/${name} exited ${r.code} without a JSON line: ${r.stderr.slice(-2000)}${r.stdout.slice(-2000)}`)
  return lines.map((l) => JSON.parse(l))
}

export function median (xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  return s.length === 0 ? NaN : s.length % 2 === 1 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}
