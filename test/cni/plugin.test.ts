import t from 'tap'
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Registry } from 'prom-client'
import { type CniAnswer, type CniHandler, startCniServer } from '../../src/cni/server'
import type { CniPodRequest } from '../../src/cni/protocol'
import { isMeshed } from '../../src/discovery/mesh-policy'
import { ferryError } from '../../src/errors'
import { dupFd } from '../../src/native'
import { captureLog } from '../proxy/harness'
import { netconf, prevResult, runPlugin, scratch, writeState } from './plugin-runner'
import { waitFor } from '../helpers/wait'

// The ferry-cni binary on its own, run as a container runtime runs it (env + stdin): the
// CNI verbs, the decision it takes without the agent (so an agent that is down holds
// back only meshed pods), its errors in the CNI error format, and — against the agent's
// real CNI server (src/cni/server.ts) with a recording handler — the request it makes
// and how it passes the agent's answer on. The agent's real handling is in
// test/cni/agent-cni.test.ts.

const POD = { namespace: 'shop', name: 'web-7d9', uid: '1b4e28ba-2fa1-11d2-883f-0016d3cca427' }

t.test('VERSION lists the spec versions, 1.0.0 and 1.1.0 among them', async (t) => {
  const r = await runPlugin({ command: 'VERSION' }, '')
  t.equal(r.code, 0)
  t.same(r.json, { cniVersion: '1.0.0', supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] })
})

t.test('no agent running: pods the mesh does not concern pass at once with prevResult; meshed ones fail within the timeout; DEL succeeds', async (t) => {
  const dir = scratch(t)
  const stateFile = join(dir, 'state.json')
  const socket = join(dir, 'cni.sock') // nobody listens here
  writeState(stateFile, ['shop', 'kube-system'])
  const prev = prevResult(['10.244.1.5/24', 'fd00:244::5/64'])

  // Guards: an unmeshed namespace's pod never waits for (or even asks) the agent.
  const plain = await runPlugin({ command: 'ADD', ...POD, namespace: 'ops' }, netconf({ socket, stateFile, prev }))
  t.equal(plain.code, 0, plain.stderr)
  t.same(plain.json, prev, 'prevResult is the result, unchanged')

  // Guards: kube-system is never held back, even labelled meshed.
  const system = await runPlugin({ command: 'ADD', ...POD, namespace: 'kube-system', name: 'coredns-5d78c' }, netconf({ socket, stateFile, prev }))
  t.equal(system.code, 0, system.stderr)
  t.same(system.json, prev)

  // Guards: a meshed pod is never let through without its enrollment.
  const meshed = await runPlugin({ command: 'ADD', ...POD }, netconf({ socket, stateFile, prev, timeoutMs: 300 }), 20_000)
  t.equal(meshed.code, 1, 'ADD fails')
  t.match(meshed.json, { cniVersion: '1.0.0', code: 11, msg: `cannot reach the Ferry agent at ${socket} before the timeout: No such file or directory` })
  t.match(meshed.stderr, /ferry-cni: cannot reach the Ferry agent/)

  const del = await runPlugin({ command: 'DEL', ...POD }, netconf({ socket, stateFile, prev }))
  t.equal(del.code, 0, 'DEL never fails')
  t.equal(del.stdout, '', 'DEL prints nothing')

  const check = await runPlugin({ command: 'CHECK', ...POD }, netconf({ socket, stateFile, prev }))
  t.equal(check.code, 0, 'CHECK with no agent to ask does not fail a running pod')

  for (const command of ['GC', 'STATUS']) {
    const r = await runPlugin({ command }, netconf({ socket, stateFile }))
    t.equal(r.code, 0, `${command}: nothing to collect, and never "not ready" because of the agent`)
  }
})

t.test('no state file (Ferry not on this node, or uninstalled): every pod passes', async (t) => {
  const dir = scratch(t)
  const r = await runPlugin({ command: 'ADD', ...POD }, netconf({ socket: join(dir, 'cni.sock'), stateFile: join(dir, 'absent.json'), prev: prevResult(['10.244.1.5/24']) }))
  t.equal(r.code, 0, r.stderr)
  t.same(r.json, prevResult(['10.244.1.5/24']))
  const bare = await runPlugin({ command: 'ADD', ...POD }, netconf({ stateFile: join(dir, 'absent.json'), prev: null }))
  t.same(bare.json, { cniVersion: '1.0.0' }, 'without prevResult (first in a chain): an empty result of the configuration\'s version')
})

t.test('malformed input is a CNI error with a clear message, never a crash; DEL still succeeds', async (t) => {
  const dir = scratch(t)
  const stateFile = join(dir, 'state.json')
  writeState(stateFile, ['shop'])
  const cases: Array<[string, Record<string, string | undefined>, string, number, RegExp]> = [
    ['not JSON', {}, '{"cniVersion": "1.0.0", "name": ', 6, /^the network configuration on stdin is not valid JSON: .*\(line 1, column \d+\)$/],
    ['not an object', {}, '[1, 2]', 6, /must be a JSON object/],
    ['no cniVersion', {}, '{"name": "x", "type": "ferry-cni"}', 7, /no "cniVersion" string/],
    ['unknown version', {}, netconf({ stateFile, cniVersion: '9.9.9' }), 1, /CNI version "9.9.9" is not supported/],
    ['bad timeout', {}, JSON.stringify({ cniVersion: '1.0.0', stateFile, timeoutMs: 'soon' }), 7, /"timeoutMs" must be a whole number of milliseconds from 1 to 300000/],
    ['relative socket', {}, JSON.stringify({ cniVersion: '1.0.0', stateFile, agentSocket: 'cni.sock' }), 7, /"agentSocket" must be an absolute path, got "cni.sock"/],
    ['prevResult not an object', {}, JSON.stringify({ cniVersion: '1.0.0', stateFile, prevResult: 'x' }), 7, /"prevResult" must be an object/],
    ['annotations not an object', {}, JSON.stringify({ cniVersion: '1.0.0', stateFile, runtimeConfig: { 'io.kubernetes.cri.pod-annotations': ['x'] } }), 7, /runtimeConfig\["io.kubernetes.cri.pod-annotations"\] must be an object/],
    ['no CNI_NETNS', { CNI_NETNS: undefined }, netconf({ stateFile }), 4, /ADD needs CNI_CONTAINERID, CNI_NETNS and CNI_IFNAME/],
    ['unknown command', { CNI_COMMAND: 'ATTACH' }, netconf({ stateFile }), 4, /CNI_COMMAND "ATTACH" is not ADD, DEL, CHECK, VERSION, GC or STATUS/],
    ['no command', { CNI_COMMAND: undefined }, netconf({ stateFile }), 4, /CNI_COMMAND is not set/]
  ]
  for (const [what, env, stdin, code, msg] of cases) {
    const r = await runPlugin({ command: 'ADD', ...POD, env }, stdin)
    t.equal(r.code, 1, `${what}: fails`)
    t.equal(r.json?.code, code, `${what}: code ${code}`)
    t.match(r.json?.msg, msg, `${what}: says why`)
    t.equal(typeof r.json?.cniVersion, 'string', `${what}: in the CNI error format`)
  }
  const overlong = await runPlugin({ command: 'ADD', ...POD, name: 'x'.repeat(300) }, netconf({ stateFile }))
  t.match(overlong.json, { code: 4, msg: 'CNI_ARGS K8S_POD_NAME is longer than 255 characters' }, 'an over-long CNI_ARGS value is refused, never truncated')
  const del = await runPlugin({ command: 'DEL', ...POD }, '{"cniVersion": ')
  t.equal(del.code, 0, 'DEL with malformed input still succeeds')
  t.match(del.stderr, /DEL: the network configuration on stdin is not valid JSON.*\(ignored\)/)
})

t.test('a state file that exists but cannot be read holds meshed decisions back (fails closed), naming the file', async (t) => {
  const dir = scratch(t)
  const stateFile = join(dir, 'state.json')
  for (const [text, why] of [['{"version": 1, "meshedNamespaces": ', /cannot be read/], ['{"version": 2, "meshedNamespaces": [], "pods": []}', /is not a version 1 Ferry CNI state/]] as const) {
    writeFileSync(stateFile, text)
    const r = await runPlugin({ command: 'ADD', ...POD, namespace: 'ops' }, netconf({ stateFile }))
    t.equal(r.code, 1)
    t.equal(r.json.code, 101)
    t.match(r.json.msg, why)
    t.match(r.json.msg, new RegExp(`state file ${stateFile}.*cannot tell whether pod ops/web-7d9 is meshed`))
  }
  const system = await runPlugin({ command: 'ADD', ...POD, namespace: 'kube-system' }, netconf({ stateFile }))
  t.equal(system.code, 0, 'kube-system is decided before the state file is read')
})

t.test('the plugin and the agent apply one meshing rule (isMeshed of src/discovery/mesh-policy.ts)', async (t) => {
  // Guards the rule written twice, in C for the plugin and in TypeScript for the agent:
  // every combination of namespace label and pod annotation, with the annotation from
  // the runtime (runtimeConfig) or from the agent's state file.
  const dir = scratch(t)
  const stateFile = join(dir, 'state.json')
  const socket = join(dir, 'none.sock')
  for (const labelled of [true, false]) {
    for (const annotation of [undefined, 'enabled', 'disabled', 'yes']) {
      for (const via of ['runtime', 'state'] as const) {
        writeState(stateFile, labelled ? ['shop'] : [], via === 'state' && annotation !== undefined ? [{ namespace: 'shop', name: POD.name, uid: POD.uid, mesh: annotation as 'enabled' }] : [])
        const annotations: Record<string, string> = annotation === undefined ? {} : { 'ferry.dev/mesh': annotation }
        const meshed = isMeshed({ annotations } as any, { name: 'shop', labels: labelled ? { 'ferry.dev/mesh': 'enabled' } : {} })
        const r = await runPlugin({ command: 'ADD', ...POD }, netconf({ socket, stateFile, timeoutMs: 50, ...(via === 'runtime' ? { annotations } : {}) }), 20_000)
        const what = `namespace ${labelled ? 'meshed' : 'not meshed'}, annotation ${annotation ?? 'none'} via ${via}`
        if (via === 'state' && annotation === 'yes') continue // the agent writes only enabled/disabled entries
        t.equal(r.code, meshed ? 1 : 0, `${what}: ${meshed ? 'meshed (asks the agent)' : 'passes'}`)
      }
    }
  }
  // The state file's entry is about one pod: a replaced pod of the same name (another uid) is not it.
  writeState(stateFile, ['shop'], [{ namespace: 'shop', name: POD.name, uid: 'old-uid', mesh: 'disabled' }])
  const replaced = await runPlugin({ command: 'ADD', ...POD }, netconf({ socket, stateFile, timeoutMs: 50 }), 20_000)
  t.equal(replaced.code, 1, 'an opt-out of the pod\'s predecessor does not apply to it')
  // The runtime's annotations are the pod's own: they win over the state file.
  writeState(stateFile, ['shop'], [{ namespace: 'shop', name: POD.name, uid: POD.uid, mesh: 'enabled' }])
  const optedOut = await runPlugin({ command: 'ADD', ...POD }, netconf({ socket, stateFile, annotations: { 'ferry.dev/mesh': 'disabled' } }))
  t.equal(optedOut.code, 0, 'runtimeConfig annotations decide when the runtime passes them')
})

t.test('against the agent\'s CNI server: the request (IPs of the pod\'s interfaces only), its answers passed on, the log file', async (t) => {
  const dir = scratch(t)
  const stateFile = join(dir, 'state.json')
  const logFile = join(dir, 'cni.log')
  writeState(stateFile, ['shop'])
  const seen: CniPodRequest[] = []
  let answer: (r: CniPodRequest) => Promise<CniAnswer> = async () => ({ result: 'enrolled' })
  const handler: CniHandler = { handle: async (r) => { seen.push(r); return await answer(r) }, close: () => {} }
  const { log, lines } = captureLog()
  const server = await startCniServer({ socketPath: join(dir, 'run', 'cni.sock'), handler, log, registry: new Registry() })
  t.teardown(async () => { await server.close() })
  const prev = prevResult(['10.244.1.5/24', 'FD00:244:0::5/64'], { hostSide: '169.254.1.1/32' })
  const conf = netconf({ socket: server.socketPath, stateFile, prev, logFile, timeoutMs: 5000 })

  const ok = await runPlugin({ command: 'ADD', ...POD, netns: '/var/run/netns/cni-8c1f', containerId: 'abc123' }, conf)
  t.equal(ok.code, 0, ok.stderr)
  t.same(ok.json, prev, 'enrolled: prevResult passed through')
  t.match(seen[0], { command: 'add', namespace: 'shop', name: 'web-7d9', uid: POD.uid, containerId: 'abc123', netns: '/var/run/netns/cni-8c1f', ifname: 'eth0', infraContainerId: 'abc123', timeoutMs: 5000 })
  t.same(seen[0].podIPs, ['10.244.1.5', 'fd00:244::5'], 'the pod\'s addresses, canonical, without the host-side interface\'s')
  await waitFor(() => lines.some((l) => l.msg === 'cni request'), { timeoutMs: 3000, what: 'the request logged' })
  t.match(lines.find((l) => l.msg === 'cni request'), { command: 'add', result: 'enrolled', pod: 'shop/web-7d9', netns: '/var/run/netns/cni-8c1f' })

  answer = async () => { throw ferryError('FERRY_ERR_ENROLL', 'pod shop/web-7d9: listen inbound 127.0.0.1:15006 failed: address in use (EADDRINUSE)') }
  const refused = await runPlugin({ command: 'ADD', ...POD }, conf)
  t.equal(refused.code, 1)
  t.match(refused.json, { code: 100, msg: 'the Ferry agent cannot enroll pod shop/web-7d9: pod shop/web-7d9: listen inbound 127.0.0.1:15006 failed: address in use (EADDRINUSE)', details: 'agent answered HTTP 409, FERRY_ERR_ENROLL' })

  answer = async () => ({ result: 'not-meshed' })
  t.equal((await runPlugin({ command: 'ADD', ...POD }, conf)).code, 0, 'the agent may decide the pod is not meshed after all: it starts')

  const checked = await runPlugin({ command: 'CHECK', ...POD }, conf)
  t.equal(checked.code, 0)
  answer = async () => { throw ferryError('FERRY_ERR_ENROLL', 'pod shop/web-7d9 is meshed but not enrolled') }
  const badCheck = await runPlugin({ command: 'CHECK', ...POD }, conf)
  t.match(badCheck.json, { code: 100, msg: /meshed but not enrolled/ }, 'CHECK fails when the agent says the pod is not enrolled')
  answer = async () => ({ result: 'forgotten' })
  t.equal((await runPlugin({ command: 'DEL', ...POD }, conf)).code, 0)
  t.equal(seen.at(-1)?.command, 'del')

  const logged = readFileSync(logFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l))
  t.match(logged[0], { command: 'ADD', pod: 'shop/web-7d9', uid: POD.uid, container: 'abc123', result: 'enrolled', msg: /namespace meshed/ })
  t.match(logged[1], { command: 'ADD', result: 'error', msg: /EADDRINUSE/ })
  t.ok(logged.every((l) => typeof l.time === 'string' && l.time.endsWith('Z')), 'timestamped lines')
})

t.test('the CNI server refuses what is not the protocol, before the handler sees it', async (t) => {
  const dir = scratch(t)
  const seen: CniPodRequest[] = []
  const handler: CniHandler = { handle: async (r) => { seen.push(r); return { result: 'enrolled' } }, close: () => {} }
  const { log } = captureLog()
  const registry = new Registry()
  const server = await startCniServer({ socketPath: join(dir, 'cni.sock'), handler, log, registry })
  t.teardown(async () => { await server.close() })
  const { request } = await import('node:http')
  const post = async (path: string, body: string, method = 'POST'): Promise<{ status: number, body: any }> => await new Promise((resolve, reject) => {
    const req = request({ socketPath: server.socketPath, path, method, headers: { 'content-type': 'application/json' } }, (res) => {
      let text = ''
      res.on('data', (d) => { text += String(d) })
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }) })
    })
    req.on('error', reject)
    req.end(body)
  })
  const good = { containerId: 'abc', netns: '/var/run/netns/x', ifname: 'eth0', namespace: 'shop', name: 'web', uid: POD.uid, ips: ['10.1.2.3/24'] }
  t.match(await post('/v1/cni/nope', '{}'), { status: 404, body: { code: 'FERRY_ERR_CNI', error: /unknown path/ } })
  t.match(await post('/v1/cni/add', '', 'GET'), { status: 405 })
  t.match(await post('/v1/cni/add', 'x'.repeat(20_000)), { status: 413, body: { error: /larger than 16384 bytes/ } })
  t.match(await post('/v1/cni/add', '{'), { status: 400, body: { error: /not JSON/ } })
  t.match(await post('/v1/cni/add', JSON.stringify({ ...good, namespace: 'Shop!' })), { status: 400, body: { error: /"namespace" "Shop!" is not a Kubernetes namespace name/ } })
  t.match(await post('/v1/cni/add', JSON.stringify({ ...good, netns: 'relative' })), { status: 400, body: { error: /"netns" "relative" is not an absolute path/ } })
  t.match(await post('/v1/cni/add', JSON.stringify({ ...good, ips: ['10.1.2.300/24'] })), { status: 400, body: { error: /"ips": "10.1.2.300\/24" is not an address/ } })
  t.match(await post('/v1/cni/add', JSON.stringify({ ...good, timeoutMs: 0 })), { status: 400, body: { error: /"timeoutMs"/ } })
  t.equal(seen.length, 0, 'the handler saw none of them')
  t.match(await post('/v1/cni/add', JSON.stringify(good)), { status: 200, body: { result: 'enrolled' } })
  const { statSync } = await import('node:fs')
  t.equal(statSync(server.socketPath).mode & 0o777, 0o600, 'the socket is mode 0600: root only')
  const metrics = await registry.metrics()
  t.match(metrics, /ferry_cni_requests_total\{command="add",result="invalid"\} 7/)
  t.match(metrics, /ferry_cni_requests_total\{command="add",result="enrolled"\} 1/)
})

t.test('an ADD in flight when the agent stops is answered by the next agent (the old one closes it unanswered; the plugin asks again)', async (t) => {
  const dir = scratch(t)
  const stateFile = join(dir, 'state.json')
  writeState(stateFile, ['shop'])
  const socketPath = join(dir, 'cni.sock')
  const { log, lines } = captureLog()
  let waiting = false
  let aborted = false
  const stuck: CniHandler = {
    handle: async (_r, signal) => await new Promise<CniAnswer>((resolve, reject) => {
      waiting = true
      signal.addEventListener('abort', () => { aborted = true; reject(ferryError('FERRY_ERR_ENROLL', 'cut short')) })
    }),
    close: () => {}
  }
  const first = await startCniServer({ socketPath, handler: stuck, log, registry: new Registry() })
  const adding = runPlugin({ command: 'ADD', ...POD }, netconf({ socket: socketPath, stateFile, timeoutMs: 20_000 }))
  await waitFor(() => waiting, { timeoutMs: 10_000, what: 'the ADD waiting in the old agent' })
  // The old agent's SIGTERM while the request waits in its handler.
  await first.close()
  t.ok(aborted, 'the old agent\'s wait was cut short')
  // Guards the hand-over: without the plugin's retry the ADD would fail with the old agent's silence.
  const second = await startCniServer({ socketPath, handler: { handle: async () => ({ result: 'enrolled' }), close: () => {} }, log, registry: new Registry() })
  t.teardown(async () => { await second.close() })
  const r = await adding
  t.equal(r.code, 0, `the next agent answered: ${r.stdout}`)
  await waitFor(() => lines.some((l) => l.msg === 'cni request refused' && /shutting down/.test(l.err)), { timeoutMs: 3000, what: 'the old agent logged the unanswered request' })
})

t.test('an upgrade: the next agent serves the same listening socket, taken over by fd; the old one closes without removing the file', async (t) => {
  // What an agent's handoff (src/handoff/) does with the plugin's socket. Guards the
  // file: if the old agent removed it on close, the plugin could not reach the socket
  // the next agent serves, and the ADD below would fail.
  const dir = scratch(t)
  const stateFile = join(dir, 'state.json')
  writeState(stateFile, ['shop'])
  const socketPath = join(dir, 'cni.sock')
  const { log } = captureLog()
  let waiting = false
  const stuck: CniHandler = {
    handle: async (_r, signal) => await new Promise<CniAnswer>((resolve, reject) => {
      waiting = true
      signal.addEventListener('abort', () => { reject(ferryError('FERRY_ERR_ENROLL', 'cut short')) })
    }),
    close: () => {}
  }
  const first = await startCniServer({ socketPath, handler: stuck, log, registry: new Registry() })
  const adding = runPlugin({ command: 'ADD', ...POD }, netconf({ socket: socketPath, stateFile, timeoutMs: 20_000 }))
  await waitFor(() => waiting, { timeoutMs: 10_000, what: 'the ADD waiting in the old agent' })
  const second = await startCniServer({ socketPath, listenFd: dupFd(first.fd), handler: { handle: async () => ({ result: 'enrolled' }), close: () => {} }, log, registry: new Registry() })
  t.teardown(async () => { await second.close() })
  await first.close({ keepSocketFile: true })
  t.ok(existsSync(socketPath), 'the socket file stays: the next agent serves it')
  const r = await adding
  t.equal(r.code, 0, `the next agent answered: ${r.stdout}`)
  t.equal(statSync(socketPath).mode & 0o777, 0o600, 'still 0600')
})
