import t from 'tap'
import { join } from 'node:path'
import type { Socket } from 'node:net'
import { labAgentEndpoint } from '../../src/lab/agent-admin'
import { labAgentResources } from '../../src/lab/agent-resources'
import { compareResources, leaks } from '../../src/lab/churn/drift'
import { runChurn, survivorFailures } from '../../src/lab/churn/run'
import { CHURN_EXAMPLE_DIR, startSurvivors } from '../../src/lab/churn/survivors'
import { sleep } from '../../src/lab/clock'
import { loadLab } from '../../src/lab/labs'
import { labUp } from '../../src/lab/up'
import { BpfMap } from '../../src/native'
import { forceDown, IS_ROOT, isMeshBuilt, labFerryArgv } from './helpers'
import { uniqueLabName } from '../helpers/names'

// Churn without leaks, scaled down for the suite (`npm run soak -- --scenario churn`
// runs 1,000 pods): on a one-node lab of examples/churn/churn.yaml, 100 pods are created
// and deleted in waves of 25 while the surviving pods' clients keep their keep-alive
// connections busy. Afterwards the agent's descriptors, memory after a garbage
// collection, pinned maps' entries, pinned links and cgroup attachments are back within
// 5 % of the baseline, and no request or connection of a surviving pod failed. Then the
// check itself is put to the test: a map entry and descriptors held beyond the
// baseline, and connections of survivors that fail, are each caught.

const skip = !IS_ROOT ? 'needs root' : (!isMeshBuilt() && process.env.CI !== 'true') ? 'native addon / eBPF objects not built (npm run build)' : undefined
const opts = skip === undefined ? {} : { skip }
const lab = uniqueLabName('lchurn')
const NODE = 'node1'
const CLIENTS = ['churn/client-0', 'churn/client-1']

t.before(async () => {
  if (skip !== undefined) return
  await labUp({ name: lab, files: [join(CHURN_EXAMPLE_DIR, 'churn.yaml')], mesh: true, timeoutMs: 90_000, ferryArgv: labFerryArgv() })
})
t.teardown(async () => { await forceDown(lab) })

t.test('100 pods created and deleted in waves of 25 beside surviving pods: the agent\'s resources come back, no survivor\'s connection fails; a leak and a failed connection are caught', opts, async (t) => {
  const r = await runChurn({
    lab,
    node: NODE,
    namespace: 'churn',
    pods: 100,
    wave: 25,
    tolerance: 0.05,
    settleMs: 2000,
    reads: 3,
    waveTimeoutMs: 60_000,
    survivors: { clients: CLIENTS, url: 'http://backend:8080/', connections: 4, pauseMs: 100, maxRequests: 100_000 },
    churnTraffic: { url: 'http://churn:8080/', pauseMs: 200 },
    maxSeconds: 300,
    say: (line) => { t.comment(line) }
  })
  t.same(r.failures, [], 'every resource back within 5 % and no survivor failure')
  t.equal(r.waves.length, 4)
  t.equal(r.peak.mapEntries.ferry_pods, r.baseline.mapEntries.ferry_pods + 25, 'a wave\'s pods were enrolled (their entries, links and attachments counted)')
  t.ok(r.peak.pinnedLinks > r.baseline.pinnedLinks && r.peak.cgroupAttachments > r.baseline.cgroupAttachments && r.peak.fds > r.baseline.fds)
  for (const key of ['ferry_pods', 'ferry_pod_ips', 'ferry_slots', 'ferry_inbound', 'ferry_probe_ports', 'ferry_probe_stats']) {
    t.equal(r.after.mapEntries[key], r.baseline.mapEntries[key], `${key}: back to the baseline exactly`)
  }
  t.equal(r.after.pinnedLinks, r.baseline.pinnedLinks)
  t.equal(r.after.cgroupAttachments, r.baseline.cgroupAttachments)
  t.equal(r.survivors.length, CLIENTS.length)
  for (const s of r.survivors) {
    t.ok(s.ok > 0 && s.failed === 0 && s.connections === 4 && s.connectionsClosed === 0, `${s.pod}: ${s.ok} requests on 4 connections held throughout, none failed`)
  }

  // A map entry and 20 descriptors held beyond the baseline are leaks the check reports.
  const state = loadLab(lab)
  const excl = BpfMap.openPinnedBytes(join(state.plan.nodes[0].pinRoot, 'ferry_excl'))
  const stray = Buffer.alloc(excl.info.keySize, 0xee)
  const endpoint = labAgentEndpoint(lab, NODE)
  const held: Socket[] = []
  const clean = await labAgentResources(lab, NODE)
  try {
    excl.set(stray, Buffer.alloc(excl.info.valueSize, 1))
    for (let i = 0; i < 20; i++) held.push(endpoint.connect(5000))
    await Promise.all(held.map(async (s) => { await new Promise((resolve, reject) => { s.once('connect', resolve).once('error', reject) }) }))
    await sleep(500)
    const leaked = leaks(compareResources(clean, await labAgentResources(lab, NODE), 0.05)).map((d) => d.resource)
    t.ok(leaked.includes('map ferry_excl'), `a stray map entry is a leak (out of bounds: ${leaked.join(', ')})`)
    t.ok(leaked.includes('fds'), 'descriptors held are a leak')
  } finally {
    excl.delete(stray)
    excl.close()
    for (const s of held) s.destroy()
    endpoint.close()
  }

  // Survivors whose backends die: their failed requests and closed connections are reported.
  const survivors = startSurvivors(loadLab(lab), { clients: [CLIENTS[0]], url: 'http://backend:8080/', connections: 2, pauseMs: 50, maxSeconds: 60, maxRequests: 10_000 })
  await sleep(1500)
  for (const [key, pid] of Object.entries(loadLab(lab).pids)) if (key.startsWith('pod/churn/server-')) process.kill(pid, 'SIGKILL')
  await sleep(1500)
  const failed = survivorFailures(await survivors.stop())
  t.equal(failed.length, 1, `a failed survivor connection is a failure: ${failed.join('; ')}`)
})
