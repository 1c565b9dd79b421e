import { rmSync, statSync, writeFileSync, existsSync } from 'node:fs'
import { join } from 'node:path'
import { CLIENT, REPO_LAB_DIR, type Context } from '../lib/context'
import { ferry, sleep } from '../lib/exec'
import { LAB_STATE_DIR } from '../lib/lab'

// Time from a policy change to its enforcement, cross-node: a DENY for the client's
// principal at the server is applied with `ferry lab apply` (then removed with `lab
// delete`) while lab/policy-poll.js in the client pod opens a new connection every
// ~2 ms. The change's moment is the config directory's mtime (the atomic rename the
// agents watch for); enforcement is the first attempt that sees the new answer.

const REPS = 3

const DENY = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: bench-deny-client, namespace: bench }
spec:
  selector: { matchLabels: { app: server } }
  action: DENY
  rules:
    - from:
        - source:
            principals: ["cluster.local/ns/bench/sa/client"]
`

export interface PolicyResult {
  /** ms from the change to the first denied connection, one per repetition. */
  readonly denyMs: number[]
  /** ms from removing it to the first allowed connection. */
  readonly allowMs: number[]
}

export async function policy (ctx: Context): Promise<PolicyResult> {
  const lab = ctx.mesh
  const file = join(ctx.workDir, 'bench-deny-client.yaml')
  writeFileSync(file, DENY)
  const configDir = join(LAB_STATE_DIR, lab.name, 'config')
  const url = `http://${lab.serviceIP('bench', 'server')}:8080/1k`
  const result: PolicyResult = { denyMs: [], allowMs: [] }
  const change = async (until: 'denied' | 'allowed', argv: string[]): Promise<number> => {
    const ready = join(ctx.workDir, `policy-ready-${until}`)
    rmSync(ready, { force: true })
    const poll = lab.execPod(CLIENT.namespace, CLIENT.pod, ['timeout', '-s', 'KILL', '40', 'node', join(REPO_LAB_DIR, 'policy-poll.js'), url, until, '30', ready], 45_000)
    const deadline = Date.now() + 20_000
    while (!existsSync(ready) && Date.now() < deadline) await sleep(20)
    await ferry(['lab', ...argv, '--lab', lab.name, file], 30_000)
    const changedAt = statSync(configDir).mtimeMs
    const r = await poll
    const at = (JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as { at?: number | null }).at
    if (typeof at !== 'number') throw new Error(`policy: never ${until} (${r.stdout} ${r.stderr})`)
    return at - changedAt
  }
  for (let i = 0; i < REPS; i++) {
    result.denyMs.push(await change('denied', ['apply']))
    result.allowMs.push(await change('allowed', ['delete']))
  }
  ctx.log(`policy: deny ${result.denyMs.map((x) => x.toFixed(0)).join('/')} ms, allow ${result.allowMs.map((x) => x.toFixed(0)).join('/')} ms`)
  return result
}
