import t, { type Test } from 'tap'
import type { Svid } from '../../src/identity/svid'
import { secureContextsMade } from '../../src/identity/tls-options'
import { NodeBufferBudget, TunnelAdmission, type TunnelRefusal } from '../../src/tunnel'
import type { Publication } from '../../src/worker/protocol'
import { SvidStore } from '../../src/worker/svid-store'
import { WorkerTunnel } from '../../src/worker/worker-tunnel'
import { testCa } from '../identity/certs'
import { drain } from '../helpers/net'
import { asSocket, backend, connectAndRelay } from '../tunnel/harness'

// A worker thread receives the node's certificates as structured clones of the main
// thread's publications (src/agent/svid-publisher.ts → src/worker/svid-store.ts), so every
// SVID in a publication arrives as a new object. The tunnel tells a rotation by object
// identity and keys an SVID's SecureContext on the object. Here a worker's tunnel ends —
// its server and its pool, as src/worker/worker-tunnel.ts builds them, real TLS and
// HTTP/2 on loopback — read a store fed with structuredClone'd publications, as the
// thread's port delivers them. Guards: a publication that does not change an SVID (another
// identity came or went) neither drains the sessions made with it nor makes the worker
// build its SecureContext again (without the store keeping its object, the pool drained
// its session at the next open, the server drained its own as "certificate-rotated", and
// both made new contexts); a rotation still does both; and no SecureContext is made for an
// identity before a session presents it.

t.setTimeout(60_000)

const TD = 'cluster.local'

function publication (svids: Svid[]): Publication {
  return structuredClone({ kind: 'svids', svids: svids.map((s) => [s.spiffeId.uri, s] as const), served: svids.map((s) => s.spiffeId.uri) })
}

async function roundTrip (t: Test, tunnel: WorkerTunnel, store: SvidStore, from: string, to: string, port: number, echoPort: number): Promise<void> {
  const stream = await tunnel.pool.open({
    sourceSvid: () => store.svidFor(from) as Svid,
    expectedPeer: to,
    node: { address: '127.0.0.1', port },
    authority: `127.0.0.1:${echoPort}`
  })
  const socket = asSocket(stream)
  socket.end('ping')
  t.equal((await drain(socket)).data.toString(), 'ping', 'the stream carries bytes both ways')
}

t.test('SVIDs published again unchanged keep their sessions and SecureContexts; a rotation replaces both', async (t) => {
  const ca = await testCa(TD)
  const client = await ca.svid('app/client')
  const server = await ca.svid('app/server')
  const others = await Promise.all(['app/one', 'app/two', 'app/three'].map(async (n) => await ca.svid(n)))
  const echoPort = await backend(t, (s) => { s.pipe(s) })

  const refusals: TunnelRefusal[] = []
  const store = new SvidStore(TD)
  const tunnel = new WorkerTunnel({
    shared: { admission: TunnelAdmission.create({}).buffer, buffers: NodeBufferBudget.create({}).buffer },
    svids: store,
    onStream: connectAndRelay(),
    onRefused: (r) => { refusals.push(r) }
  })
  t.teardown(async () => { await tunnel.close(200) })
  const port = await tunnel.listen({ host: '127.0.0.1', port: 0, backlog: 64 })

  // What the data plane does with a publication (src/worker/data-plane.ts).
  const publish = (svids: Svid[]): void => {
    const p = publication(svids) as Extract<Publication, { kind: 'svids' }>
    store.replace(p.svids)
    tunnel.serve(p.served)
  }
  const made0 = secureContextsMade()
  publish([client, server, ...others])
  t.equal(secureContextsMade() - made0, 0, 'five identities published: no SecureContext yet (none until a session presents one)')

  await roundTrip(t, tunnel, store, client.spiffeId.uri, server.spiffeId.uri, port, echoPort)
  t.equal(secureContextsMade() - made0, 2, 'the first session: one context for the client\'s SVID, one for the server\'s')
  t.equal(tunnel.stats().server.sessionsAccepted, 1)

  // Another identity leaves, one comes back: the same certificates for client and server, in new objects.
  publish([client, server, others[0]])
  publish([client, server, ...others])
  await roundTrip(t, tunnel, store, client.spiffeId.uri, server.spiffeId.uri, port, echoPort)
  const kept = tunnel.stats()
  t.equal(kept.server.sessionsAccepted, 1, 'the stream went over the session already open: the server accepted no second one')
  t.equal(kept.pool.sessions, 1, 'the pool holds one session')
  t.equal(kept.pool.draining, 0, 'and did not drain it')
  t.equal(secureContextsMade() - made0, 2, 'no SecureContext made again for SVIDs that did not change')
  t.same(refusals, [], 'nothing refused')

  // The server's identity is rotated: its sessions take no new stream, a new session presents the new certificate.
  const rotated = await ca.svid('app/server')
  publish([client, rotated, ...others])
  await roundTrip(t, tunnel, store, client.spiffeId.uri, server.spiffeId.uri, port, echoPort)
  const after = tunnel.stats()
  t.equal(after.server.sessionsAccepted, 2, 'the rotated certificate is presented on a new session')
  t.equal(secureContextsMade() - made0, 3, 'one more SecureContext: the rotated SVID\'s')
  t.equal(after.secureContexts, secureContextsMade(), '/debug/tunnel reports the thread\'s count')
})
