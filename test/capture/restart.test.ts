import t from 'tap'
import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { Capture } from '../../src/capture'
import { HOOKS } from '../../src/capture/programs'
import { BpfLink } from '../../src/native'
import { agentSide, podSpec, safely, silentLog, uniquePinRoot } from './helpers/capture-fixture'
import { makePodEnv, nodeClient, type PodEnv } from './helpers/pod-env'

// Agent restarts: pins keep capture alive with no agent, a new agent adopts the
// pinned links in place (same link ids, no second attachment), unenroll and
// reconcile leave nothing behind.

function linkIds (pinRoot: string, uid: string): Record<string, { id: number, progId: number }> {
  const out: Record<string, { id: number, progId: number }> = {}
  for (const h of HOOKS) {
    const link = BpfLink.openPinned(join(pinRoot, 'pods', uid, h.prog))
    const { id, progId } = link.info()
    link.close()
    out[h.prog] = { id, progId }
  }
  return out
}

/** Attachments the kernel lists on the pod's cgroup (bpftool reads, the test only). */
function cgroupAttachments (cgroupPath: string): string[] {
  const json = JSON.parse(execFileSync('bpftool', ['cgroup', 'show', cgroupPath, '-j']).toString().trim() || '[]') as Array<{ attach_type: string }>
  return json.map((a) => a.attach_type).sort()
}

function netnsLinks (inode: number): number {
  const json = JSON.parse(execFileSync('bpftool', ['link', 'show', '-j']).toString()) as Array<{ type: string, netns_ino?: number }>
  return json.filter((l) => l.type === 'netns' && l.netns_ino === inode).length
}

async function capturedDst (env: PodEnv): Promise<string> {
  const r = await env.runInPod(nodeClient(env.peerIP4, 8080))
  return JSON.parse(r.stdout).data
}

t.test('enroll, agent exit, new agent, re-enroll, unenroll', async (t) => {
  const env = makePodEnv(t)
  const pinRoot = uniquePinRoot(t)
  let capture = await Capture.open({ pinRoot, log: silentLog })
  t.teardown(safely(() => capture.close()))
  const agent = await agentSide(t, env, () => capture)
  const spec = podSpec(env, agent)
  const expected = `outbound ${JSON.stringify({ address: env.peerIP4, port: 8080 })}`

  capture.enrollPod(spec)
  capture.enrollPod(spec) // idempotent in one agent too
  const slot = capture.slotOf(env.id)
  const first = linkIds(pinRoot, env.id)
  const attached = cgroupAttachments(env.cgroupPath)
  t.same(attached, ['cgroup_inet4_connect', 'cgroup_inet4_getpeername', 'cgroup_inet6_connect', 'cgroup_inet6_getpeername', 'cgroup_sock_ops'], 'one attachment per hook')
  t.equal(await capturedDst(env), expected)

  capture.close()
  t.equal(await capturedDst(env), 'outbound agent-down', 'still redirected while no agent holds the links (pins do)')

  capture = await Capture.open({ pinRoot, log: silentLog })
  t.same(capture.enrolledUids(), [env.id], 'the new agent knows the pinned pod')
  t.equal(capture.slotOf(env.id), slot, 'slot kept across restarts')
  capture.enrollPod(spec)
  const second = linkIds(pinRoot, env.id)
  for (const h of HOOKS) {
    t.equal(second[h.prog]?.id, first[h.prog]?.id, `${h.prog}: same link`)
    t.not(second[h.prog]?.progId, first[h.prog]?.progId, `${h.prog}: new program`)
  }
  t.same(cgroupAttachments(env.cgroupPath), attached, 'no duplicate attachments')
  t.equal(netnsLinks(agent.netns.inode), 1, 'one sk_lookup link on the pod netns')
  t.equal(await capturedDst(env), expected, 'capture works through the adopted links')

  capture.unenrollPod(env.id)
  t.notOk(existsSync(join(pinRoot, 'pods', env.id)), 'no pins left for the pod')
  t.same(cgroupAttachments(env.cgroupPath), [], 'nothing attached to the cgroup')
  t.same(capture.enrolledUids(), [])
  const r = await env.runInPod(nodeClient(env.peerIP4, 8080), { timeoutMs: 8000 })
  t.not(JSON.parse(r.stdout).data, expected, 'no longer captured')
})

t.test('reconcile removes pods the new agent does not keep', async (t) => {
  const a = makePodEnv(t)
  const b = makePodEnv(t)
  const pinRoot = uniquePinRoot(t)
  const capture = await Capture.open({ pinRoot, log: silentLog })
  t.teardown(safely(() => capture.close()))
  capture.enrollPod(podSpec(a, await agentSide(t, a, () => capture)))
  capture.enrollPod(podSpec(b, await agentSide(t, b, () => capture)))
  t.same(capture.enrolledUids(), [a.id, b.id].sort())
  capture.reconcile(new Set([a.id]))
  t.same(capture.enrolledUids(), [a.id])
  t.ok(existsSync(join(pinRoot, 'pods', a.id)), 'kept pod keeps its pins')
  t.notOk(existsSync(join(pinRoot, 'pods', b.id)), 'removed pod has no pins')
  t.same(cgroupAttachments(b.cgroupPath), [])
  capture.unenrollPod(a.id)
})
