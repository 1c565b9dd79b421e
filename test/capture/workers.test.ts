import t, { type Test } from 'tap'
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, readlinkSync, unlinkSync } from 'node:fs'
import type { Server, Socket } from 'node:net'
import { join } from 'node:path'
import { Capture } from '../../src/capture'
import { PATHS, PORTS } from '../../src/config/env'
import { openNetns, type Netns } from '../../src/native'
import { waitFor } from '../helpers/wait'
import { inParallel, startIntruder, tally } from '../helpers/reuseport-intruder'
import { fetchFrom, safely, serveFd, silentLog, uniquePinRoot } from './helpers/capture-fixture'
import { enterPod, makePodEnv, type PodEnv } from './helpers/pod-env'

// Inbound connections spread over the data-path workers' listeners, and only over them,
// on the real kernel. Each worker has its own 127.0.0.1:15006 / [::1]:15006 listeners in
// the pod netns, made as the agent makes them (Netns.listen with reusePort), so they form
// SO_REUSEPORT groups; a root process in the pod (python3, same uid) binds the same
// addresses with SO_REUSEPORT and joins the groups.
//
// Guards BPF_SK_LOOKUP_F_NO_REUSEPORT in bpf/sk_lookup.bpf.c (bpf/ferry_workers.h): with
// flags 0 the kernel runs reuseport selection over the chosen listener's group, and the
// intruder takes its share (seen on this kernel: 87 of 240 connections with 2 workers, 44
// with 4; and new connections still reach a worker taken out of the live set). Also guards the live set
// (setLiveWorkers) and the fallback to the next live worker with a listener.

const APP = 8080
const CONNECTIONS = 240
const PARALLEL = 16

interface Workers {
  /** Listening fds, index = worker id (as enrollPod takes them). */
  fds: Array<{ v4: number, v6: number }>
  servers: Server[]
}

/** Worker `w`'s listeners, answering "worker w"; `served` false leaves them unaccepted (connections queue in the kernel). */
async function workerListeners (t: Test, netns: Netns, n: number, served = true): Promise<Workers> {
  const fds: Workers['fds'] = []
  const servers: Server[] = []
  for (let w = 0; w < n; w++) {
    const pair = {
      v4: netns.listen({ family: 4, address: '127.0.0.1', port: PORTS.inbound, reusePort: true }),
      v6: netns.listen({ family: 6, address: '::1', port: PORTS.inbound, reusePort: true })
    }
    fds.push(pair)
    if (served) servers.push(...await serveWorker(t, pair, w))
  }
  return { fds, servers }
}

async function serveWorker (t: Test, pair: { v4: number, v6: number }, w: number): Promise<Server[]> {
  const answer = (s: Socket): void => { s.on('error', () => {}); s.end(`worker ${w}`) }
  return [await serveFd(t, pair.v4, answer), await serveFd(t, pair.v6, answer)]
}

interface Pod { env: PodEnv, capture: Capture, netns: Netns, peer: Netns }

async function enrolledPod (t: Test): Promise<Pod> {
  const env = makePodEnv(t)
  const capture = await Capture.open({ pinRoot: uniquePinRoot(t), log: silentLog })
  t.teardown(safely(() => capture.close()))
  const netns = openNetns(env.podNsPath)
  t.teardown(() => netns.close())
  const peer = openNetns(env.peerNsPath)
  t.teardown(() => peer.close())
  t.teardown(safely(() => capture.unenrollPod(env.id)))
  return { env, capture, netns, peer }
}

function enroll (pod: Pod, fds: Workers['fds']): void {
  pod.capture.enrollPod({
    uid: pod.env.id,
    netns: pod.netns,
    cgroupPath: pod.env.cgroupPath,
    podIPs: [pod.env.podIP4, pod.env.podIP6],
    excludeOutboundPorts: [],
    excludeInboundPorts: [],
    inboundListenerFds: fds
  })
}

/** `n` connections from the peer netns to the pod, v4 and v6 alternately, PARALLEL at a time: what each received. */
async function connectMany (pod: Pod, n: number): Promise<string[]> {
  return await inParallel(n, PARALLEL, async (i) => await fetchFrom(pod.peer, i % 2 === 0 ? pod.env.podIP4 : pod.env.podIP6, APP, 5000))
}


for (const n of [2, 4]) {
  t.test(`${n} workers: every connection reaches a worker's listener, each worker gets some, a root process in the pod that joins their reuseport group gets none`, async (t) => {
    const pod = await enrolledPod(t)
    const workers = await workerListeners(t, pod.netns, n)
    enroll(pod, workers.fds)
    pod.capture.setLiveWorkers(Array.from({ length: n }, (_, w) => w))
    const intruder = await startIntruder(t, enterPod(pod.env.cgroupPath, pod.env.podNsPath), [`127.0.0.1:${PORTS.inbound}`, `::1:${PORTS.inbound}`])

    const counts = tally(await connectMany(pod, CONNECTIONS))
    const byWorker = Array.from({ length: n }, (_, w) => counts.get(`worker ${w}`) ?? 0)
    t.equal(byWorker.reduce((a, b) => a + b, 0), CONNECTIONS, `all ${CONNECTIONS} answered by a worker (by worker: ${byWorker.join(', ')}; all answers: ${JSON.stringify([...counts])})`)
    t.ok(byWorker.every((c) => c > 0), 'each worker accepted some')
    t.equal(intruder.accepted(), 0, 'the intruder in the pod accepted none')
  })
}

t.test('a worker taken out of the live set gets no new connection; those queued on its listener stay there to be accepted; a live worker without a listener passes its share on', async (t) => {
  const pod = await enrolledPod(t)
  const served = await workerListeners(t, pod.netns, 2)
  // Worker 2's listeners accept nothing yet: its connections wait in their queues.
  const idle = await workerListeners(t, pod.netns, 1, false)
  const fds = [...served.fds, ...idle.fds]
  enroll(pod, fds)
  pod.capture.setLiveWorkers([0, 1, 2])

  // Connections that worker 2 gets stay unanswered for now: start them, and wait until
  // each is either answered or counted in worker 2's accept queues (the kernel's count).
  const pending: Array<Promise<string>> = []
  for (let i = 0; i < 60; i++) pending.push(fetchFrom(pod.peer, i % 2 === 0 ? pod.env.podIP4 : pod.env.podIP6, APP, 30_000))
  let answered = 0
  for (const p of pending) void p.then(() => { answered++ })
  const queuedOnIdle = (): number => acceptQueue(pod.env.podNs, idle.fds[0].v4) + acceptQueue(pod.env.podNs, idle.fds[0].v6)
  const queued = await waitFor(() => answered + queuedOnIdle() === 60 ? queuedOnIdle() : null, { what: 'each connection answered or queued on worker 2', timeoutMs: 20_000 })
  t.ok(queued > 0 && queued < 60, `some of 60 wait on worker 2's listeners (${queued}), the others were answered`)

  // Out of the live set: new connections go to workers 0 and 1 only, none is lost.
  pod.capture.setLiveWorkers([0, 1])
  const counts = tally(await connectMany(pod, 100))
  t.equal((counts.get('worker 0') ?? 0) + (counts.get('worker 1') ?? 0), 100, `all 100 new ones answered by workers 0 and 1 (${JSON.stringify([...counts])})`)

  // The queued ones are still there: worker 2 accepts them now.
  await serveWorker(t, idle.fds[0], 2)
  const late = tally(await Promise.all(pending))
  t.equal(late.get('worker 2'), queued, 'worker 2 accepted every connection queued on its listeners')
  t.equal((late.get('worker 0') ?? 0) + (late.get('worker 1') ?? 0) + queued, 60, 'and the others had gone to workers 0 and 1')

  // Live but without a listener for the pod (say, closed): the next live worker takes its share.
  pod.capture.setLiveWorkers([0, 1, 2, 3])
  enroll(pod, fds.slice(0, 2))
  const fallback = tally(await connectMany(pod, 40))
  t.equal((fallback.get('worker 0') ?? 0) + (fallback.get('worker 1') ?? 0), 40, `workers 2 and 3 have no listener here: their share went to 0 and 1 (${JSON.stringify([...fallback])})`)

  // No live worker at all: the pod fails closed, as when its listeners are gone.
  pod.capture.setLiveWorkers([])
  t.equal(await fetchFrom(pod.peer, pod.env.podIP4, APP), 'error ECONNREFUSED', 'refused')
  t.throws(() => { pod.capture.setLiveWorkers([8]) }, { code: 'FERRY_ERR_INVALID_ARG' }, 'worker ids stop at MAX_WORKERS - 1')
  t.throws(() => { enroll(pod, []) }, { code: 'FERRY_ERR_INVALID_ARG' }, 'a pod needs one worker\'s listeners at least')
})

t.test('pins of an agent with one listener pair per pod: this agent refuses them loudly, naming the map, and starts once that pin is gone', async (t) => {
  const pinRoot = uniquePinRoot(t)
  mkdirSync(pinRoot, { recursive: true })
  // ferry_inbound as it was: FERRY_MAX_PODS * 2 entries.
  execFileSync('bpftool', ['map', 'create', join(pinRoot, 'ferry_inbound'), 'type', 'sockmap', 'key', '4', 'value', '8', 'entries', String(16384 * 2), 'name', 'ferry_inbound'])
  await t.rejects(Capture.open({ pinRoot, log: silentLog }), { code: 'FERRY_ERR_BPF_LOAD', message: /couldn't reuse pinned map at '[^']*ferry_inbound': parameter mismatch/ })
  t.ok(existsSync(join(pinRoot, 'ferry_inbound')), 'the pin is left alone')
  unlinkSync(join(pinRoot, 'ferry_inbound'))
  const capture = await Capture.open({ pinRoot, log: silentLog })
  capture.close()
})

/** Connections waiting in the accept queue of the listener `fd` (in netns `netnsName`), as `ss` reads it from the kernel. */
function acceptQueue (netnsName: string, fd: number): number {
  const inode = /socket:\[(\d+)\]/.exec(readlinkSync(`/proc/self/fd/${fd}`))?.[1]
  const line = execFileSync('nsenter', [`--net=${join(PATHS.netnsDir, netnsName)}`, 'ss', '-ltnHe'], { encoding: 'utf8' }).split('\n').find((l) => l.includes(` ino:${inode ?? '?'} `))
  if (line === undefined) throw new Error(`listener fd ${fd} (inode ${inode ?? '?'}) not found`)
  return Number(line.trim().split(/\s+/)[1])
}
