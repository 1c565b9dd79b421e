import t from 'tap'
import { closeSync } from 'node:fs'
import { Capture } from '../../src/capture'
import { openNetns } from '../../src/native'
import { agentSide, fetchFrom, safely, podSpec, reply, serveFd, silentLog, uniquePinRoot } from './helpers/capture-fixture'
import { makePodEnv } from './helpers/pod-env'

// Inbound capture on the real kernel: a SYN from the peer namespace to the pod's
// address is handed by sk_lookup to the inbound listener, whose accepted socket
// names the original destination. Fail-closed drops SYNs while the listener is gone.

const APP = 8080
const EXCLUDED = 7777

t.test('inbound capture', async (t) => {
  const env = makePodEnv(t)
  const capture = await Capture.open({ pinRoot: uniquePinRoot(t), log: silentLog })
  t.teardown(safely(() => capture.close()))
  const agent = await agentSide(t, env, () => capture)
  capture.enrollPod(podSpec(env, agent, { excludeInboundPorts: [EXCLUDED] }))
  t.teardown(safely(() => capture.unenrollPod(env.id)))
  const peer = openNetns(env.peerNsPath)
  t.teardown(() => peer.close())

  // The application: listens on all addresses of the pod.
  for (const port of [APP, EXCLUDED]) {
    await serveFd(t, agent.netns.listen({ family: 4, address: '0.0.0.0', port }), reply('app'))
    await serveFd(t, agent.netns.listen({ family: 6, address: '::', port }), reply('app6'))
  }

  t.test('a v4 SYN from the peer reaches the inbound listener; getsockname is the original dst', async (t) => {
    t.equal(await fetchFrom(peer, env.podIP4, APP), `inbound ${env.podIP4} ${APP}`)
  })

  t.test('v6 likewise, on the v6 listener', async (t) => {
    t.equal(await fetchFrom(peer, env.podIP6, APP), `inbound ${env.podIP6} ${APP}`)
  })

  t.test('a port nothing listens on is still captured (the proxy decides)', async (t) => {
    t.equal(await fetchFrom(peer, env.podIP4, 5555), `inbound ${env.podIP4} 5555`)
  })

  t.test('an excluded inbound port reaches the application', async (t) => {
    t.equal(await fetchFrom(peer, env.podIP4, EXCLUDED), 'app')
  })

  t.test('inside the pod: loopback and its own address are not steered (proxy hop to the app)', async (t) => {
    t.equal(await fetchFrom(agent.netns, '127.0.0.1', APP), 'app')
    t.equal(await fetchFrom(agent.netns, env.podIP4, APP), 'app')
    t.equal(await fetchFrom(agent.netns, env.podIP6, APP), 'app6')
  })

  t.test('listener gone + failClosed: the SYN never reaches the app; failClosed false: it does', async (t) => {
    await Promise.all(agent.inbound.map(async (s) => await new Promise((resolve) => s.close(resolve))))
    // sk_lookup's SK_DROP makes the TCP lookup fail: the kernel answers with a RST.
    t.equal(await fetchFrom(peer, env.podIP4, APP), 'error ECONNREFUSED', 'v4 refused, app not reached')
    t.equal(await fetchFrom(peer, env.podIP6, APP), 'error ECONNREFUSED', 'v6 refused, app not reached')
    const fds = { v4: agent.netns.listen({ family: 4, address: '127.0.0.1', port: 15006 }), v6: agent.netns.listen({ family: 6, address: '::1', port: 15006 }) }
    capture.enrollPod(podSpec(env, agent, { excludeInboundPorts: [EXCLUDED], inboundListenerFds: [fds], failClosed: false }))
    closeSync(fds.v4)
    closeSync(fds.v6)
    t.equal(await fetchFrom(peer, env.podIP4, APP), 'app', 'fail open: the app answers')
  })

  t.test('listeners of a restarted agent take new connections after re-enroll', async (t) => {
    const v4 = agent.netns.listen({ family: 4, address: '127.0.0.1', port: 15006 })
    const v6 = agent.netns.listen({ family: 6, address: '::1', port: 15006 })
    await serveFd(t, v4, reply('new inbound'))
    await serveFd(t, v6, reply('new inbound6'))
    capture.enrollPod(podSpec(env, agent, { excludeInboundPorts: [EXCLUDED], inboundListenerFds: [{ v4, v6 }] }))
    t.equal(await fetchFrom(peer, env.podIP4, APP), 'new inbound')
    t.equal(await fetchFrom(peer, env.podIP6, APP), 'new inbound6')
  })
})
