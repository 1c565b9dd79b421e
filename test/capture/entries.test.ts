import t from 'tap'
import { join } from 'node:path'
import { Capture } from '../../src/capture'
import { BpfMap } from '../../src/native'
import { exclKeyCodec, ipKeyCodec, podCodec, probePortKeyCodec, probeStatsCodec, u32Codec, u64Codec, u8Codec, uidKeyCodec } from '../../src/capture/map-layout'
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

  capture.enrollPod(podSpec(env, agent, { excludeOutboundPorts: [22, 9999], excludeInboundPorts: [7777], probePorts: [8080, 8081] }))
  const slot = capture.slotOf(env.id) ?? -1
  t.same(probePorts.keys().map((k) => `${k.slot}:${k.port}`).sort(), [`${slot}:8080`, `${slot}:8081`], 'probe ports by slot')
  t.same(slots.entries(), [[env.id, slot]])
  t.same(pods.entries(), [[agent.netns.cookie, { slot, flags: 1 }]])
  t.same(podIps.entries().map(([ip]) => ip).sort(), [env.podIP4, env.podIP6].sort())
  t.same(excl.keys().map((k) => `${k.dir}:${k.port}`).sort(), ['0:22', '0:9999', '1:7777'])
  t.ok(inbound.get(slot * 2) !== null && inbound.get(slot * 2 + 1) !== null, 'both listeners in the sockmap')

  capture.enrollPod(podSpec(env, agent, { podIPs: [env.podIP4], excludeOutboundPorts: [22], excludeInboundPorts: [], failClosed: false }))
  t.same(podIps.entries(), [[env.podIP4, { slot, flags: 0 }]], 'dropped address removed, flags updated')
  t.same(excl.keys().map((k) => `${k.dir}:${k.port}`), ['0:22'], 'dropped exclusions removed')
  t.same(probePorts.keys(), [], 'dropped probe ports removed')
  probeStats.set(slot, { admitted: 5n, notProbePort: 1n, expired: 0n })

  capture.unenrollPod(env.id)
  t.same([slots.keys(), pods.keys(), podIps.keys(), excl.keys(), probePorts.keys()], [[], [], [], [], []], 'nothing left')
  t.same(probeStats.get(slot), { admitted: 0n, notProbePort: 0n, expired: 0n }, 'the slot\'s counters start again at 0')
  t.equal(inbound.get(slot * 2), null)
  capture.unenrollPod(env.id) // unknown now: a no-op
})
