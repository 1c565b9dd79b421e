import t from 'tap'
import { Capture } from '../../src/capture'
import { connectInNetns, openNetns } from '../../src/native'
import { agentSide, safely, podSpec, reply, serveFd, silentLog, uniquePinRoot } from './helpers/capture-fixture'
import { makePodEnv, nodeClient } from './helpers/pod-env'

// Outbound capture on the real kernel: a process in the pod's cgroup and netns
// connects somewhere; connect4/6 sends it to the outbound listener, sockops
// publishes the original destination, getpeername shows it to the app.

const EXCLUDED = 9999

t.test('outbound capture', async (t) => {
  const env = makePodEnv(t)
  const capture = await Capture.open({ pinRoot: uniquePinRoot(t), log: silentLog })
  t.teardown(safely(() => capture.close()))
  const agent = await agentSide(t, env, () => capture)
  capture.enrollPod(podSpec(env, agent, { excludeOutboundPorts: [EXCLUDED] }))
  t.teardown(safely(() => capture.unenrollPod(env.id)))

  // Real servers the uncaptured cases reach: in the peer netns and in the pod netns.
  const peer = openNetns(env.peerNsPath)
  t.teardown(() => peer.close())
  await serveFd(t, peer.listen({ family: 4, address: '0.0.0.0', port: EXCLUDED }), reply('peer excluded'))
  await serveFd(t, peer.listen({ family: 4, address: '0.0.0.0', port: 9998 }), reply('peer direct'))
  await serveFd(t, agent.netns.listen({ family: 4, address: '0.0.0.0', port: 8081 }), reply('pod local'))
  await serveFd(t, agent.netns.listen({ family: 6, address: '::', port: 8081 }), reply('pod local6'))

  const run = async (host: string, port: number, opts = {}): Promise<any> => {
    const r = await env.runInPod(nodeClient(host, port), opts)
    t.equal(r.code, 0, r.stderr)
    return JSON.parse(r.stdout)
  }

  t.test('v4 destination outside the pod is captured; app sees its destination as peer', async (t) => {
    const out = await run(env.peerIP4, 8080)
    t.same(out.data, `outbound ${JSON.stringify({ address: env.peerIP4, port: 8080 })}`)
    t.same(out.peer, { address: env.peerIP4, port: 8080 }, 'getpeername restored')
  })

  t.test('v6 destination is captured through [::1]', async (t) => {
    const out = await run(env.peerIP6, 8443)
    t.same(out.data, `outbound ${JSON.stringify({ address: env.peerIP6, port: 8443 })}`)
    t.same(out.peer, { address: env.peerIP6, port: 8443 })
  })

  t.test('v4-mapped v6 destination lands on the v4 listener, recorded as family 4', async (t) => {
    const out = await run(`::ffff:${env.peerIP4}`, 8080)
    t.same(out.data, `outbound ${JSON.stringify({ address: env.peerIP4, port: 8080 })}`)
    t.same(out.peer, { address: `::ffff:${env.peerIP4}`, port: 8080 })
  })

  t.test('loopback is not captured', async (t) => {
    t.same((await run('127.0.0.1', 8081)).data, 'pod local')
    t.same((await run('::1', 8081)).data, 'pod local6')
  })

  t.test("the pod's own address is not captured", async (t) => {
    t.same((await run(env.podIP4, 8081)).data, 'pod local')
    t.same((await run(env.podIP6, 8081)).data, 'pod local6')
  })

  t.test('an excluded port is not captured', async (t) => {
    t.same((await run(env.peerIP4, EXCLUDED)).data, 'peer excluded')
  })

  t.test('a process of another cgroup inside the pod netns is not captured', async (t) => {
    const s = connectInNetns(agent.netns, { host: env.peerIP4, port: 9998, family: 4, timeoutMs: 3000 })
    const got = await new Promise<string>((resolve, reject) => {
      let data = ''
      s.on('data', (d) => { data += String(d) })
      s.on('end', () => resolve(data))
      s.on('error', reject)
    })
    t.equal(got, 'peer direct')
  })

  t.test('a pod-cgroup process in a namespace that is not enrolled is not captured', async (t) => {
    const out = await run(env.peerIP4, 9998, { netnsPath: env.peerNsPath })
    t.equal(out.data, 'peer direct')
  })

  t.test('UDP connect() is left alone (DNS clients connect UDP sockets)', async (t) => {
    const src = `const s = require('dgram').createSocket('udp4'); s.connect(53, ${JSON.stringify(env.peerIP4)}, () => { console.log(JSON.stringify(s.remoteAddress())); s.close() })`
    const r = await env.runInPod([process.execPath, '-e', src])
    t.same(JSON.parse(r.stdout), { address: env.peerIP4, family: 'IPv4', port: 53 })
  })

  t.test('originalDst is consumed by the lookup', async (t) => {
    const before = agent.seen.length
    await run(env.peerIP4, 8088)
    const [first] = agent.seen.slice(before)
    t.same(first, { address: env.peerIP4, port: 8088 })
    t.equal(capture.originalDst(agent.netns.cookie, 4, 1), null, 'unknown key gives null')
  })
})
