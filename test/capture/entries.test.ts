import t from 'tap'
import { closeSync } from 'node:fs'
import { join } from 'node:path'
import { Capture } from '../../src/capture'
import { BpfMap } from '../../src/native'
import { sockmapIndex } from '../../src/capture/pod-entries'
import { exclKeyCodec, ipKeyCodec, liveWorkersCodec, podCodec, probePortKeyCodec, probeStatsCodec, u32Codec, u64Codec, u8Codec, uidKeyCodec } from '../../src/capture/map-layout'
import { agentSide, podSpec, safely, silentLog, uniquePinRoot } from './helpers/capture-fixture'
import { makePodEnv } from './helpers/pod-env'

// What enroll, re-enroll and unenroll leave in the pinned maps, read back
// through the pins as a restarted agent (or bpftool) would see them.

t.test('map entries follow the spec and go away with the pod', async (t) => {
  const env = makePodEnv(t)
  const pinRoot = uniquePinRoot(t)
  const capture = await Capture.open({ pinRoot, log: silentLog })
  t.teardown(safely(() => capture.close()))
  const agent = await agentSide(t, env, () => capture)
  const open = <K, V>(name: string, k: any, v: any): BpfMap<K, V> => {
    const m = BpfMap.openPinned<K, V>(join(pinRoot, name), k, v)
    t.teardown(() => m.close())
    return m
  }
  const podIps = open<string, any>('ferry_pod_ips', ipKeyCodec, podCodec)
  const pods = open<bigint, any>('ferry_pods', u64Codec, podCodec)
  const excl = open<any, number>('ferry_excl', exclKeyCodec, u8Codec)
  const inbound = open<number, bigint>('ferry_inbound', u32Codec, u64Codec)
  const slots = open<string, number>('ferry_slots', uidKeyCodec, u32Codec)
  const probePorts = open<any, number>('ferry_probe_ports', probePortKeyCodec, u8Codec)
  const probeStats = open<number, any>('ferry_probe_stats', u32Codec, probeStatsCodec)
  const workers = open<number, readonly number[]>('ferry_workers', u32Codec, liveWorkersCodec)
  const listeners = (slot: number): string[] => {
    const out: string[] = []
    for (let w = 0; w < 8; w++) for (const f of [4, 6] as const) if (inbound.get(sockmapIndex(slot, w, f)) !== null) out.push(`${w}v${f}`)
    return out
  }
  t.same(workers.get(0), [0], 'opening capture makes worker 0 the live one')

  capture.enrollPod(podSpec(env, agent, { excludeOutboundPorts: [22, 9999], excludeInboundPorts: [7777], probePorts: [8080, 8081] }))
  const slot = capture.slotOf(env.id) ?? -1
  t.same(probePorts.keys().map((k) => `${k.slot}:${k.port}`).sort(), [`${slot}:8080`, `${slot}:8081`], 'probe ports by slot')
  t.same(slots.entries(), [[env.id, slot]])
  t.same(pods.entries(), [[agent.netns.cookie, { slot, flags: 1 }]])
  t.same(podIps.entries().map(([ip]) => ip).sort(), [env.podIP4, env.podIP6].sort())
  t.same(excl.keys().map((k) => `${k.dir}:${k.port}`).sort(), ['0:22', '0:9999', '1:7777'])
  t.same(listeners(slot), ['0v4', '0v6'], 'both listeners of the one worker in the sockmap')

  // Three workers' listeners (the fixture's pair, twice more in the same netns).
  const more = [0, 1].map(() => ({ v4: agent.netns.listen({ family: 4, address: '127.0.0.1', port: 0 }), v6: agent.netns.listen({ family: 6, address: '::1', port: 0 }) }))
  t.teardown(() => { for (const p of more) { closeSync(p.v4); closeSync(p.v6) } })
  capture.enrollPod(podSpec(env, agent, { inboundListenerFds: [agent.inboundFds, ...more] }))
  t.same(listeners(slot), ['0v4', '0v6', '1v4', '1v6', '2v4', '2v6'], 'one pair per worker, at (slot * 8 + worker) * 2 + v6')
  capture.setLiveWorkers([2, 0, 1, 2])
  t.same(workers.get(0), [0, 1, 2], 'the live set as given, once each')

  capture.enrollPod(podSpec(env, agent, { podIPs: [env.podIP4], excludeOutboundPorts: [22], excludeInboundPorts: [], failClosed: false }))
  t.same(podIps.entries(), [[env.podIP4, { slot, flags: 0 }]], 'dropped address removed, flags updated')
  t.same(listeners(slot), ['0v4', '0v6'], 'fewer workers: the others\' listeners removed')
  t.same(excl.keys().map((k) => `${k.dir}:${k.port}`), ['0:22'], 'dropped exclusions removed')
  t.same(probePorts.keys(), [], 'dropped probe ports removed')
  probeStats.set(slot, { admitted: 5n, notProbePort: 1n, expired: 0n })

  capture.unenrollPod(env.id)
  t.same([slots.keys(), pods.keys(), podIps.keys(), excl.keys(), probePorts.keys()], [[], [], [], [], []], 'nothing left')
  t.same(probeStats.get(slot), { admitted: 0n, notProbePort: 0n, expired: 0n }, 'the slot\'s counters start again at 0')
  t.same(listeners(slot), [], 'the listeners removed')
  capture.enrollPod(podSpec(env, agent, { inboundListenerFds: [agent.inboundFds, ...more] }))
  const again = capture.slotOf(env.id) ?? -1
  t.equal(listeners(again).length, 6)
  capture.unenrollPod(env.id)
  t.same(listeners(again), [], 'every worker\'s listeners removed')
  capture.unenrollPod(env.id) // unknown now: a no-op
})
