import type { RequestAuthorizer, UpstreamTarget } from '../../src/http/context'
import type { AttemptOutcome, AttemptRefusal, BackendRef, ConnectionPolicy, HeaderEdits, RequestPlan, RetryOn, RetryPolicy, RouteRule } from '../../src/routing/model'
import type { ConnectionRecord } from '../../src/telemetry/connection-record'
import { dialLoopback, startEngine, type Teardown } from './http-harness'

// Hand-built RequestPlans for the engine's tests: the plan interface routing implements
// (src/routing/model.ts), over loopback endpoints, recording what the engine asked of it
// (attempts and their outcomes, retries asked of the budget, mirror targets).

export interface PlanLog {
  /** Ports each attempt went to, in order. */
  readonly ports: number[]
  readonly outcomes: AttemptOutcome[]
  /** retryDelay() calls. */
  budgetAsked: number
  readonly mirrored: number[]
}

export interface PlanSpec {
  readonly ports: number[]
  readonly rule?: string | null
  readonly retry?: Partial<Omit<RetryPolicy, 'on'>> & { readonly on?: Partial<RetryOn> }
  readonly timeoutMs?: number | null
  readonly perTryTimeoutMs?: number | null
  readonly delayMs?: number
  readonly path?: string | null
  readonly authority?: string | null
  readonly requestHeaders?: HeaderEdits[]
  readonly responseHeaders?: HeaderEdits[]
  readonly mirrors?: number[]
  /** Retries the budget allows (retryDelay not null this many times); default unlimited. */
  readonly budget?: number
  /** Every attempt refused so. */
  readonly refuse?: AttemptRefusal
  /** Same-node: each target's destination handling. */
  readonly local?: RequestAuthorizer | null
  /** Each attempt's connection limits (Attempt.connections). */
  readonly connections?: ConnectionPolicy | null
}

export const NO_RETRY_ON: RetryOn = Object.freeze({ connectFailure: false, reset: false, serverError: false, gatewayError: false, retriable4xx: false, statuses: [], grpcStatuses: [] })

export function edits (e: Partial<HeaderEdits>): HeaderEdits {
  return { set: e.set ?? [], add: e.add ?? [], remove: e.remove ?? [] }
}

const BACKEND: BackendRef = Object.freeze({ service: 'test/svc', port: 80, subset: null })

export function targetOf (port: number, record: ConnectionRecord, local: RequestAuthorizer | null = null): UpstreamTarget {
  return { key: `plan|127.0.0.1:${port}`, address: { address: '127.0.0.1', port, family: 4 }, record, local, dial: async () => await dialLoopback(port) }
}

export function ruleNamed (name: string): RouteRule {
  return { name, source: { kind: 'HTTPRoute', ref: 'test/route', rule: 0 }, matches: [], backends: [], requestHeaders: null, responseHeaders: null, redirect: null, rewrite: null, mirrors: [], timeoutMs: null, backendTimeoutMs: null, retry: null, fault: null }
}

/** A plan over `spec.ports` (attempts go to them in turn, skipping tried ones while others remain) and its log. */
export function testPlan (spec: PlanSpec, record: ConnectionRecord, log: PlanLog = { ports: [], outcomes: [], budgetAsked: 0, mirrored: [] }): { plan: RequestPlan, log: PlanLog } {
  let budget = spec.budget ?? Infinity
  const targets = spec.ports.map((p) => targetOf(p, record, spec.local ?? null))
  const retry: RetryPolicy | null = spec.retry === undefined
    ? null
    : { attempts: spec.retry.attempts ?? 2, perTryTimeoutMs: spec.retry.perTryTimeoutMs ?? null, backoffBaseMs: spec.retry.backoffBaseMs ?? 5, backoffMaxMs: spec.retry.backoffMaxMs ?? 50, on: { ...NO_RETRY_ON, ...spec.retry.on } }
  const plan: RequestPlan = {
    rule: spec.rule === null ? null : ruleNamed(spec.rule ?? 'HTTPRoute test/route rule 0'),
    backend: BACKEND,
    path: spec.path ?? null,
    authority: spec.authority ?? null,
    requestHeaders: spec.requestHeaders ?? [],
    responseHeaders: spec.responseHeaders ?? [],
    timeoutMs: spec.timeoutMs ?? null,
    perTryTimeoutMs: spec.perTryTimeoutMs ?? null,
    retry,
    delayMs: spec.delayMs ?? 0,
    mirrors: (spec.mirrors ?? []).map((p) => ({ service: 'test/mirror', port: p, subset: null })),
    attempt (tried) {
      if (spec.refuse !== undefined) return spec.refuse
      const fresh = targets.filter((t) => !tried.includes(t))
      const t = (fresh.length > 0 ? fresh : targets)[tried.length % (fresh.length > 0 ? 1 : targets.length)]
      log.ports.push(t.address.port)
      let ended = false
      return {
        target: t,
        connections: spec.connections ?? null,
        end (outcome) {
          if (ended) throw new Error('attempt ended twice')
          ended = true
          log.outcomes.push(outcome)
        }
      }
    },
    retryDelay () {
      log.budgetAsked++
      if (budget <= 0) return null
      budget--
      return 0
    },
    mirrorTarget (backend) {
      log.mirrored.push(backend.port)
      return targetOf(backend.port, record)
    }
  }
  return { plan, log }
}

/** An engine on loopback whose every request is forwarded by a fresh testPlan(spec); the plans' logs in order. */
export async function routed (t: Teardown, spec: PlanSpec, version: 'http1' | 'http2' = 'http1'): Promise<{ port: number, records: any[], logs: PlanLog[] }> {
  const logs: PlanLog[] = []
  const fx = await startEngine(t, {
    version,
    endpoints: [],
    route: (_v, record) => {
      const p = testPlan(spec, record)
      logs.push(p.log)
      return { kind: 'forward', plan: p.plan }
    }
  })
  return { port: fx.port, records: fx.records, logs }
}
