import t from 'tap'
import { createRequestBalancer, type RequestBalancer } from '../../src/balancer'
import type { LoadBalancerPolicy } from '../../src/routing/model'
import { FakeClock, seededRandom } from '../helpers/seeded-random'

// A discrete-event run of the balancer on a fake clock: `clients` callers each send a
// request as soon as their previous one is answered; an endpoint answers after its
// latency (± jitter). Returns each endpoint's share of the requests after the warm-up.

interface Ep { readonly id: string }

function run (policy: LoadBalancerPolicy, latencies: Record<string, number>, o: { clients: number, requests: number, warmup: number, seed: number }): Map<string, number> {
  const clock = new FakeClock()
  const random = seededRandom(o.seed)
  const b: RequestBalancer<Ep> = createRequestBalancer<Ep>(policy, { random, now: clock.now })
  b.update(Object.keys(latencies).map((id) => ({ id })))
  const input = { eligible: () => true, hash: null }
  // In-flight requests, as (answer time, client) pairs kept sorted by time.
  const inflight: Array<{ at: number, end: () => void }> = []
  const counts = new Map<string, number>()
  let sent = 0
  const send = (): void => {
    const e = b.pick(input)!
    const placed = b.place(e, clock.ms)
    const at = clock.ms + latencies[e.id] * (0.9 + 0.2 * random())
    let i = inflight.length
    while (i > 0 && inflight[i - 1].at > at) i--
    inflight.splice(i, 0, { at, end: () => placed.end(clock.ms, false) })
    if (sent >= o.warmup) counts.set(e.id, (counts.get(e.id) ?? 0) + 1)
    sent++
  }
  for (let c = 0; c < o.clients; c++) send()
  while (inflight.length > 0) {
    const next = inflight.shift()!
    clock.ms = next.at
    next.end()
    if (sent < o.requests) send()
  }
  const measured = o.requests - o.warmup
  return new Map([...counts].map(([id, n]) => [id, n / measured]))
}

const LATENCIES = { fast1: 5, fast2: 5, slow: 55 } // the slow one 50 ms slower

t.test('P2C-EWMA sends the endpoint 50 ms slower than the other two < 10 % of requests after warm-up', async (t) => {
  for (const [clients, seed] of [[1, 1], [4, 2], [16, 3]]) {
    const share = run({ type: 'P2C_PEAK_EWMA' }, LATENCIES, { clients, requests: 5_000, warmup: 500, seed })
    const slow = share.get('slow') ?? 0
    t.ok(slow < 0.10, `${clients} client(s): slow endpoint ${(slow * 100).toFixed(2)} % of requests`)
    t.ok((share.get('fast1') ?? 0) > 0.3 && (share.get('fast2') ?? 0) > 0.3, 'the two fast endpoints share the rest')
  }
})

t.test('the same run with RANDOM and ROUND_ROBIN gives the slow endpoint its third (the test tells balancers apart)', async (t) => {
  for (const policy of [{ type: 'RANDOM' }, { type: 'ROUND_ROBIN' }] as LoadBalancerPolicy[]) {
    const share = run(policy, LATENCIES, { clients: 4, requests: 5_000, warmup: 500, seed: 9 })
    t.ok(Math.abs((share.get('slow') ?? 0) - 1 / 3) < 0.05, `${policy.type}: slow endpoint ${((share.get('slow') ?? 0) * 100).toFixed(1)} %`)
  }
})

t.test('P2C-EWMA still probes the slow endpoint: once it becomes fast, it gets its share back', async (t) => {
  // The decay towards zero of an idle estimate is what brings an avoided endpoint back.
  const clock = new FakeClock()
  const random = seededRandom(4)
  const b = createRequestBalancer<Ep>({ type: 'P2C_PEAK_EWMA' }, { random, now: clock.now })
  b.update([{ id: 'a' }, { id: 'b' }, { id: 'c' }])
  const latency: Record<string, number> = { a: 5, b: 5, c: 55 }
  const input = { eligible: () => true, hash: null }
  const one = (): string => {
    const e = b.pick(input)!
    const p = b.place(e, clock.ms)
    clock.advance(latency[e.id])
    p.end(clock.ms, false)
    return e.id
  }
  for (let i = 0; i < 2_000; i++) one()
  latency.c = 5 // healed
  for (let i = 0; i < 20_000; i++) one() // about 100 s of traffic
  let c = 0
  for (let i = 0; i < 3_000; i++) if (one() === 'c') c++
  t.ok(c / 3_000 > 0.2, `healed endpoint back to ${(c / 30).toFixed(1)} % of requests`)
})
