import t from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { labAgentResources } from '../../src/lab/agent-resources'
import { SHOP_MANIFEST, writeSoakManifest } from '../../src/lab/soak/fixture'
import { shortSoakPlan } from '../../src/lab/soak/plan'
import { renderSoakReport } from '../../src/lab/soak/report'
import { runMixedSoak, type SoakResult } from '../../src/lab/soak/run'
import { soakSampler } from '../../src/lab/soak/sample'
import { labUp } from '../../src/lab/up'
import { uniqueLabName } from '../helpers/names'
import { forceDown, IS_ROOT, isMeshBuilt, labFerryArgv } from './helpers'

// The mixed soak of `npm run soak` (src/lab/soak/run.ts), most of a minute of it: keep-alive,
// new-connection and bulk load across nodes through the shop lab while an
// AuthorizationPolicy changes every 10 s, a pod is created and deleted every 5 s and the
// agents rotate their certificates every 15 s (--cert-ttl 30s). Not one request or event
// may fail, and each kind of event must have happened.

const skip = !IS_ROOT ? 'needs root' : (!isMeshBuilt() && process.env.CI !== 'true') ? 'native addon / eBPF objects not built (npm run build)' : undefined
const lab = uniqueLabName('soak')
const dir = mkdtempSync(join(tmpdir(), 'ferry-soak-test-'))
const plan = shortSoakPlan()
let result: SoakResult

t.before(async () => {
  if (skip !== undefined) return
  await labUp({ name: lab, files: [SHOP_MANIFEST, writeSoakManifest(dir)], mesh: true, certTtlMs: plan.certTtlMs, timeoutMs: 90_000, ferryArgv: labFerryArgv() })
  result = await runMixedSoak({
    lab,
    plan,
    sampleAgent: soakSampler(lab, async (node) => await labAgentResources(lab, node))
  })
})
t.teardown(async () => { await forceDown(lab); rmSync(dir, { recursive: true, force: true }) })

t.test('54 s of mixed load with policy changes, pod churn and certificate rotation: no request fails', skip === undefined ? {} : { skip }, async (t) => {
  t.comment(renderSoakReport(result))
  t.same(result.failures, [], 'no request, event or sample failed')
  for (const k of plan.kinds) {
    t.ok(result.totals[k.name].ok > 0, `${k.name} requests were served (${result.totals[k.name].ok})`)
    t.equal(result.totals[k.name].failed, 0, `no ${k.name} request failed`)
  }
  t.ok(result.totals['keep-alive'].reused > 0, 'keep-alive requests reused their connections')
  t.equal(result.windows.length, 3, 'a row per 18 s window')
  t.ok(result.windows.every((w) => result.nodes.every((n) => (w.agents[n]?.fds ?? 0) > 0)), 'every agent sampled in every window')

  const done = (kind: string): string[] => result.events.filter((e) => e.kind === kind && e.ok).map((e) => e.detail)
  t.ok(done('policy').length >= 3, `policy changes took effect on every agent (${done('policy').length})`)
  t.ok(done('policy').some((d) => d.startsWith('allow shop')) && done('policy').some((d) => d.startsWith('deny elsewhere')) && done('policy').some((d) => d.startsWith('none')),
    'each policy state was in force at some point')
  t.ok(done('pod created').length >= 4, `pods were created (${done('pod created').length})`)
  t.equal(done('pod deleted').length, done('pod created').length, 'and every one deleted')
  for (const node of result.nodes) t.ok(done('rotation').some((d) => d.startsWith(`${node} `)), `${node}'s agent rotated certificates`)
  t.ok(result.held, 'the soak held')
})
