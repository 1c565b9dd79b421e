import type { ParentReference } from '../routing/api-types'
import type { ConfigSnapshot } from '../resources/snapshot'
import { formatIssue } from '../resources/issues'
import type { ObjectReport } from '../resources/reports'
import type { Condition } from './policy-status'

// The status the controller writes on routes, as their APIs define it:
//
// HTTPRoute, GRPCRoute (Gateway API): one entry of status.parents per parentRef Ferry
// serves — a Service (GAMMA: group "" or "core", kind Service) — with controllerName
// ferry.dev/mesh and the two route conditions:
//   Accepted      True  Accepted          Ferry carries the route out
//                 False UnsupportedValue  refused: the message names the field and what
//                                         applies instead (its last valid version, or nothing)
//   ResolvedRefs  True  ResolvedRefs      every backendRef is a Service
//                 False InvalidKind       a backendRef of another kind
// Other parents (a Gateway) are another controller's: their entries are left as they are.
//
// VirtualService (Istio): Ferry's verdict conditions as on every Istio kind
// (policy-status.ts: FerryAccepted, FerryDegraded), plus
//   FerryOverridden  True   OverriddenByRoute  a Gateway API route (HTTPRoute/GRPCRoute)
//                                             attaches to a Service it names: there the
//                                             Gateway API route wins; the message says
//                                             when its retries are still lent to a
//                                             GRPCRoute (src/routing/lent-retries.ts)
//                    False  NotOverridden
//
// Which VirtualServices are overridden is computed here from the configuration alone:
// a route's Service parentRefs against the Services a VirtualService's hosts name
// (short name: the VirtualService's namespace; name.namespace; name.namespace.svc…).
// The agents' routing table (src/routing/) decides the same rule per Service port.

export const FERRY_CONTROLLER_NAME = 'ferry.dev/mesh'
export const OVERRIDDEN_CONDITION = 'FerryOverridden'
const MAX_MESSAGE = 32_768

export interface RouteParentStatus {
  parentRef: ParentReference
  controllerName: string
  conditions: Condition[]
}

type Draft = Omit<Condition, 'lastTransitionTime'>

function isServiceParent (p: ParentReference): boolean {
  return (p.group === undefined || p.group === '' || p.group === 'core') && p.kind === 'Service'
}

/** The parentRefs Ferry answers for: Services. */
export function meshParents (spec: { parentRefs?: readonly ParentReference[] } | undefined): ParentReference[] {
  return (spec?.parentRefs ?? []).filter(isServiceParent)
}

function resolvedRefs (spec: any): Draft {
  const refs: Array<{ group?: string, kind?: string, name?: string }> = []
  for (const rule of Array.isArray(spec?.rules) ? spec.rules : []) {
    for (const b of Array.isArray(rule?.backendRefs) ? rule.backendRefs : []) refs.push(b)
    for (const f of Array.isArray(rule?.filters) ? rule.filters : []) if (f?.requestMirror?.backendRef !== undefined) refs.push(f.requestMirror.backendRef)
  }
  const bad = refs.filter((r) => !((r.group === undefined || r.group === '' || r.group === 'core') && (r.kind === undefined || r.kind === 'Service')))
  if (bad.length > 0) {
    return { type: 'ResolvedRefs', status: 'False', reason: 'InvalidKind', message: `backendRefs must name Services; not: ${bad.map((r) => `${r.kind ?? 'Service'}${r.group === undefined || r.group === '' ? '' : `.${r.group}`} ${String(r.name)}`).join(', ')}` }
  }
  return { type: 'ResolvedRefs', status: 'True', reason: 'ResolvedRefs', message: 'every backendRef names a Service' }
}

function accepted (r: ObjectReport): Draft {
  if (r.state !== 'refused') return { type: 'Accepted', status: 'True', reason: 'Accepted', message: 'carried out by Ferry' }
  const issues = r.issues.map(formatIssue).join('; ')
  return { type: 'Accepted', status: 'False', reason: 'UnsupportedValue', message: `${issues}${r.note === undefined ? '' : `; ${r.note}`}` }
}

/** The status.parents Ferry writes for one route (its Service parents), keeping transition times from `previous`. */
export function routeParents (object: { metadata?: Record<string, any>, spec?: any, status?: Record<string, any> }, r: ObjectReport, now: number): RouteParentStatus[] {
  const generation = typeof object.metadata?.generation === 'number' ? object.metadata.generation : undefined
  const previous: RouteParentStatus[] = Array.isArray(object.status?.parents) ? object.status.parents : []
  const drafts = [accepted(r), resolvedRefs(object.spec)]
  return meshParents(object.spec).map((parentRef) => {
    const before = previous.find((p) => p.controllerName === FERRY_CONTROLLER_NAME && sameParent(p.parentRef, parentRef))?.conditions ?? []
    return { parentRef: { ...parentRef }, controllerName: FERRY_CONTROLLER_NAME, conditions: drafts.map((d) => stamp(d, generation, before, now)) }
  })
}

/** The whole status with Ferry's parents replaced (other controllers' kept); null when it is already so. */
export function routeStatus (object: { metadata?: Record<string, any>, spec?: any, status?: Record<string, any> }, r: ObjectReport, now: number): Record<string, unknown> | null {
  const existing: RouteParentStatus[] = Array.isArray(object.status?.parents) ? object.status.parents : []
  const ours = existing.filter((p) => p.controllerName === FERRY_CONTROLLER_NAME)
  const desired = routeParents(object, r, now)
  if (ours.length === desired.length && desired.every((d) => ours.some((o) => sameParent(o.parentRef, d.parentRef) && sameConditions(o.conditions, d.conditions)))) return null
  return { ...(object.status ?? {}), parents: [...existing.filter((p) => p.controllerName !== FERRY_CONTROLLER_NAME), ...desired] }
}

export interface OverriddenVirtualService {
  /** "namespace/name" */
  readonly ref: string
  /** "namespace/name" of the Services where a Gateway API route wins. */
  readonly services: readonly string[]
  readonly message: string
}

/** The VirtualServices in `snapshot` that a Gateway API route in it overrides, by ref. */
export function overriddenVirtualServices (snapshot: Pick<ConfigSnapshot, 'httpRoutes' | 'grpcRoutes' | 'virtualServices'>): Map<string, OverriddenVirtualService> {
  const routed = new Map<string, string[]>()
  for (const route of [...snapshot.httpRoutes, ...snapshot.grpcRoutes]) {
    for (const p of meshParents(route.spec)) {
      const svc = `${p.namespace ?? route.metadata.namespace}/${p.name}`
      const by = routed.get(svc) ?? []
      by.push(`${route.kind} ${route.ref}`)
      routed.set(svc, by)
    }
  }
  const out = new Map<string, OverriddenVirtualService>()
  for (const vs of snapshot.virtualServices) {
    const services = [...new Set((vs.spec.hosts ?? []).map((h) => serviceOfHost(h, vs.metadata.namespace)).filter((s): s is string => s !== null && routed.has(s)))].sort()
    if (services.length === 0) continue
    const by = [...new Set(services.flatMap((s) => routed.get(s) ?? []))].sort()
    const lends = by.some((r) => r.startsWith('GRPCRoute ')) && (vs.spec.http ?? []).some((h) => h.retries !== undefined && h.retries.attempts !== 0)
    const rest = lends
      ? 'it wins; of this VirtualService only its retries (http[].retries) still apply, to the requests of GRPCRoute rules its rules match, and the rest does not apply'
      : 'it wins and this VirtualService does not apply'
    out.set(vs.ref, { ref: vs.ref, services, message: `overridden on ${services.map((s) => `Service ${s}`).join(', ')} by ${by.join(', ')}: where a Gateway API route attaches to a Service, ${rest}` })
  }
  return out
}

/** The Service ("namespace/name") a VirtualService host names, or null (a wildcard, an external name). */
export function serviceOfHost (host: string, namespace: string): string | null {
  if (host.includes('*')) return null
  const parts = host.split('.')
  if (parts.length === 1) return `${namespace}/${parts[0]}`
  if (parts.length === 2) return `${parts[1]}/${parts[0]}`
  if (parts[2] === 'svc') return `${parts[1]}/${parts[0]}`
  return null
}

export function overriddenCondition (o: OverriddenVirtualService | undefined, generation: number | undefined, previous: readonly Condition[], now: number): Condition {
  const draft: Draft = o === undefined
    ? { type: OVERRIDDEN_CONDITION, status: 'False', reason: 'NotOverridden', message: 'no Gateway API route attaches to the Services it names' }
    : { type: OVERRIDDEN_CONDITION, status: 'True', reason: 'OverriddenByRoute', message: o.message }
  return stamp(draft, generation, previous, now)
}

function stamp (c: Draft, generation: number | undefined, previous: readonly Condition[], now: number): Condition {
  const before = previous.find((p) => p.type === c.type)
  const lastTransitionTime = before !== undefined && before.status === c.status ? before.lastTransitionTime : new Date(now).toISOString().replace(/\.\d{3}Z$/, 'Z')
  return { ...c, message: c.message.slice(0, MAX_MESSAGE), ...(generation === undefined ? {} : { observedGeneration: generation }), lastTransitionTime }
}

function sameParent (a: ParentReference | undefined, b: ParentReference): boolean {
  return a !== undefined && a.name === b.name && (a.namespace ?? '') === (b.namespace ?? '') && (a.port ?? 0) === (b.port ?? 0) &&
    (a.sectionName ?? '') === (b.sectionName ?? '') && (a.kind ?? '') === (b.kind ?? '') && (a.group ?? '') === (b.group ?? '')
}

function sameConditions (a: readonly Condition[], b: readonly Condition[]): boolean {
  return a.length === b.length && b.every((c) => a.some((x) => x.type === c.type && x.status === c.status && x.reason === c.reason && x.message === c.message && x.observedGeneration === c.observedGeneration))
}
