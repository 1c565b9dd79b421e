import { compilePolicySet, type PolicySet } from '../../src/policy/policy-set'
import type { AuthzRequest, Decision } from '../../src/policy/model'
import { buildSnapshot } from '../../src/resources/loader'

// Policies for tests are written as YAML text and go through the real loader, so every
// test also exercises the schema and the conversion.

export const FILE = '/policies/test.yaml'

export function policySet (yaml: string, opts: { rootNamespace?: string } = {}): PolicySet {
  return compilePolicySet(buildSnapshot([{ path: FILE, text: yaml }], { origin: '/policies', generation: 1, rootNamespace: opts.rootNamespace }))
}

/** An AuthorizationPolicy document; `spec` is YAML indented for the spec block. */
export function ap (ns: string, name: string, spec: string, extra: { apiVersion?: string, annotations?: Record<string, string> } = {}): string {
  const annotations = extra.annotations === undefined ? '' : `\n  annotations:\n${Object.entries(extra.annotations).map(([k, v]) => `    ${k}: "${v}"`).join('\n')}`
  return `apiVersion: ${extra.apiVersion ?? 'security.istio.io/v1'}
kind: AuthorizationPolicy
metadata:
  name: ${name}
  namespace: ${ns}${annotations}
spec:
${spec.split('\n').map((l) => `  ${l}`).join('\n')}
---
`
}

export interface Req {
  principal?: string | null
  namespace?: string | null
  ip?: string | null
  to: string
  labels?: Record<string, string>
  port?: number
}

/** `to` is the destination namespace. */
export function request (r: Req): AuthzRequest {
  return {
    source: { principal: r.principal ?? null, namespace: r.namespace ?? null, ip: r.ip ?? null },
    destination: { namespace: r.to, labels: r.labels ?? { app: 'db' }, port: r.port ?? 5432 }
  }
}

export function decide (set: PolicySet, r: Req): Decision {
  return set.authz.evaluate(request(r))
}

export const DEV_WEB = 'cluster.local/ns/dev/sa/web'
export const PROD_API = 'cluster.local/ns/prod/sa/api'
