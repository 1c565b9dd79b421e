import { parseArgs } from 'node:util'
import { createRequestBalancer, type PickInput } from '../src/balancer'
import type { LoadBalancerPolicy } from '../src/routing/model'

// `npx ts-node-transpile-only benchmarks/balancer.ts [--endpoints 16] [--ops 2000000]`:
// the per-request cost of each request balancer — pick + place + end — in ns per
// request, on one core, after a warm-up. The times passed are a counter, so the figures
// leave out the caller's clock read (performance.now(), measured apart: the caller reads
// it for its own timing anyway, and the balancers read none by default). "one ejected" marks one endpoint ineligible (the slower path:
// a draw may land on it). Printed as a table; nothing is written.

interface Ep { readonly id: string, readonly address: string, readonly port: number }

const POLICIES: LoadBalancerPolicy[] = [
  { type: 'P2C_PEAK_EWMA' },
  { type: 'LEAST_REQUEST' },
  { type: 'RANDOM' },
  { type: 'ROUND_ROBIN' },
  { type: 'CONSISTENT_HASH', key: { header: 'x-user' } }
]

function measure (policy: LoadBalancerPolicy, endpoints: Ep[], ops: number, input: PickInput<Ep>): { nsPerOp: number, bytesPerOp: number } {
  const b = createRequestBalancer<Ep>(policy)
  b.update(endpoints)
  let now = 0
  const once = (): void => {
    now += 0.05
    const e = b.pick(input)!
    b.place(e, now).end(now + 1, false)
  }
  for (let i = 0; i < 200_000; i++) once()
  global.gc?.()
  const heapBefore = process.memoryUsage().heapUsed
  const start = process.hrtime.bigint()
  for (let i = 0; i < ops; i++) once()
  const ns = Number(process.hrtime.bigint() - start)
  const heapAfter = process.memoryUsage().heapUsed
  return { nsPerOp: ns / ops, bytesPerOp: Math.max(0, heapAfter - heapBefore) / ops }
}

function main (): void {
  const { values } = parseArgs({ options: { endpoints: { type: 'string' }, ops: { type: 'string' } }, strict: true })
  const n = Number(values.endpoints ?? 16)
  const ops = Number(values.ops ?? 2_000_000)
  const endpoints: Ep[] = Array.from({ length: n }, (_, i) => ({ id: `10.244.${i >> 8}.${i & 255}|8080`, address: `10.244.${i >> 8}.${i & 255}`, port: 8080 }))
  const ejected = endpoints[0]
  console.log(`${n} endpoints, ${ops} requests per row; ns per request (pick + place + end)`)
  // The floor: the clock read alone, as each row's loop does it.
  let sink = 0
  const t0 = process.hrtime.bigint()
  for (let i = 0; i < ops; i++) sink += performance.now()
  const clockNs = Number(process.hrtime.bigint() - t0) / ops
  console.log(`performance.now() alone: ${clockNs.toFixed(0)} ns${sink < 0 ? '' : ''}`)
  console.log(`${'policy'.padEnd(16)} ${'all eligible'.padStart(14)} ${'one ejected'.padStart(14)} ${'heap growth'.padStart(14)}`)
  for (const policy of POLICIES) {
    const hash = policy.type === 'CONSISTENT_HASH' ? 'user-12345' : null
    const all = measure(policy, endpoints, ops, { eligible: () => true, hash })
    const one = measure(policy, endpoints, ops, { eligible: (e) => e !== ejected, hash })
    console.log(`${policy.type.padEnd(16)} ${all.nsPerOp.toFixed(0).padStart(11)} ns ${one.nsPerOp.toFixed(0).padStart(11)} ns ${all.bytesPerOp.toFixed(1).padStart(9)} B/req`)
  }
}

main()
