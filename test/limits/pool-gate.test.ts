import t from 'tap'
import { NodeLimits } from '../../src/limits/node-limits'
import type { ConnectionPoolLimits } from '../../src/routing/model'

// Connection-pool limits (circuit breaking): in-flight requests, waiting requests,
// connections; releases bound to their acquire count once, and counts return to 0.

const none: ConnectionPoolLimits = { maxConnections: null, maxPendingRequests: null, maxRequests: null, maxRequestsPerConnection: null, connectTimeoutMs: null, idleTimeoutMs: null }

function gate (limits: Partial<ConnectionPoolLimits>): ReturnType<NodeLimits['poolFor']> {
  return new NodeLimits(NodeLimits.allocate({ backends: 64, endpoints: 64, pods: 64 }), () => 1_000_000).poolFor('ns/svc:80', { ...none, ...limits })
}

t.test('maxRequests bounds requests in flight; a release lets the next one in', async (t) => {
  const g = gate({ maxRequests: 3 })
  const held = [g.request(), g.request(), g.request()]
  t.ok(held.every((r) => r !== null))
  t.equal(g.request(), null, 'overflow')
  t.equal(g.counts().requests, 3, 'the refused one is not counted')
  held[0]?.()
  held[0]?.()
  t.equal(g.counts().requests, 2, 'a release counts once')
  const again = g.request()
  t.not(again, null)
  for (const r of [again, held[1], held[2]]) r?.()
  t.same(g.counts(), { requests: 0, connections: 0 })
})

t.test('with maxConnections, at most maxConnections + http1MaxPendingRequests requests', async (t) => {
  const g = gate({ maxConnections: 2, maxPendingRequests: 1 })
  const held = [g.request(), g.request(), g.request()]
  t.ok(held.every((r) => r !== null))
  t.equal(g.request(), null)
  const conns = [g.connection(), g.connection()]
  t.ok(conns.every((r) => r !== null))
  t.equal(g.connection(), null, 'maxConnections')
  for (const r of [...held, ...conns]) r?.()
  t.same(g.counts(), { requests: 0, connections: 0 })
})

t.test('no limits: everything admitted; a stray release never goes below zero', async (t) => {
  const g = gate({})
  let admitted = 0
  for (let i = 0; i < 1000; i++) if (g.acquireRequest()) admitted++
  t.equal(admitted, 1000)
  for (let i = 0; i < 1001; i++) g.releaseRequest()
  t.equal(g.counts().requests, 0)
})

t.test('a failed worker\'s counts are forgotten; the others\' stay', async (t) => {
  const memory = NodeLimits.allocate({ backends: 64, endpoints: 64, pods: 64 })
  const limits = { ...none, maxRequests: 4 }
  const w0 = new NodeLimits(memory, () => 1_000_000, 0).poolFor('ns/svc:80', limits)
  const w1 = new NodeLimits(memory, () => 1_000_000, 1).poolFor('ns/svc:80', limits)
  const held0 = w0.request()
  for (let i = 0; i < 3; i++) w1.acquireRequest()
  t.equal(w0.request(), null, 'the limit is the sum over workers')
  // Worker 1 fails holding 3: the main thread forgets them.
  new NodeLimits(memory, () => 1_000_000).forgetWorker(1)
  t.equal(w0.counts().requests, 1)
  const again = [w0.request(), w0.request(), w0.request()]
  t.ok(again.every((r) => r !== null), 'its share is free again')
  for (const r of [held0, ...again]) r?.()
  t.same(w0.counts(), { requests: 0, connections: 0 })
})
