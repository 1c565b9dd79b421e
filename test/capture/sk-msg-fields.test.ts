import t from 'tap'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import type { Socket } from 'node:net'
import pino from 'pino'
import { Capture } from '../../src/capture'
import { Btf } from '../../src/capture/btf'
import { KERNEL_BTF, SK_MSG_FIELDS, SK_MSG_KFUNCS, skMsgGap } from '../../src/capture/sk-msg-fields'
import { PORTS } from '../../src/config/env'
import { REPO_ROOT, openNetns } from '../../src/native'
import { joinHop } from '../../src/worker/hop-shortcut'
import { podSpec, safely, serveFd, silentLog, uniquePinRoot, type AgentSide } from './helpers/capture-fixture'
import { kernelBtfWithout } from './helpers/kernel-btf'
import { makePodEnv, nodeClient } from './helpers/pod-env'

// The agent's BTF check of the sockmap shortcut (src/capture/sk-msg-fields.ts): the list
// is what bpf/sk_msg.bpf.c reads, the running kernel has all of it, and a kernel whose
// BTF lacks one field gets no shortcut — logged with a stable code — while its
// connections still flow by TCP.

/** The .BTF section of a compiled eBPF object (ELF64, little endian). */
function objectBtf (path: string): Btf {
  const elf = readFileSync(path)
  const shoff = Number(elf.readBigUInt64LE(0x28))
  const shentsize = elf.readUInt16LE(0x3a)
  const shnum = elf.readUInt16LE(0x3c)
  const shstr = shoff + elf.readUInt16LE(0x3e) * shentsize
  const names = Number(elf.readBigUInt64LE(shstr + 0x18))
  for (let i = 0; i < shnum; i++) {
    const sh = shoff + i * shentsize
    const nameAt = names + elf.readUInt32LE(sh)
    if (elf.toString('latin1', nameAt, elf.indexOf(0, nameAt)) !== '.BTF') continue
    const off = Number(elf.readBigUInt64LE(sh + 0x18))
    return new Btf(elf.subarray(off, off + Number(elf.readBigUInt64LE(sh + 0x20))))
  }
  throw new Error(`${path} has no .BTF`)
}

function capturingLog (): { log: pino.Logger, lines: any[] } {
  const lines: any[] = []
  const stream = new Writable({ write (c, _e, cb) { lines.push(JSON.parse(String(c))); cb() } })
  return { log: pino({ level: 'info' }, stream), lines }
}

/** Structs of sk_msg.bpf.o's BTF that are Ferry's own or the uapi's, not the kernel's internals. */
const NOT_KERNEL_INTERNAL = /^(ferry_|sk_msg_md$|bpf_sock$)/

t.test('the list is what bpf/sk_msg.bpf.c reads', async (t) => {
  const obj = objectBtf(join(REPO_ROOT, 'build', 'bpf', 'sk_msg.bpf.o'))
  const internal = obj.structNames().filter((n) => !NOT_KERNEL_INTERNAL.test(n))
  t.same(internal.sort(), Object.keys(SK_MSG_FIELDS).sort(), 'the kernel structs the object declares are the ones listed')
  for (const [struct, paths] of Object.entries(SK_MSG_FIELDS)) {
    t.same(obj.memberNames(struct), [...new Set(paths.map((p) => p.split('.')[0]))], `struct ${struct}: the members it declares`)
    for (const p of paths) t.ok(obj.hasMember(struct, p), `${struct}.${p} is declared as a path`)
  }
  for (const f of SK_MSG_KFUNCS) t.ok(obj.hasFunc(f), `the object calls kfunc ${f}`)
})

t.test('the running kernel has every field and kfunc the shortcut reads', async (t) => {
  t.equal(skMsgGap(), null)
  const kernel = new Btf(readFileSync(KERNEL_BTF))
  t.equal(kernel.hasMember('tcp_sock', 'no_such_member'), false, 'and the reader does say no')
  t.equal(kernel.hasMember('no_such_struct', 'x'), false)
  t.equal(kernel.hasMember('sock', '__sk_common.skc_cookie.counter'), true, 'a path through nested structs and a typedef')
})

t.test('a BTF that lacks one field, or cannot be read, says which', async (t) => {
  t.same(skMsgGap(kernelBtfWithout(t, 'msg_tot_len')), { missing: ['sk_psock.msg_tot_len'] })
  t.same(skMsgGap(kernelBtfWithout(t, 'bpf_rdonly_cast')), { missing: ['kfunc bpf_rdonly_cast'] })
  const gone = skMsgGap('/nonexistent/vmlinux')
  t.same(gone?.missing, [])
  t.match(gone?.unreadable, /nonexistent/)
})

t.test('on a kernel whose BTF lacks a field: no shortcut, logged, and connections still flow', async (t) => {
  const env = makePodEnv(t)
  const pinRoot = uniquePinRoot(t)
  // An earlier agent on this pin root left the shortcut attached.
  const earlier = await Capture.open({ pinRoot, log: silentLog })
  t.equal(earlier.sockmap, true)
  earlier.close()
  t.ok(existsSync(join(pinRoot, 'link_ferry_sk_msg')), 'the earlier agent pinned its sk_msg link')

  const { log, lines } = capturingLog()
  const capture = await Capture.open({ pinRoot, kernelBtf: kernelBtfWithout(t, 'msg_tot_len'), log })
  t.teardown(safely(() => capture.close()))
  t.equal(capture.sockmap, false, 'the shortcut is off')
  t.match(capture.sockmapStatus(), { enabled: false, code: 'FERRY_ERR_SOCKMAP_BTF', missing: ['sk_psock.msg_tot_len'] })
  t.notOk(existsSync(join(pinRoot, 'link_ferry_sk_msg')), 'the earlier agent\'s link is gone: off means off')
  const warned = lines.filter((l) => l.code === 'FERRY_ERR_SOCKMAP_BTF')
  t.equal(warned.length, 1, 'logged once')
  t.equal(warned[0]?.level, 40, 'as a warning')
  t.match(warned[0]?.msg, /sockmap shortcut off: .*lacks sk_psock\.msg_tot_len.*pod hops take TCP/)

  const netns = openNetns(env.podNsPath)
  t.teardown(() => netns.close())
  const joins: boolean[] = []
  const outbound = await serveFd(t, netns.listen({ family: 4, address: '127.0.0.1', port: PORTS.outbound }), (s: Socket) => {
    s.on('error', () => {})
    joins.push(joinHop(capture, netns.cookie, s))
    s.end('by TCP')
  })
  const inboundFds = {
    v4: netns.listen({ family: 4, address: '127.0.0.1', port: PORTS.inbound }),
    v6: netns.listen({ family: 6, address: '::1', port: PORTS.inbound })
  }
  const inbound = [await serveFd(t, inboundFds.v4, (s) => s.destroy()), await serveFd(t, inboundFds.v6, (s) => s.destroy())]
  const agent: AgentSide = { netns, seen: [], outbound: [outbound], inbound, inboundFds }
  capture.enrollPod(podSpec(env, agent))
  t.teardown(safely(() => capture.unenrollPod(env.id)))
  for (let i = 0; i < 3; i++) {
    const r = await env.runInPod(nodeClient(env.peerIP4, 8080))
    t.equal(JSON.parse(r.stdout).data, 'by TCP', `connection ${i + 1} reached the proxy and back`)
  }
  t.same(joins, [false, false, false], 'no hop joined the shortcut')
  t.equal(capture.sockmapStats().fromPodMsgs + capture.sockmapStats().toPodMsgs, 0n, 'nothing took it')
})
