import t from 'tap'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { REPO_ROOT } from '../../src/native'
import { MAX_WORKERS as AGENT_MAX_WORKERS } from '../../src/agent/worker-count'
import {
  CONSTANTS, LAYOUT, MAX_WORKERS, dstCodec, exclKeyCodec, ipKeyCodec, liveWorkersCodec, origKeyCodec, podCodec, probeConnCodec, probeKeyCodec, probePortKeyCodec, probeStatsCodec, sockKeyCodec, sockmapStatsCodec, spliceCodec, synStatsCodec, uidKeyCodec
} from '../../src/capture/map-layout'

// The TypeScript twin of bpf/ferry_shared.h must match what the C compiler makes
// of it: compile a tiny program against the header and compare every size,
// offset and constant with LAYOUT / CONSTANTS.

function cLayout (): any {
  const dir = mkdtempSync(join(tmpdir(), 'fct-layout-'))
  try {
    const fields = Object.entries(LAYOUT).flatMap(([struct, l]) => [
      `printf("\\"${struct}\\": {\\"size\\": %zu, \\"fields\\": {", sizeof(struct ${struct}));`,
      Object.keys(l.fields).map((f, i) => `printf("${i === 0 ? '' : ','}\\"${f}\\": %zu", offsetof(struct ${struct}, ${f}));`).join('\n'),
      'printf("}},");'
    ])
    const consts = Object.keys(CONSTANTS).map((c, i) => `printf("${i === 0 ? '' : ','}\\"${c}\\": %lld", (long long)(${c}));`)
    const src = `#include <stdio.h>
#include <stddef.h>
#include "ferry_shared.h"
int main(void) {
printf("{\\"layout\\": {");
${fields.join('\n')}
printf("\\"_\\": null}, \\"constants\\": {");
${consts.join('\n')}
printf("}}");
return 0;
}`
    writeFileSync(join(dir, 'layout.c'), src)
    execFileSync('cc', ['-Wall', '-Werror', '-I', join(REPO_ROOT, 'bpf'), '-o', join(dir, 'layout'), join(dir, 'layout.c')])
    return JSON.parse(execFileSync(join(dir, 'layout')).toString())
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

t.test('sizes and offsets match bpf/ferry_shared.h', async (t) => {
  const c = cLayout()
  delete c.layout._
  t.same(c.layout, LAYOUT)
  t.same(c.constants, CONSTANTS)
})

t.test('the agent\'s --workers bound is the eBPF maps\' (FERRY_MAX_WORKERS)', async (t) => {
  t.equal(AGENT_MAX_WORKERS, MAX_WORKERS)
})

t.test('the live workers are a bitmask, bit w for worker w', async (t) => {
  t.same([...liveWorkersCodec.encode([0])], [1, 0, 0, 0])
  t.same([...liveWorkersCodec.encode([7, 1, 1])], [0x82, 0, 0, 0])
  t.same(liveWorkersCodec.decode(liveWorkersCodec.encode([3, 0, 2])), [0, 2, 3])
  t.same(liveWorkersCodec.decode(liveWorkersCodec.encode([])), [])
  t.throws(() => liveWorkersCodec.encode([MAX_WORKERS]), RangeError)
})

t.test('codec sizes are the struct sizes', async (t) => {
  t.equal(podCodec.size, LAYOUT.ferry_pod.size)
  t.equal(ipKeyCodec.size, LAYOUT.ferry_ip_key.size)
  t.equal(exclKeyCodec.size, LAYOUT.ferry_excl_key.size)
  t.equal(dstCodec.size, LAYOUT.ferry_dst.size)
  t.equal(origKeyCodec.size, LAYOUT.ferry_orig_key.size)
  t.equal(uidKeyCodec.size, LAYOUT.ferry_uid_key.size)
  t.equal(sockKeyCodec.size, LAYOUT.ferry_sock_key.size)
  t.equal(spliceCodec.size, LAYOUT.ferry_splice.size)
  t.equal(probeKeyCodec.size, LAYOUT.ferry_probe_key.size)
  t.equal(probeConnCodec.size, LAYOUT.ferry_probe_conn.size)
  t.equal(probePortKeyCodec.size, LAYOUT.ferry_probe_port_key.size)
  t.equal(probeStatsCodec.size, LAYOUT.ferry_probe_stats.size)
  t.equal(synStatsCodec.size, LAYOUT.ferry_syn_stats.size)
  t.equal(sockmapStatsCodec.size, LAYOUT.ferry_sockmap_stats.size)
})

t.test('codecs round-trip and put bytes where C expects them', async (t) => {
  t.same([...ipKeyCodec.encode('10.1.2.3')], [4, 0, 0, 0, 10, 1, 2, 3, ...new Array(12).fill(0)])
  for (const ip of ['10.1.2.3', 'fd00:1:2::2', '::1', '2001:db8::1:0:0:1', '::ffff:10.0.0.1', 'fe80::1']) {
    t.equal(ipKeyCodec.decode(ipKeyCodec.encode(ip)), ip, ip)
  }
  const dst = { family: 6 as const, address: 'fd00::1', port: 8443 }
  t.same(dstCodec.decode(dstCodec.encode(dst)), dst)
  const b = dstCodec.encode({ family: 4, address: '1.2.3.4', port: 0x1234 })
  t.same([...b.subarray(0, 8)], [4, 0, 0x34, 0x12, 1, 2, 3, 4], 'port is host (little endian) order')
  const key = { netnsCookie: 0x0102030405060708n, family: 4 as const, port: 40000 }
  t.same(origKeyCodec.decode(origKeyCodec.encode(key)), key)
  t.equal(uidKeyCodec.decode(uidKeyCodec.encode('pod-uid-1')), 'pod-uid-1')
  t.same(exclKeyCodec.decode(exclKeyCodec.encode({ slot: 7, dir: 1, port: 15006 })), { slot: 7, dir: 1, port: 15006 })
  t.same(podCodec.decode(podCodec.encode({ slot: 3, flags: 1 })), { slot: 3, flags: 1 })
  t.same([...probePortKeyCodec.encode({ slot: 2, port: 0x1f90 })], [2, 0, 0, 0, 0x90, 0x1f, 0, 0])
  const probe = { srcAddress: '10.1.2.1', srcPort: 40000, dstAddress: '10.1.2.2', dstPort: 8080 }
  t.same(probeKeyCodec.decode(probeKeyCodec.encode(probe)), probe)
  t.same([...probeKeyCodec.encode(probe).subarray(0, 12)], [4, 0, 0x40, 0x9c, 0x90, 0x1f, 0, 0, 10, 1, 2, 1], 'family, ports host order, then the source address in network order')
  const probe6 = { srcAddress: 'fd00::1', srcPort: 1, dstAddress: 'fd00::2', dstPort: 2 }
  t.same(probeKeyCodec.decode(probeKeyCodec.encode(probe6)), probe6)
  t.same(probeStatsCodec.decode(probeStatsCodec.encode({ admitted: 1n, notProbePort: 2n, expired: 3n })), { admitted: 1n, notProbePort: 2n, expired: 3n })
  const stats = { fromPodMsgs: 1n, fromPodBytes: 2n, toPodMsgs: 3n, toPodBytes: 4n, tcpMsgs: 5n }
  t.same(sockmapStatsCodec.decode(sockmapStatsCodec.encode(stats)), stats)
  t.equal(sockmapStatsCodec.encode(stats).readBigUInt64LE(LAYOUT.ferry_sockmap_stats.fields.tcp_msgs), 5n)
  t.same(synStatsCodec.decode(synStatsCodec.encode({ admitted: 1n, dropped: 2n, untracked: 3n, peer: 4n })), { admitted: 1n, dropped: 2n, untracked: 3n, peer: 4n })
})
