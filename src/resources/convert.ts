import { deepFreeze } from '../discovery/model'
import type { Degraded } from './degrade'
import {
  type AuthorizationPolicy, type AuthorizationPolicySpec, type DeclaredMtlsMode, DRY_RUN_ANNOTATIONS, type ObjectMeta,
  type PeerAuthentication, type PeerAuthenticationSpec, type PolicyCondition, type PolicyOperation, type PolicyRule, type PolicySource,
  type Resource, type ResourceKind, type SourceLocation, type WorkloadSelector
} from './documents'

// A document that passed its schema, made into the typed, frozen resource the rest of
// Ferry uses: defaults applied (action ALLOW, mtls mode UNSET), Istio's string ports made
// numbers, dry-run read from its annotation. A degraded document (degrade.ts) comes as
// the form Ferry enforces, with what was changed. The routing kinds and RateLimit keep
// their spec as written. No validation happens here.

type Raw = Record<string, any>

type Changes = Pick<Degraded, 'degradations' | 'unenforceable' | 'dropped'>
const AS_WRITTEN: Changes = { degradations: [], unenforceable: new Map(), dropped: new Map() }

export function toResource (kind: ResourceKind, raw: Raw, origin: SourceLocation, changes: Changes = AS_WRITTEN): Resource {
  const metadata = toMeta(raw.metadata)
  const base = { apiVersion: raw.apiVersion as string, metadata, ref: `${metadata.namespace}/${metadata.name}`, origin, degraded: [...changes.degradations] }
  const spec: Raw = raw.spec ?? {}
  if (kind === 'AuthorizationPolicy') {
    const policy: AuthorizationPolicy = {
      kind,
      ...base,
      spec: toAuthorizationSpec(spec, changes),
      dryRun: DRY_RUN_ANNOTATIONS.some((a) => metadata.annotations[a] === 'true')
    }
    return deepFreeze(policy)
  }
  if (kind === 'PeerAuthentication') {
    const peer: PeerAuthentication = { kind, ...base, spec: toPeerAuthenticationSpec(spec) }
    return deepFreeze(peer)
  }
  // The traffic-management kinds keep their spec as written (a copy): the schema checked
  // it, and the compilers (src/routing/) apply the specifications' defaults.
  return deepFreeze({ kind, ...base, spec: structuredClone(spec) } as Resource)
}

function toMeta (md: Raw): ObjectMeta {
  const meta: ObjectMeta = { name: md.name, namespace: md.namespace, labels: { ...md.labels }, annotations: { ...md.annotations } }
  // Only the routing kinds' schema admits it (policies have it left out as server-written).
  return typeof md.creationTimestamp === 'string' ? { ...meta, creationTimestamp: md.creationTimestamp } : meta
}

function toSelector (s: Raw | undefined): WorkloadSelector | undefined {
  return s === undefined ? undefined : { matchLabels: { ...s.matchLabels } }
}

function toAuthorizationSpec (spec: Raw, changes: Changes): AuthorizationPolicySpec {
  const out: { -readonly [K in keyof AuthorizationPolicySpec]: AuthorizationPolicySpec[K] } = { action: spec.action ?? 'ALLOW' }
  const selector = toSelector(spec.selector)
  if (selector !== undefined) out.selector = selector
  if (spec.rules !== undefined) out.rules = (spec.rules as Raw[]).map((r, i) => toRule(r, changes.unenforceable.get(i), changes.dropped.get(i)))
  return out
}

function toRule (r: Raw, unenforceable: readonly string[] | undefined, dropped: readonly string[] | undefined): PolicyRule {
  const rule: { -readonly [K in keyof PolicyRule]: PolicyRule[K] } = {}
  if (r.from !== undefined) rule.from = (r.from as Raw[]).map((f) => ({ source: { ...f.source } as PolicySource }))
  if (r.to !== undefined) rule.to = (r.to as Raw[]).map((t) => ({ operation: toOperation(t.operation) }))
  // Entries degrade.ts took out (conditions Ferry cannot check) leave holes: skipped.
  const when = r.when === undefined ? [] : (r.when as Array<Raw | undefined>).filter((w): w is Raw => w != null)
  if (when.length > 0) rule.when = when.map(toCondition)
  if (unenforceable !== undefined) rule.unenforceable = [...unenforceable]
  if (dropped !== undefined) rule.dropped = [...dropped]
  return rule
}

const OPERATION_STRINGS = ['methods', 'notMethods', 'paths', 'notPaths', 'hosts', 'notHosts'] as const

function toOperation (op: Raw): PolicyOperation {
  const out: { -readonly [K in keyof PolicyOperation]: PolicyOperation[K] } = {}
  if (op.ports !== undefined) out.ports = (op.ports as string[]).map(Number)
  if (op.notPorts !== undefined) out.notPorts = (op.notPorts as string[]).map(Number)
  for (const name of OPERATION_STRINGS) if (op[name] !== undefined) out[name] = [...(op[name] as string[])]
  return out
}

function toCondition (w: Raw): PolicyCondition {
  const out: { -readonly [K in keyof PolicyCondition]: PolicyCondition[K] } = { key: w.key }
  if (w.values !== undefined) out.values = [...(w.values as string[])]
  if (w.notValues !== undefined) out.notValues = [...(w.notValues as string[])]
  return out
}

function toPeerAuthenticationSpec (spec: Raw): PeerAuthenticationSpec {
  const out: { -readonly [K in keyof PeerAuthenticationSpec]: PeerAuthenticationSpec[K] } = {}
  const selector = toSelector(spec.selector)
  if (selector !== undefined) out.selector = selector
  if (spec.mtls !== undefined) out.mtls = { mode: modeOf(spec.mtls) }
  if (spec.portLevelMtls !== undefined) {
    out.portLevelMtls = Object.fromEntries(Object.entries(spec.portLevelMtls as Record<string, Raw>).map(([port, m]) => [String(Number(port)), { mode: modeOf(m) }]))
  }
  return out
}

function modeOf (m: Raw): DeclaredMtlsMode {
  return m.mode ?? 'UNSET'
}
