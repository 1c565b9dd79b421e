import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { REPO, ferry, ferryOk, type RunResult } from '../helpers/cli'
import { pod } from '../helpers/lab'
import { runIn } from '../helpers/l7-lab'
import { mismatch, withDefaults, type Answer, type CaseRequest, type ExpectedCase } from './expectations'

// Gateway API's mesh conformance on a Ferry lab (test/conformance/mesh-lab.yaml): the lab
// brought up once, the suite's clients (the pods it execs its client in), route files
// applied and deleted as the suite applies a test's manifests, and requests sent from
// inside a client pod by test/conformance/apps/echo-client.js, many per `lab exec`.

export const MESH_LAB = join(REPO, 'test/conformance/mesh-lab.yaml')
export const ROUTES_DIR = join(REPO, 'test/conformance/routes')
export const MESH_LAB_UP_MS = 180_000
/** The suite's TimeoutConfig: MaxTimeToConsistency and RequiredConsecutiveSuccesses. */
export const MAX_TIME_TO_CONSISTENCY_MS = 30_000
export const REQUIRED_CONSECUTIVE_SUCCESSES = 3

/** The pods the suite execs its client in (ConnectToApp: the first pod of the app). */
export const CLIENTS = {
  v1: { namespace: 'gateway-conformance-mesh', name: 'echo-v1-5d9f8c7b64-k7xqp' },
  v2: { namespace: 'gateway-conformance-mesh', name: 'echo-v2-7c4b9d6f58-h8wnd' },
  consumer: { namespace: 'gateway-conformance-mesh-consumer', name: 'echo-v1-6b8d5f9c47-p3vqs' }
} as const
export type ClientName = keyof typeof CLIENTS

export class MeshLab {
  private readonly work = mkdtempSync(join(tmpdir(), 'ferry-conformance-'))
  private files = 0

  constructor (readonly name: string) {}

  async up (): Promise<void> {
    await ferryOk(['lab', 'up', '--name', this.name, MESH_LAB], { timeoutMs: MESH_LAB_UP_MS })
  }

  async down (): Promise<void> {
    await ferry(['lab', 'down', this.name], { timeoutMs: 90_000 })
    rmSync(this.work, { recursive: true, force: true })
  }

  /** `ferry lab apply` of a route file of test/conformance/routes/. */
  async apply (file: string): Promise<RunResult> {
    return await ferry(['lab', 'apply', '--lab', this.name, join(ROUTES_DIR, file)], { timeoutMs: 60_000 })
  }

  async remove (file: string): Promise<RunResult> {
    return await ferry(['lab', 'delete', '--lab', this.name, join(ROUTES_DIR, file)], { timeoutMs: 60_000 })
  }

  /** The request as the client program takes it, `$V2_POD_IP` replaced by the echo-v2 client pod's IPv4 address. */
  private wire (r: CaseRequest, count: number): object {
    const d = withDefaults(r)
    const v2 = CLIENTS.v2
    const host = d.host.replace('$V2_POD_IP', () => pod(this.name, v2.namespace, v2.name).ips.find((ip) => !ip.includes(':')) ?? '')
    return { protocol: d.protocol, host, path: d.path, method: d.method, headers: d.headers, count }
  }

  /** Sends each request `count` times from `client`; the answers per request, in order. */
  async send (client: ClientName, requests: readonly CaseRequest[], count = 1, timeoutMs = 60_000): Promise<Answer[][]> {
    const file = join(this.work, `requests-${this.files++}.json`)
    writeFileSync(file, JSON.stringify(requests.map((r) => this.wire(r, count))))
    const c = CLIENTS[client]
    const r = await runIn(this.name, c.namespace, c.name, ['node', 'apps/echo-client.js', file], timeoutMs)
    const out: Answer[][] = requests.map(() => [])
    for (const line of r.stdout.split('\n')) {
      if (!line.startsWith('{')) continue
      const a = JSON.parse(line)
      if (typeof a.i === 'number') out[a.i].push(a)
    }
    if (r.code !== 0 && out.every((x) => x.length === 0)) throw new Error(`echo-client in ${c.namespace}/${c.name} exited ${r.code}: ${r.stderr.slice(-1000)}${r.stdout.slice(-1000)}`)
    return out
  }

  /**
   * The suite's MakeRequestAndExpectEventuallyConsistentResponse for many cases at once:
   * each round sends every case not yet met REQUIRED_CONSECUTIVE_SUCCESSES times in a row;
   * a case is met when all of them meet its expectation. Rounds go on until every case is
   * met or `deadlineMs` passes. Per case: null (met) or why the last round failed.
   */
  async converge (cases: readonly ExpectedCase[], deadlineMs = MAX_TIME_TO_CONSISTENCY_MS): Promise<Array<string | null>> {
    const verdict: Array<string | null> = cases.map(() => 'never sent')
    const deadline = Date.now() + deadlineMs
    for (;;) {
      const pending = cases.map((c, i) => ({ c, i })).filter(({ i }) => verdict[i] !== null)
      if (pending.length === 0) return verdict
      for (const client of Object.keys(CLIENTS) as ClientName[]) {
        const mine = pending.filter(({ c }) => (c.client ?? 'v1') === client)
        if (mine.length === 0) continue
        let answers: Answer[][]
        try {
          answers = await this.send(client, mine.map(({ c }) => c.request), REQUIRED_CONSECUTIVE_SUCCESSES)
        } catch (err) {
          for (const { i } of mine) verdict[i] = (err as Error).message
          continue
        }
        mine.forEach(({ c, i }, k) => {
          const got = answers[k]
          if (got.length < REQUIRED_CONSECUTIVE_SUCCESSES) { verdict[i] = `${got.length} answers of ${REQUIRED_CONSECUTIVE_SUCCESSES}`; return }
          verdict[i] = got.map((a) => mismatch(c, a)).find((m) => m !== null) ?? null
        })
      }
      if (Date.now() > deadline) return verdict
      await new Promise((resolve) => setTimeout(resolve, 250))
    }
  }
}
