import t, { type Test } from 'tap'
import { createServer, type Server } from 'node:net'
import { isFerryError } from '../../src/errors'
import { connectInNetns, openNetns, socketNetnsCookie, type Netns } from '../../src/native'
import { makePodEnv } from '../capture/helpers/pod-env'

// Sockets inside another network namespace, made by the addon and used by Node:
// listening fds go to net.Server, unconnected fds become net.Sockets that connect.

async function serve (t: Test, fd: number, onData: (d: Buffer) => Buffer): Promise<Server> {
  const server = createServer((s) => { s.on('data', (d) => s.write(onData(d))); s.on('error', () => {}) })
  await new Promise<void>((resolve) => server.listen({ fd }, resolve))
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  return server
}

const ownCookie = (): bigint => {
  const own = openNetns('/proc/self/ns/net')
  try { return own.cookie } finally { own.close() }
}

t.test('netns', async (t) => {
  const env = makePodEnv(t)
  const pod: Netns = openNetns(env.podNsPath)
  const peer: Netns = openNetns(env.peerNsPath)
  t.teardown(() => { pod.close(); peer.close() })
  const hostCookie = ownCookie()

  t.test('cookies tell namespaces apart and match SO_NETNS_COOKIE of sockets made there', async (t) => {
    t.type(pod.cookie, 'bigint')
    t.not(pod.cookie, peer.cookie)
    t.not(pod.cookie, hostCookie)
    const fd = pod.socket(4)
    t.equal(socketNetnsCookie(fd), pod.cookie)
    require('node:fs').closeSync(fd)
    t.equal(ownCookie(), hostCookie, 'this thread is back in its own namespace')
  })

  t.test('a listening fd made in the pod netns serves through net.Server; data flows both ways', async (t) => {
    const lfd = pod.listen({ family: 4, address: env.podIP4, port: 0 })
    const server = await serve(t, lfd, (d) => Buffer.from(`echo ${String(d)}`))
    const port = (server.address() as { port: number }).port
    const s = connectInNetns(peer, { host: env.podIP4, port, family: 4, timeoutMs: 3000 })
    await new Promise((resolve) => s.once('connect', resolve))
    t.equal(s.remoteAddress, env.podIP4)
    t.equal(s.localAddress, env.peerIP4, 'the client socket lives in the peer netns')
    s.write('ping')
    const [reply] = await Promise.all([new Promise((resolve) => s.once('data', (d) => resolve(String(d))))])
    t.equal(reply, 'echo ping')
    s.end()
  })

  t.test('v6 listener is V6ONLY and works from the peer', async (t) => {
    const lfd = pod.listen({ family: 6, address: '::', port: 0, backlog: 16, reusePort: true })
    const server = await serve(t, lfd, (d) => d)
    const port = (server.address() as { port: number }).port
    const s6 = connectInNetns(peer, { host: env.podIP6, port, family: 6, timeoutMs: 3000 })
    s6.end('six')
    t.equal(await new Promise((resolve) => s6.once('data', (d) => resolve(String(d)))), 'six')
    const s4 = connectInNetns(peer, { host: env.podIP4, port, family: 4, timeoutMs: 3000 })
    const err = await new Promise<NodeJS.ErrnoException>((resolve) => s4.once('error', resolve))
    t.equal(err.code, 'ECONNREFUSED', 'no v4 on a V6ONLY listener')
  })

  t.test('connection errors are error events: ECONNREFUSED and ETIMEDOUT', async (t) => {
    const refused = connectInNetns(peer, { host: env.podIP4, port: 1, family: 4 })
    t.equal((await new Promise<NodeJS.ErrnoException>((resolve) => refused.once('error', resolve))).code, 'ECONNREFUSED')
    // On the link but absent: ARP goes unanswered, so only the timeout ends it.
    const absent = env.peerIP4.replace(/\.1$/, '.99')
    const silent = connectInNetns(peer, { host: absent, port: 80, family: 4, timeoutMs: 200 })
    t.equal((await new Promise<NodeJS.ErrnoException>((resolve) => silent.once('error', resolve))).code, 'ETIMEDOUT')
    const unroutable = connectInNetns(peer, { host: '192.0.2.1', port: 80, family: 4 })
    t.equal((await new Promise<NodeJS.ErrnoException>((resolve) => unroutable.once('error', resolve))).code, 'ENETUNREACH')
  })

  // Guards the code of a failed bind inside the namespace: FERRY_ERR_LISTEN, not the
  // namespace's (which means the namespace itself could not be entered).
  t.test('a failed listen returns an error, and the thread still comes back home', async (t) => {
    t.throws(() => pod.listen({ family: 4, address: '192.0.2.7', port: 0 }), { code: 'FERRY_ERR_LISTEN', errno: 'EADDRNOTAVAIL' })
    t.equal(ownCookie(), hostCookie)
    const a = pod.listen({ family: 4, address: '127.0.0.1', port: 0 })
    const port = (await serve(t, a, (d) => d)).address() as { port: number }
    t.throws(() => pod.listen({ family: 4, address: '127.0.0.1', port: port.port }), { name: 'FerryError', code: 'FERRY_ERR_LISTEN', errno: 'EADDRINUSE' })
    t.equal(ownCookie(), hostCookie)
  })

  t.test('arguments are validated before the addon sees them', async (t) => {
    t.throws(() => pod.listen({ family: 5 as 4, address: '127.0.0.1', port: 1 }), { code: 'FERRY_ERR_INVALID_ARG' })
    t.throws(() => pod.listen({ family: 4, address: '::1', port: 1 }), { code: 'FERRY_ERR_INVALID_ARG' })
    t.throws(() => pod.listen({ family: 4, address: '127.0.0.1', port: 70000 }), { code: 'FERRY_ERR_INVALID_ARG' })
    t.throws(() => connectInNetns(pod, { host: 'example.com', port: 80, family: 4 }), { code: 'FERRY_ERR_INVALID_ARG' })
  })

  t.test('opening something that is not a netns fails with a typed error', async (t) => {
    const err = t.throws(() => openNetns('/var/run/netns/fct-does-not-exist'))
    t.ok(isFerryError(err, 'FERRY_ERR_NETNS'))
    t.match(err, { errno: 'ENOENT' })
    t.throws(() => openNetns('/proc/self/ns/uts'), { code: 'FERRY_ERR_NETNS', errno: 'EINVAL' })
  })

  t.test('a closed Netns refuses work; connectInNetns reports it as an error event', async (t) => {
    const ns = openNetns(env.podNsPath)
    ns.close()
    t.throws(() => ns.socket(4), { code: 'FERRY_ERR_NETNS' })
    const s = connectInNetns(ns, { host: '127.0.0.1', port: 80, family: 4 })
    t.equal((await new Promise<any>((resolve) => s.once('error', resolve))).code, 'FERRY_ERR_NETNS')
  })
})
