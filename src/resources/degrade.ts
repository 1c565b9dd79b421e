import { type Degradation, type ResourceKind, ROUTING_KINDS } from './documents'
import { type FieldPath, formatPath } from './issues'
import type { SchemaIssue } from './validate'

// A well-formed document that uses what Ferry cannot enforce (the schema's
// x-ferry-unsupported markers) is applied in a form that never allows more than the
// document would, following Istio ambient's rule for what its L4 proxy (ztunnel) cannot
// enforce:
//
// (L7 fields Ferry does evaluate — methods, paths, hosts, `when` on request headers —
// are not markers: they are enforced per request where L7 is engaged, src/policy/.)
//
//   DENY rule          the conditions Ferry cannot check are left out: the rule matches
//                      more connections, so the policy denies more
//   ALLOW rule         a rule with a condition Ferry cannot check never matches; the
//                      policy keeps applying to its workloads, so they stay closed to
//                      what that rule would have allowed (its other rules still work)
//   action CUSTOM      an external authorizer that could deny: enforced as DENY of its
//                      rules (Ferry cannot ask the authorizer); `provider` left out
//   action AUDIT       does not decide access: the policy is not enforced (reported)
//   targetRef(s)       which workloads they name is unknown: the policy applies to every
//                      workload of its namespace (of the mesh, in the root namespace)
//   mtls mode DISABLE  read as UNSET (inherit): never weaker than leaving it out
//   server metadata    uid, resourceVersion, status, …: no effect on access, left out
//
// Anything else marked unsupported and not handled here makes the document refused: a
// new marker needs a decision here, never a silent default.
//
// The routing kinds (HTTPRoute, GRPCRoute, VirtualService, DestinationRule) have no
// narrower form: a route applied without a match, a filter or a policy it names would
// send requests where its author did not mean them to go. Any unsupported field of their
// spec refuses the object, naming the field; only server-written metadata and status are
// left out.

type Raw = Record<string, any>

export interface Degraded {
  /** The document as Ferry enforces it (a copy; the input is not changed). */
  readonly value: Raw
  readonly degradations: readonly Degradation[]
  /** The policy does not decide access at all (AUDIT): report it, enforce nothing. */
  readonly ignored: boolean
  /** Rule index → fields that make that ALLOW rule match nothing. */
  readonly unenforceable: ReadonlyMap<number, readonly string[]>
  /** Rule index → fields left out of that DENY rule. */
  readonly dropped: ReadonlyMap<number, readonly string[]>
}

export type DegradeResult = { readonly ok: true, readonly degraded: Degraded } | { readonly ok: false, readonly issues: readonly SchemaIssue[] }

const RULE_FIELDS: ReadonlyArray<(rest: FieldPath) => boolean> = [
  (r) => r.length === 1 && r[0] === 'when',
  // One `when` entry whose key Ferry cannot evaluate (src/resources/conditions.ts).
  (r) => r.length === 2 && r[0] === 'when' && typeof r[1] === 'number',
  (r) => r.length === 4 && r[0] === 'from' && typeof r[1] === 'number' && r[2] === 'source',
  (r) => r.length === 4 && r[0] === 'to' && typeof r[1] === 'number' && r[2] === 'operation'
]

/** Applies the rules above for every `unsupported` issue of a document that has no other issue. */
export function degradeDocument (kind: ResourceKind, raw: Raw, issues: readonly SchemaIssue[]): DegradeResult {
  const doc = structuredClone(raw)
  const out: Degradation[] = []
  const unenforceable = new Map<number, string[]>()
  const dropped = new Map<number, string[]>()
  const unhandled: SchemaIssue[] = []
  const note = (path: FieldPath, reason: string, effect: string, k: Degradation['kind']): void => {
    out.push({ field: formatPath(path), path: [...path], reason, effect, kind: k })
  }
  const spec: Raw = doc.spec ?? {}

  // The action first: it decides how the rules' conditions are treated.
  let action = kind === 'AuthorizationPolicy' ? String(spec.action ?? 'ALLOW') : ''
  let ignored = false
  for (const i of issues) {
    if (!is(i.path, ['spec', 'action'])) continue
    if (spec.action === 'AUDIT') {
      ignored = true
      note(i.path, i.message, 'AUDIT does not decide access: the policy is not enforced', 'ignored')
    } else if (spec.action === 'CUSTOM') {
      spec.action = action = 'DENY'
      note(i.path, i.message, 'enforced as a DENY of its rules (Ferry cannot ask the external authorizer, which could deny them)', 'action')
    } else {
      unhandled.push(i)
    }
  }

  const refusedRoute: SchemaIssue[] = []
  for (const i of issues) {
    const p = i.path
    if (ROUTING_KINDS.has(kind) && p[0] === 'spec') {
      refusedRoute.push({ path: p, message: `${i.message}; the ${kind} is refused: applied without it, it would send requests where it does not say` })
      continue
    }
    if (is(p, ['spec', 'action'])) continue
    if (p.length === 2 && p[0] === 'metadata') {
      delete doc.metadata[p[1]]
      note(p, i.message, 'ignored', 'ignored')
    } else if (is(p, ['status'])) {
      delete doc.status
      note(p, i.message, 'ignored', 'ignored')
    } else if (is(p, ['spec', 'provider'])) {
      delete spec.provider
      note(p, i.message, 'left out (Ferry cannot ask an external authorizer)', 'ignored')
    } else if (is(p, ['spec', 'targetRef']) || is(p, ['spec', 'targetRefs'])) {
      delete spec[p[1]]
      delete spec.selector
      note(p, i.message, `applied to every workload of namespace ${String(doc.metadata?.namespace)} (Ferry cannot tell which workloads the targets are)`, 'scope')
    } else if (kind === 'PeerAuthentication' && isModePath(p) && modeAt(spec, p) === 'DISABLE') {
      setModeAt(spec, p, 'UNSET')
      note(p, i.message, 'read as UNSET: inherits the namespace\'s or mesh\'s mode (Ferry never turns mTLS off)', 'mode')
    } else if (kind === 'AuthorizationPolicy' && p.length >= 4 && p[0] === 'spec' && p[1] === 'rules' && typeof p[2] === 'number' && RULE_FIELDS.some((f) => f(p.slice(3)))) {
      const r = p[2]
      const field = formatPath(p)
      removeAt(doc, p)
      if (action === 'ALLOW') {
        list(unenforceable, r).push(field)
        note(p, i.message, `rule ${r} of this ALLOW policy never matches: it allows nothing, and its workloads stay closed to what it would have allowed`, 'rule-matches-nothing')
      } else {
        list(dropped, r).push(field)
        note(p, i.message, `rule ${r} of this DENY policy is applied without it: it matches more connections, so it denies more`, 'condition-dropped')
      }
    } else {
      unhandled.push(i)
    }
  }
  if (refusedRoute.length > 0 || unhandled.length > 0) {
    return { ok: false, issues: [...refusedRoute, ...unhandled.map((i) => ({ path: i.path, message: `${i.message} (and Ferry has no safe way to apply the rest of this document without it)` }))] }
  }
  if (doc.spec !== undefined) doc.spec = spec
  return { ok: true, degraded: { value: doc, degradations: out, ignored, unenforceable, dropped } }
}

function is (path: FieldPath, want: readonly string[]): boolean {
  return path.length === want.length && want.every((w, i) => path[i] === w)
}

/** spec.mtls.mode or spec.portLevelMtls.<port>.mode */
function isModePath (p: FieldPath): boolean {
  return is(p, ['spec', 'mtls', 'mode']) || (p.length === 4 && p[0] === 'spec' && p[1] === 'portLevelMtls' && p[3] === 'mode')
}

function modeAt (spec: Raw, p: FieldPath): unknown {
  return p[1] === 'mtls' ? spec.mtls?.mode : spec.portLevelMtls?.[p[2]]?.mode
}

function setModeAt (spec: Raw, p: FieldPath, mode: string): void {
  if (p[1] === 'mtls') spec.mtls.mode = mode
  else spec.portLevelMtls[p[2]].mode = mode
}

function removeAt (doc: Raw, path: FieldPath): void {
  let node: any = doc
  for (const seg of path.slice(0, -1)) node = node?.[seg]
  // A list entry leaves a hole (indexes of later issues stay right); convert.ts skips it.
  if (node !== null && typeof node === 'object') delete node[path[path.length - 1]]
}

function list<K, V> (m: Map<K, V[]>, k: K): V[] {
  let l = m.get(k)
  if (l === undefined) m.set(k, l = [])
  return l
}
