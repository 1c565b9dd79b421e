import t from 'tap'
import { execFileSync } from 'node:child_process'
import { join } from 'node:path'
import type { Server, Socket } from 'node:net'
import { Capture } from '../../src/capture'
import { probeConnCodec, probeKeyCodec, type ProbeConn, type ProbeKey } from '../../src/capture/map-layout'
import { KUBELET_HOOK } from '../../src/capture/programs'
import { PATHS } from '../../src/config/env'
import { BpfLink, BpfMap } from '../../src/native'
import { agentSide, podSpec, safely, serveFd, silentLog, uniquePinRoot } from './helpers/capture-fixture'
import { makeCgroup, makePodEnv, nodeClient } from './helpers/pod-env'
import { waitFor } from '../helpers/wait'

// Probe admission on the real kernel. The peer namespace plays the node: a process in
// the stand-in kubelet cgroup there (bpf/kubelet.bpf.c is attached to it) connects to
// the pod's probe port and reaches the application itself; the same process to another
// port, a process of another cgroup in the same netns with the same source address (a
// hostNetwork pod), a tuple the kubelet no longer holds, or a record past its freshness
// bound are all steered to the inbound listener like any plaintext. Without the feature
// every one of these reaches the inbound listener (the first assertion fails).

const PROBE = 8080
const OTHER = 9090
const HELD = 8081

/** Attachments the kernel lists on a cgroup (bpftool reads, the test only). */
function cgroupAttachments (cgroupPath: string): string[] {
  const json = JSON.parse(execFileSync('bpftool', ['cgroup', 'show', cgroupPath, '-j']).toString().trim() || '[]') as Array<{ attach_type: string }>
  return json.map((a) => a.attach_type).sort()
}

t.test('probe admission', async (t) => {
  const env = makePodEnv(t)
  const kubelet = makeCgroup(t, 'fct-kubelet')
  const hostNetworkPod = makeCgroup(t, 'fct-hostnet')
  const pinRoot = uniquePinRoot(t)
  let capture = await Capture.open({ pinRoot, log: silentLog })
  t.teardown(safely(() => capture.close()))
  const agent = await agentSide(t, env, () => capture)
  let proxied = 0
  for (const s of agent.inbound) s.on('connection', () => { proxied++ })
  capture.enrollPod(podSpec(env, agent, { probePorts: [PROBE, HELD] }))
  t.teardown(safely(() => capture.unenrollPod(env.id)))
  capture.setKubeletCgroup(kubelet)

  // The application: replies at once on PROBE and OTHER; holds connections on HELD until told.
  const held: Socket[] = []
  const app = (name: string) => (s: Socket): void => { s.on('error', () => {}); s.end(name) }
  for (const port of [PROBE, OTHER]) {
    await serveFd(t, agent.netns.listen({ family: 4, address: '0.0.0.0', port }), app('app'))
    await serveFd(t, agent.netns.listen({ family: 6, address: '::', port }), app('app6'))
  }
  await serveFd(t, agent.netns.listen({ family: 4, address: '0.0.0.0', port: HELD }), (s) => { s.on('error', () => {}); held.push(s) })

  const probeConns = BpfMap.openPinned<ProbeKey, ProbeConn>(join(pinRoot, 'ferry_probe_conns'), probeKeyCodec, probeConnCodec)
  t.teardown(() => probeConns.close())
  const recordsTo = (address: string): ProbeKey[] => probeConns.keys().filter((k) => k.dstAddress === address)

  /** Connects from the node namespace as a process of `cgroup`; the client's JSON line. */
  const from = async (cgroup: string, host: string, port: number, localPort?: number): Promise<{ data?: string, error?: string, localPort?: number }> => {
    const r = await env.runInPod(nodeClient(host, port, { localPort }), { netnsPath: env.peerNsPath, cgroupPath: cgroup })
    t.equal(r.code, 0, r.stderr)
    return JSON.parse(r.stdout)
  }
  const steered = (port: number, ip = env.podIP4): string => `inbound ${ip} ${port}`

  t.test('the kubelet reaches the application on a probe port; the proxy accepts nothing', async (t) => {
    t.equal((await from(kubelet, env.podIP4, PROBE)).data, 'app')
    t.equal((await from(kubelet, env.podIP6, PROBE)).data, 'app6', 'v6 likewise')
    t.equal(proxied, 0, 'the inbound listener accepted nothing')
    t.same(recordsTo(env.podIP4), [], 'each record went with its closed connection')
  })

  t.test('the kubelet to a port no probe names is steered to the proxy', async (t) => {
    t.equal((await from(kubelet, env.podIP4, OTHER)).data, steered(OTHER))
  })

  t.test('a hostNetwork pod (same netns and address, another cgroup) is steered to the proxy', async (t) => {
    t.equal((await from(hostNetworkPod, env.podIP4, PROBE)).data, steered(PROBE))
    t.equal((await from(hostNetworkPod, env.podIP6, PROBE)).data, steered(PROBE, env.podIP6))
  })

  t.test('the record lives as long as the kubelet\'s connection; its tuple reused later is not the kubelet\'s', async (t) => {
    const client = from(kubelet, env.podIP4, HELD)
    await waitFor(() => held.length === 1, { timeoutMs: 5000, what: 'the app accepted the kubelet\'s connection' })
    const srcPort = held[0].remotePort as number
    t.same(recordsTo(env.podIP4), [{ srcAddress: env.peerIP4, srcPort, dstAddress: env.podIP4, dstPort: HELD }], 'recorded while open')
    held[0].end('app held')
    t.equal((await client).data, 'app held')
    await waitFor(() => recordsTo(env.podIP4).length === 0, { timeoutMs: 5000, what: 'record deleted at close' })
    t.pass('record deleted at close')
    const reuse = await from(hostNetworkPod, env.podIP4, HELD, srcPort)
    t.equal(reuse.localPort, srcPort, 'the same tuple')
    t.equal(reuse.data, steered(HELD), 'steered to the proxy')
  })

  t.test('a record past the freshness bound admits nothing (a close the program missed)', async (t) => {
    const srcPort = 40000 + Math.floor(Math.random() * 10000)
    const key = { srcAddress: env.peerIP4, srcPort, dstAddress: env.podIP4, dstPort: PROBE }
    const before = capture.probeCounts().get(env.id)
    probeConns.set(key, { connectedNs: 1n, sockCookie: 0n })
    t.equal((await from(hostNetworkPod, env.podIP4, PROBE, srcPort)).data, steered(PROBE), 'stale: steered')
    t.equal(capture.probeCounts().get(env.id)?.expired, (before?.expired ?? 0) + 1, 'counted as expired')
    // The same record, fresh (CLOCK_MONOTONIC, as bpf_ktime_get_ns), does admit: only its age differed.
    probeConns.set(key, { connectedNs: process.hrtime.bigint(), sockCookie: 0n })
    t.equal((await from(hostNetworkPod, env.podIP4, PROBE, srcPort)).data, 'app', 'fresh: admitted')
    probeConns.delete(key)
  })

  t.test('counters per pod', async (t) => {
    // Admitted: two probes, the held one and the fresh record; not a probe port: one.
    t.same(capture.probeCounts().get(env.id), { admitted: 4, notProbePort: 1, expired: 1 })
  })

  t.test('refuses a cgroup that cannot be the kubelet\'s', async (t) => {
    for (const path of [PATHS.cgroup2, join(kubelet, 'missing'), '/tmp']) {
      t.throws(() => { capture.setKubeletCgroup(path) }, { code: 'FERRY_ERR_KUBELET_CGROUP' }, path)
    }
    capture.setKubeletCgroup(kubelet)
  })

  t.test('turned off: the link is detached and the kubelet is steered like anyone', async (t) => {
    capture.setKubeletCgroup(null)
    t.same(cgroupAttachments(kubelet), [], 'nothing attached to the kubelet cgroup')
    t.equal((await from(kubelet, env.podIP4, PROBE)).data, steered(PROBE))
    capture.setKubeletCgroup(kubelet)
    t.same(cgroupAttachments(kubelet), ['cgroup_sock_ops'])
    t.equal((await from(kubelet, env.podIP4, PROBE)).data, 'app', 'on again')
  })

  t.test('agent down: probes still reach the app, others are refused (fail closed); a new agent adopts the link', async (t) => {
    const path = join(pinRoot, `link_${KUBELET_HOOK.prog}`)
    const linkId = (): { id: number, progId: number } => { const l = BpfLink.openPinned(path); const { id, progId } = l.info(); l.close(); return { id, progId } }
    const first = linkId()
    capture.close()
    await Promise.all(agent.inbound.map(async (s: Server) => await new Promise((resolve) => s.close(resolve))))
    t.equal((await from(kubelet, env.podIP4, PROBE)).data, 'app', 'the kubelet\'s probe reaches the app with no agent')
    t.equal((await from(hostNetworkPod, env.podIP4, PROBE)).error, 'ECONNREFUSED', 'anything else is refused')
    capture = await Capture.open({ pinRoot, log: silentLog })
    capture.setKubeletCgroup(kubelet)
    const second = linkId()
    t.equal(second.id, first.id, 'same link')
    t.not(second.progId, first.progId, 'new program')
    t.same(cgroupAttachments(kubelet), ['cgroup_sock_ops'], 'attached once')
    t.equal((await from(kubelet, env.podIP4, PROBE)).data, 'app', 'probes go on through the adopted link')
  })
})
