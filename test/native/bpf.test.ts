import t from 'tap'
import { execFileSync } from 'node:child_process'
import { closeSync, existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { isFerryError } from '../../src/errors'
import { BpfLink, BpfMap, BpfObject, REPO_ROOT, openNetns } from '../../src/native'
import { loadNative } from '../../src/native/binding'
import { u32Codec, u64Codec, podCodec } from '../../src/capture/map-layout'
import { safely, uniquePinRoot } from '../capture/helpers/capture-fixture'
import { makePodEnv, removeCgroup } from '../capture/helpers/pod-env'
import { PATHS } from '../../src/config/env'
import { uniqueName } from '../helpers/names'

// The addon's libbpf side on the real kernel: load with a pin root and rodata,
// verifier failures with their log, links (attach, pin, reopen, update, detach),
// map operations including a SOCKMAP fed with a socket fd.

const OBJ = (name: string): string => join(REPO_ROOT, 'build', 'bpf', `${name}.bpf.o`)

t.test('loading', async (t) => {
  const pinRoot = uniquePinRoot(t)
  mkdirSync(pinRoot)

  t.test('an object loads, lists its programs and pins its maps by name', async (t) => {
    const obj = BpfObject.open({ path: OBJ('connect'), pinRoot, rodata: { ferry_outbound_port: 15001 } })
    t.teardown(() => obj.close())
    t.same(obj.programs().map((p) => [p.name, p.section]), [['ferry_connect4', 'cgroup/connect4'], ['ferry_connect6', 'cgroup/connect6']])
    t.ok(obj.progFd('ferry_connect4') > 0)
    t.ok(existsSync(join(pinRoot, 'ferry_pods')), 'maps pinned under the pin root')
  })

  t.test('a second object reuses the pinned maps', async (t) => {
    const a = BpfObject.open({ path: OBJ('connect'), pinRoot })
    const b = BpfObject.open({ path: OBJ('sk_lookup'), pinRoot })
    t.teardown(() => { a.close(); b.close() })
    const ma = new BpfMap(a.mapFd('ferry_pods'), u64Codec, podCodec)
    const mb = new BpfMap(b.mapFd('ferry_pods'), u64Codec, podCodec)
    t.teardown(() => { ma.close(); mb.close() })
    t.equal(ma.info.id, mb.info.id)
  })

  t.test('a load-time setting reaches the loaded program', async (t) => {
    const obj = BpfObject.open({ path: OBJ('connect'), pinRoot, rodata: { ferry_outbound_port: 15011 } })
    const cgroup = join(PATHS.cgroup2, uniqueName('fct'))
    mkdirSync(cgroup)
    const link = obj.attachCgroup('ferry_connect4', cgroup)
    t.teardown(() => { link.close(); obj.close(); removeCgroup(cgroup) })
    const bpftool = (...args: string[]): any => JSON.parse(execFileSync('bpftool', [...args, '-j']).toString())
    const mapIds = bpftool('prog', 'show', 'id', String(link.info().progId)).map_ids as number[]
    const rodata = mapIds.find((id) => String(bpftool('map', 'show', 'id', String(id)).name).endsWith('.rodata'))
    t.same(bpftool('map', 'dump', 'id', String(rodata))[0].formatted.value['.rodata'], [{ ferry_outbound_port: 15011 }, { ferry_inbound_port: 15006 }])
  })

  t.test('unknown load-time setting and a value too big are typed errors', async (t) => {
    t.throws(() => BpfObject.open({ path: OBJ('connect'), pinRoot, rodata: { nope: 1 } }), { code: 'FERRY_ERR_BPF_LOAD' })
    t.throws(() => BpfObject.open({ path: OBJ('connect'), pinRoot, rodata: { ferry_outbound_port: 70000 } }), { code: 'FERRY_ERR_INVALID_ARG' })
    t.throws(() => BpfObject.open({ path: '/nonexistent.bpf.o', pinRoot }), { code: 'FERRY_ERR_NATIVE_MISSING' })
  })

  t.test('a verifier rejection carries the verifier log', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'fct-bad-'))
    t.teardown(() => rmSync(dir, { recursive: true, force: true }))
    writeFileSync(join(dir, 'bad.bpf.c'), `#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
SEC("cgroup/connect4")
int bad(struct bpf_sock_addr *ctx) { return *(int *)(long)ctx->user_port; }
char LICENSE[] SEC("license") = "GPL";
`)
    execFileSync('clang', ['-O2', '-g', '-target', 'bpf', `-I/usr/include/${process.arch === 'x64' ? 'x86_64' : 'aarch64'}-linux-gnu`, '-c', join(dir, 'bad.bpf.c'), '-o', join(dir, 'bad.bpf.o')])
    const err = t.throws(() => BpfObject.open({ path: join(dir, 'bad.bpf.o'), pinRoot })) as Error
    t.ok(isFerryError(err, 'FERRY_ERR_BPF_LOAD'))
    t.match(err.message, /BEGIN PROG LOAD LOG[\s\S]*invalid mem access/, 'verifier output in the message')
    t.match(err, { errno: 'EACCES' })
  })

  t.test('a missing addon is FERRY_ERR_NATIVE_MISSING', async (t) => {
    t.throws(() => loadNative('/nonexistent/ferry_native.node'), { code: 'FERRY_ERR_NATIVE_MISSING' })
  })
})

t.test('links', async (t) => {
  const pinRoot = uniquePinRoot(t)
  mkdirSync(pinRoot)
  const cgroup = join(PATHS.cgroup2, uniqueName('fct'))
  mkdirSync(cgroup)
  t.teardown(() => removeCgroup(cgroup))
  const a = BpfObject.open({ path: OBJ('connect'), pinRoot })
  const b = BpfObject.open({ path: OBJ('connect'), pinRoot })
  t.teardown(safely(() => { a.close(); b.close() }))
  const pin = join(pinRoot, 'connect4-link')

  const link = a.attachCgroup('ferry_connect4', cgroup)
  const info = link.info()
  t.equal(info.cgroupId, statSync(cgroup, { bigint: true }).ino, 'cgroup id is the directory inode')
  link.pin(pin)
  link.close()

  const reopened = BpfLink.openPinned(pin)
  t.teardown(safely(() => { reopened.unpin(); reopened.close() }))
  t.equal(reopened.info().id, info.id, 'the pin kept the link')
  reopened.update(b.progFd('ferry_connect4'))
  const updated = reopened.info()
  t.equal(updated.id, info.id, 'same link after BPF_LINK_UPDATE')
  t.not(updated.progId, info.progId, 'new program')

  const fd = require('node:fs').openSync(cgroup, 'r')
  const byFd = a.attachCgroup('ferry_connect6', fd)
  closeSync(fd)
  t.equal(byFd.info().cgroupId, info.cgroupId, 'attach by cgroup fd')
  byFd.close()

  reopened.detach()
  t.equal(reopened.info().cgroupId, 0n, 'detached link has no cgroup')
  reopened.unpin()
  t.notOk(existsSync(pin))
  t.throws(() => a.attachCgroup('ferry_connect4', '/nonexistent-cgroup'), { code: 'FERRY_ERR_CGROUP', errno: 'ENOENT' })
  t.throws(() => a.attachCgroup('nope', cgroup), { code: 'FERRY_ERR_INVALID_ARG' })
})

t.test('maps', async (t) => {
  const pinRoot = uniquePinRoot(t)
  mkdirSync(pinRoot)
  const obj = BpfObject.open({ path: OBJ('sk_lookup'), pinRoot })
  t.teardown(safely(() => obj.close()))

  t.test('hash map: set, get, keys, take, delete', async (t) => {
    const pods = BpfMap.openPinned(join(pinRoot, 'ferry_pods'), u64Codec, podCodec)
    t.teardown(() => pods.close())
    pods.set(1n, { slot: 1, flags: 0 })
    pods.set(2n, { slot: 2, flags: 1 })
    t.same(pods.get(2n), { slot: 2, flags: 1 })
    t.same(pods.keys().sort(), [1n, 2n])
    t.throws(() => pods.set(1n, { slot: 9, flags: 0 }, 'noexist'), { code: 'FERRY_ERR_BPF_MAP', errno: 'EEXIST' })
    t.same(pods.take(1n), { slot: 1, flags: 0 })
    t.equal(pods.get(1n), null)
    t.equal(pods.delete(2n), true)
    t.equal(pods.delete(2n), false)
    t.same(pods.keys(), [])
  })

  t.test('codec sizes are checked against the kernel map', async (t) => {
    t.throws(() => BpfMap.openPinned(join(pinRoot, 'ferry_pods'), u32Codec, podCodec), { code: 'FERRY_ERR_BPF_MAP' })
  })

  t.test('SOCKMAP takes a listening socket fd and gives back its cookie; close removes it', async (t) => {
    const env = makePodEnv(t)
    const ns = openNetns(env.podNsPath)
    t.teardown(() => ns.close())
    const inbound = BpfMap.openPinned(join(pinRoot, 'ferry_inbound'), u32Codec, u64Codec)
    t.teardown(() => inbound.close())
    const fd = ns.listen({ family: 4, address: '127.0.0.1', port: 15006 })
    inbound.set(4, BigInt(fd))
    const cookie = inbound.get(4)
    t.type(cookie, 'bigint')
    t.ok((cookie ?? 0n) > 0n, 'socket cookie')
    closeSync(fd)
    t.equal(inbound.get(4), null, 'closing the socket empties its index')
    t.throws(() => inbound.delete(4), { name: 'FerryError', errno: 'EINVAL' }, 'empty SOCKMAP index deletes as EINVAL')
  })
})

// A pending signal makes the verifier give up with EAGAIN, and libbpf retries only a few
// times: under V8's CPU profiler (SIGPROF every sampling interval) the bigger programs
// failed to load. The addon blocks signals on the loading thread for the load.
t.test('objects load while a CPU profiler signals the thread every 50 µs', async (t) => {
  const pinRoot = uniquePinRoot(t)
  mkdirSync(pinRoot)
  const profDir = mkdtempSync(join(tmpdir(), 'ferry-prof-'))
  t.teardown(() => { rmSync(profDir, { recursive: true, force: true }) })
  const script = `
    const { BpfObject } = require(${JSON.stringify(join(REPO_ROOT, 'dist', 'src', 'native'))})
    for (let i = 0; i < 5; i++) for (const name of ['sk_lookup', 'sockops', 'sk_msg', 'connect']) {
      BpfObject.open({ path: ${JSON.stringify(join(REPO_ROOT, 'build', 'bpf'))} + '/' + name + '.bpf.o', pinRoot: ${JSON.stringify(pinRoot)} }).close()
    }
    process.stdout.write('loaded')`
  const out = execFileSync(process.execPath, ['--cpu-prof', '--cpu-prof-interval', '50', `--cpu-prof-dir=${profDir}`, '-e', script], { timeout: 120_000 }).toString()
  t.equal(out, 'loaded', 'every load succeeded under the profiler')
})
