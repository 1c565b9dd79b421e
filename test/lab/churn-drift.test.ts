import t from 'tap'
import type { AgentResources } from '../../src/lab/agent-resources'
import { fdKind } from '../../src/lab/agent-resources'
import { compareResources, leaks } from '../../src/lab/churn/drift'

// What a churn run calls a leak: descriptors or heap further than the tolerance from
// their baseline, any kernel object (map entry, pinned link, cgroup attachment) more or
// less; RSS and the per-connection LRU records are reported, never judged.

const base: AgentResources = {
  pid: 1,
  fds: 280,
  fdKinds: { socket: 89 },
  rssBytes: 100 << 20,
  heapUsedAfterGcBytes: 40 << 20,
  mapEntries: { ferry_pods: 4, ferry_excl: 0, ferry_conn_by_cookie: 8 },
  pinnedLinks: 26,
  cgroupAttachments: 21
}

t.test('fds and heap within 5 % are back, beyond it a leak; one kernel object more is a leak', async (t) => {
  t.same(leaks(compareResources(base, { ...base, fds: 294, heapUsedAfterGcBytes: 42 << 20 }, 0.05)), [])
  const out = leaks(compareResources(base, { ...base, fds: 295, mapEntries: { ...base.mapEntries, ferry_excl: 1 }, pinnedLinks: 27 }, 0.05)).map((d) => d.resource)
  t.same(out.sort(), ['fds', 'map ferry_excl', 'pinnedLinks'])
  t.same(leaks(compareResources(base, { ...base, heapUsedAfterGcBytes: 43 << 20 }, 0.05)).map((d) => d.resource), ['heapUsedAfterGcBytes'])
  t.same(leaks(compareResources(base, { ...base, heapUsedAfterGcBytes: null }, 0.05)).map((d) => d.resource), ['heapUsedAfterGcBytes'], 'a heap not measured is not back')
})

t.test('RSS and the per-connection LRU records are reported, not judged', async (t) => {
  const drifts = compareResources(base, { ...base, rssBytes: 200 << 20, mapEntries: { ...base.mapEntries, ferry_conn_by_cookie: 5000 } }, 0.05)
  t.same(leaks(drifts), [])
  t.same(drifts.filter((d) => d.reportedOnly).map((d) => d.resource).sort(), ['map ferry_conn_by_cookie', 'rssBytes'])
})

t.test('descriptors by kind', async (t) => {
  t.equal(fdKind('socket:[12345]'), 'socket')
  t.equal(fdKind('pipe:[7]'), 'pipe')
  t.equal(fdKind('anon_inode:bpf-map'), 'bpf-map')
  t.equal(fdKind('anon_inode:bpf-link'), 'bpf-link')
  t.equal(fdKind('anon_inode:[eventpoll]'), 'anon')
  t.equal(fdKind('/dev/null'), 'file')
})
