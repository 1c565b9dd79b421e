import type { FerryError } from '../errors'
import type { PolicyCollection } from '../kubernetes/policy-objects'
import { formatIssue } from '../resources/issues'
import type { ObjectReport } from '../resources/reports'
import type { Logger } from '../telemetry/logger'
import { OVERRIDDEN_CONDITION, type OverriddenVirtualService, overriddenCondition, routeStatus } from './route-status'

// What the controller tells a policy object's author, in the object's status (with
// --kubernetes, on Ferry's CRDs and on Istio's kinds). Istio's istiod reports its L4
// proxy's verdict as one condition, `ZtunnelAccepted` (True/Accepted; True/UnsupportedValue
// with the HTTP attributes it left out; False/UnsupportedValue for an action it skips);
// Ferry writes its own verdict the same way, beside whatever else the status holds:
//
//   FerryAccepted   True   Accepted          enforced as written
//                   True   UnsupportedValue  enforced narrower than written (see FerryDegraded)
//                   False  Invalid           malformed: not enforced; the message says what
//                                            applies instead (its last valid version, or nothing)
//                   False  Conflict          a second definition of the name, or a second
//                                            namespace-wide PeerAuthentication
//   FerryDegraded   True   UnsupportedValue  the fields Ferry left out or could not check, and
//                                            what it does instead
//                   False  AsWritten | NotAccepted
//
// Conditions carry observedGeneration (the object's metadata.generation) and keep their
// lastTransitionTime while their status holds. A status is patched only when Ferry's
// conditions differ from the object's as last seen, so the controller's own writes (which
// come back through its watch) settle: at worst a write is repeated, with the same
// content, while the watch has not caught up. Other conditions (istiod's) are kept.
//
// Routes have their APIs' own status (route-status.ts): Gateway API's HTTPRoute and
// GRPCRoute get Accepted / ResolvedRefs per Service parent in status.parents; a
// VirtualService also gets FerryOverridden when a Gateway API route wins on its Service.

export const STATUS_CONDITIONS = Object.freeze({ accepted: 'FerryAccepted', degraded: 'FerryDegraded' })
/** Kubernetes' limit for a condition message. */
const MAX_MESSAGE = 32_768

export interface Condition {
  type: string
  status: 'True' | 'False'
  reason: string
  message: string
  observedGeneration?: number
  lastTransitionTime: string
}

export interface StatusTarget {
  readonly collection: PolicyCollection
  /** As the API server sent it (metadata, status). */
  readonly object: { metadata?: Record<string, any>, status?: Record<string, any> }
  /** What the controller made of it (absent: not judged; nothing is written). */
  readonly report: ObjectReport | undefined
  /** A VirtualService: the Gateway API routes that override it (absent: none). */
  readonly overridden?: OverriddenVirtualService
}

/** Writes `status` of one object (a JSON patch of /status on its status subresource). */
export type StatusPatcher = (c: PolicyCollection, namespace: string, name: string, status: Record<string, unknown>) => Promise<void>

export class PolicyStatusWriter {
  private running = false
  private pending: readonly StatusTarget[] | null = null
  private lastError = ''

  constructor (private readonly deps: { readonly patch: StatusPatcher, readonly log: Logger, readonly now?: () => number }) {}

  /** The conditions every target should have; patched one by one, a round at a time (the latest round waits). */
  update (targets: readonly StatusTarget[]): void {
    this.pending = targets
    if (!this.running) void this.drain()
  }

  private async drain (): Promise<void> {
    this.running = true
    try {
      while (this.pending !== null) {
        const round = this.pending
        this.pending = null
        for (const t of round) await this.write(t)
      }
    } finally {
      this.running = false
    }
  }

  private async write (t: StatusTarget): Promise<void> {
    if (t.report === undefined) return
    const md = t.object.metadata ?? {}
    const status = statusFor(t, t.report, this.deps.now?.() ?? Date.now())
    if (status === null) return
    try {
      await this.deps.patch(t.collection, String(md.namespace), String(md.name), status)
      this.lastError = ''
      this.deps.log.debug({ object: t.report.object, state: t.report.state }, 'status written')
    } catch (err) {
      const e = err as FerryError
      if (e.message !== this.lastError) this.deps.log.warn({ object: t.report.object, code: e.code, err: e.message }, 'cannot write the status of a policy object; retried on its next change')
      this.lastError = e.message
    }
  }
}

/** The status to write on `t` (null: it already says so). */
function statusFor (t: StatusTarget, report: ObjectReport, now: number): Record<string, unknown> | null {
  const kind = t.collection.kind
  if (kind === 'HTTPRoute' || kind === 'GRPCRoute') return routeStatus(t.object as Parameters<typeof routeStatus>[0], report, now)
  const md = t.object.metadata ?? {}
  const generation = typeof md.generation === 'number' ? md.generation : undefined
  const existing: Condition[] = Array.isArray(t.object.status?.conditions) ? t.object.status.conditions : []
  const desired = ferryConditions(report, generation, existing, now)
  if (kind === 'VirtualService') desired.push(overriddenCondition(t.overridden, generation, existing, now))
  const ours = existing.filter((c) => isOurs(c.type))
  if (same(ours, desired)) return null
  return { ...(t.object.status ?? {}), conditions: [...existing.filter((c) => !isOurs(c.type)), ...desired] }
}

/** Ferry's two conditions for an object in the state `r`, keeping transition times from `previous`. */
export function ferryConditions (r: ObjectReport, generation: number | undefined, previous: readonly Condition[], now: number): Condition[] {
  const issues = r.issues.map(formatIssue).join('; ')
  const accepted: Omit<Condition, 'lastTransitionTime'> = r.state === 'accepted'
    ? { type: STATUS_CONDITIONS.accepted, status: 'True', reason: 'Accepted', message: 'enforced by Ferry as written' }
    : r.state === 'degraded'
      ? { type: STATUS_CONDITIONS.accepted, status: 'True', reason: 'UnsupportedValue', message: `enforced by Ferry narrower than written (${STATUS_CONDITIONS.degraded})` }
      : { type: STATUS_CONDITIONS.accepted, status: 'False', reason: r.refusal === 'conflict' ? 'Conflict' : 'Invalid', message: `${issues}${r.note === undefined ? '' : `; ${r.note}`}` }
  const degraded: Omit<Condition, 'lastTransitionTime'> = r.state === 'degraded'
    ? { type: STATUS_CONDITIONS.degraded, status: 'True', reason: 'UnsupportedValue', message: issues }
    : { type: STATUS_CONDITIONS.degraded, status: 'False', reason: r.state === 'accepted' ? 'AsWritten' : 'NotAccepted', message: r.state === 'accepted' ? 'nothing left out' : `not accepted (${STATUS_CONDITIONS.accepted})` }
  return [accepted, degraded].map((c) => {
    const before = previous.find((p) => p.type === c.type)
    const lastTransitionTime = before !== undefined && before.status === c.status ? before.lastTransitionTime : new Date(now).toISOString().replace(/\.\d{3}Z$/, 'Z')
    return { ...c, message: c.message.slice(0, MAX_MESSAGE), ...(generation === undefined ? {} : { observedGeneration: generation }), lastTransitionTime }
  })
}

function isOurs (type: unknown): boolean {
  return type === STATUS_CONDITIONS.accepted || type === STATUS_CONDITIONS.degraded || type === OVERRIDDEN_CONDITION
}

function same (a: readonly Condition[], b: readonly Condition[]): boolean {
  if (a.length !== b.length) return false
  return b.every((c) => a.some((x) => x.type === c.type && x.status === c.status && x.reason === c.reason && x.message === c.message && x.observedGeneration === c.observedGeneration))
}
