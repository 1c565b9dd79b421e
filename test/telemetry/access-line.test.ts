import t from 'tap'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import pino from 'pino'
import { createRequestAccessLog, type RequestDestination } from '../../src/telemetry/access-log'
import { createLogger, infoLineWriter } from '../../src/telemetry/logger'
import type { HttpRequestRecord } from '../../src/telemetry/request-record'
import { CART_B, conn, request } from './request-records'

// The request line written by hand (infoLineWriter, for the agent's loggers) is the line
// pino writes for the same record (any other logger): same keys in the same order, same
// values, time aside.

const CASES: Array<[string, HttpRequestRecord, RequestDestination | null]> = [
  ['plain', request(), null],
  ['routed, retried, two flags', request({ routeName: 'HTTPRoute shop/cart rule 1', attempts: 3, responseCode: 503, responseFlags: 'UF,URX' }), null],
  ['grpc, no upstream, no trace', request({ protocol: 'grpc', httpVersion: '2', grpcStatus: 14, upstream: null, traceId: null, requestId: null, responseCode: 0, responseFlags: 'UH' }), null],
  ['balanced to another pod, principal unknown', request(), { pod: { name: CART_B.name, namespace: CART_B.namespace, workload: CART_B.workload }, principal: 'unknown' }],
  ['balanced to another pod, principal known', request(), { pod: { name: CART_B.name, namespace: CART_B.namespace, workload: CART_B.workload }, principal: 'spiffe://cluster.local/ns/shop/sa/cart' }],
  ['authz, odd characters, unknown source pod', request({
    path: '/a "quoted"\\path\n?x=é', durationMs: 1.23456789,
    authz: { allowed: false, basis: 'deny', policy: 'shop/deny-admin', rule: 0 },
    conn: conn({ source: { pod: null, namespace: null, workload: null, ip: '10.1.1.1', port: 5 }, destination: null, destinationPrincipal: null, sourcePrincipal: null, service: null, mtls: false })
  }), null]
]

function withoutTime (line: string): string {
  const o = JSON.parse(line) as Record<string, unknown>
  if (typeof o.time !== 'number') return `no time in ${line}`
  delete o.time
  return JSON.stringify(o)
}

t.test('the hand-written request line is the line pino writes', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-access-line-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  const file = join(dir, 'agent.log')
  const fast = createLogger({ name: 'ferry-agent', level: 'info', destination: file }).child({ worker: 1 })
  t.not(infoLineWriter(fast, 'request'), null, 'an agent logger takes the hand-written path')
  const expected: string[] = []
  const stream = new Writable({ write (c, _e, cb) { expected.push(String(c).trimEnd()); cb() } })
  const reference = pino({ name: 'ferry-agent', base: { pid: process.pid } }, stream).child({ worker: 1 })
  t.equal(infoLineWriter(reference, 'request'), null, 'any other logger goes through pino')
  const a = createRequestAccessLog(fast)
  const b = createRequestAccessLog(reference)
  for (const [, r, d] of CASES) { a(r, d); b(r, d) }
  await new Promise<void>((resolve, reject) => { fast.flush((err) => { if (err != null) reject(err); else resolve() }) })
  const got = readFileSync(file, 'utf8').trimEnd().split('\n')
  t.equal(got.length, CASES.length)
  CASES.forEach(([name], i) => { t.equal(withoutTime(got[i]!), withoutTime(expected[i]!), name) })
  t.match(JSON.parse(got[1]!), { route_name: 'HTTPRoute shop/cart rule 1', attempts: 3, response_flags: 'UF,URX' }, 'a routed request names its rule and attempts')
  t.notOk('route_name' in JSON.parse(got[0]!) || 'attempts' in JSON.parse(got[0]!), 'a request without a route has neither')
})

t.test('the hand-written path honours the level', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-access-line-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  const file = join(dir, 'agent.log')
  const log = createLogger({ name: 'ferry-agent', level: 'warn', destination: file })
  createRequestAccessLog(log)(request(), null)
  log.level = 'info'
  createRequestAccessLog(log)(request({ path: '/second' }), null)
  await new Promise<void>((resolve, reject) => { log.flush((err) => { if (err != null) reject(err); else resolve() }) })
  const lines = readFileSync(file, 'utf8').trimEnd().split('\n')
  t.equal(lines.length, 1)
  t.equal((JSON.parse(lines[0]!) as { path: string }).path, '/second')
})
