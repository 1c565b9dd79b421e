import t from 'tap'
import { existsSync, readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { REPO, ferry, ferryOk, sh } from '../helpers/cli'
import { accessLines, agentPids, capturedRequest, execInPod, labNetns, pod } from '../helpers/lab'
import { waitFor } from '../helpers/wait'
import { uniqueLabName } from '../helpers/names'

// Agent crash and restart, for real: the node's agent is SIGKILLed (no cleanup at all)
// and a new one started, as kubelet would. The new agent must reuse the pinned maps and
// links — same link ids, updated in place, nothing attached twice — and capture new
// connections again. Then `ferry lab down` must leave nothing of the lab behind.

const lab = uniqueLabName('e2ers')
const fixture = join(REPO, 'test/fixtures/one-node.yaml')
const pinRoot = `/sys/fs/bpf/ferry-lab-${lab}-n1`
let downDone = false

t.before(async () => { await ferryOk(['lab', 'up', '--name', lab, fixture], { timeoutMs: 120_000 }) })
t.teardown(async () => { if (!downDone) await ferry(['lab', 'down', lab], { timeoutMs: 60_000 }) })

interface LinkView { pin: string, id: number, progId: number }

function podLinks (uid: string): LinkView[] {
  const dir = join(pinRoot, 'pods', uid)
  return readdirSync(dir).sort().map((name) => {
    const info = JSON.parse(sh(`bpftool -j link show pinned ${join(dir, name)}`))
    return { pin: name, id: info.id, progId: info.prog_id }
  })
}

/** The node-wide sk_msg link on ferry_socks (the sockmap shortcut). */
function skMsgLink (): LinkView {
  const info = JSON.parse(sh(`bpftool -j link show pinned ${join(pinRoot, 'link_ferry_sk_msg')}`))
  return { pin: 'link_ferry_sk_msg', id: info.id, progId: info.prog_id }
}

/** Programs attached to a cgroup, as the kernel reports them (links and legacy attachments alike). */
function cgroupAttachments (cgroup: string): number {
  return (JSON.parse(sh(`bpftool -j cgroup show ${cgroup}`) || '[]') as unknown[]).length
}

t.test('SIGKILL + restart: pins reused, links updated in place, capture resumes, nothing attached twice', async (t) => {
  const client = pod(lab, 'app', 'client')
  const server = pod(lab, 'app', 'server-a')
  const cgroup = client.annotations['lab.ferry.dev/cgroup']
  await capturedRequest(lab, server.ips[0])

  t.equal(agentPids(pinRoot).length, 1, 'one agent runs')
  const linksBefore = podLinks(client.uid)
  t.ok(linksBefore.length >= 4, `client pod has pinned links: ${linksBefore.map((l) => l.pin).join(', ')}`)
  const attachedBefore = cgroupAttachments(cgroup)
  t.ok(attachedBefore >= 4, `programs attached to the client's cgroup: ${attachedBefore}`)
  const mapsBefore = readdirSync(pinRoot).filter((n) => n.startsWith('ferry_')).sort()
  const skMsgBefore = skMsgLink()

  const out = await ferryOk(['lab', 'restart', '--lab', lab, '--node', 'n1', '--signal', 'KILL'], { timeoutMs: 60_000 })
  t.match(out, /restarted/)

  const linksAfter = podLinks(client.uid)
  t.same(linksAfter.map((l) => [l.pin, l.id]), linksBefore.map((l) => [l.pin, l.id]), 'same pinned links, same link ids')
  for (let i = 0; i < linksAfter.length; i++) {
    t.not(linksAfter[i].progId, linksBefore[i].progId, `${linksAfter[i].pin}: updated in place to the new agent's program`)
  }
  t.equal(cgroupAttachments(cgroup), attachedBefore, 'nothing attached twice to the cgroup')
  t.same(readdirSync(pinRoot).filter((n) => n.startsWith('ferry_')).sort(), mapsBefore, 'the same pinned maps')
  const skMsgAfter = skMsgLink()
  t.equal(skMsgAfter.id, skMsgBefore.id, 'the same sk_msg link')
  t.not(skMsgAfter.progId, skMsgBefore.progId, "sk_msg updated in place to the new agent's program")

  await capturedRequest(lab, server.ips[0])
  const restarts = accessLines(lab, 'n1').filter((l) => l.direction === 'outbound' && l.source?.pod === 'client')
  t.ok(restarts.length >= 2, 'captured before and after the restart')
})

t.test('down leaves no namespace, cgroup, pin, attached link or process of the lab', async (t) => {
  const client = pod(lab, 'app', 'client')
  const ids = [...podLinks(client.uid).map((l) => l.id), skMsgLink().id]
  const alive = (id: number): boolean => !sh(`bpftool -j link show id ${id} 2>&1`).includes('"error"')
  t.ok(ids.length > 0 && ids.every(alive), `the kernel knows links ${ids.join(',')} before down`)
  await ferryOk(['lab', 'down', lab], { timeoutMs: 60_000 })
  downDone = true
  t.notOk(existsSync(pinRoot), 'pin root removed')
  t.same(labNetns(lab), [], 'no network namespace')
  t.notOk(sh(`find /sys/fs/cgroup/unified -maxdepth 1 -name 'ferry-lab-${lab}'`).trim(), 'no cgroup')
  // Links are freed once nothing pins or holds them: ask the kernel for each id.
  await waitFor(() => ids.every((id) => !alive(id)), { what: `links ${ids.join(',')} to be released`, timeoutMs: 5_000 })
  t.same(agentPids(pinRoot), [], 'no agent process')
})
