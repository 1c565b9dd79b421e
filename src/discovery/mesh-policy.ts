import { ferryError, type FerryError } from '../errors'
import type { Namespace, Pod } from './model'

// Which pods are in the mesh, and which of their ports are left alone.
//
//   meshed  = namespace label ferry.dev/mesh=enabled, unless the pod is annotated
//             ferry.dev/mesh=disabled; or the pod is annotated ferry.dev/mesh=enabled.
//   ports   = ferry.dev/exclude-outbound-ports / ferry.dev/exclude-inbound-ports,
//             comma-separated port numbers.
//   inbound = STRICT (only the mesh's tunnel, and the node's own pods, may reach the
//             pod; plaintext from outside the mesh is reset) or PERMISSIVE (plaintext is
//             relayed too): pod annotation ferry.dev/inbound-mode, else the namespace
//             label ferry.dev/inbound-mode, else STRICT. See inboundMode().
// A meshed pod whose annotations are invalid gets a decision carrying the error, so the
// agent can report it and enroll nothing of it (never half).

export const MESH_LABEL = 'ferry.dev/mesh'
export const MESH_ANNOTATION = 'ferry.dev/mesh'
export const EXCLUDE_OUTBOUND_ANNOTATION = 'ferry.dev/exclude-outbound-ports'
export const EXCLUDE_INBOUND_ANNOTATION = 'ferry.dev/exclude-inbound-ports'
/** Namespace label and pod annotation (the annotation wins): STRICT | PERMISSIVE. */
export const INBOUND_MODE_KEY = 'ferry.dev/inbound-mode'
const ENABLED = 'enabled'
const DISABLED = 'disabled'

export type MeshDecision =
  | { readonly meshed: false }
  | { readonly meshed: true, readonly excludeOutboundPorts: readonly number[], readonly excludeInboundPorts: readonly number[] }
  | { readonly meshed: true, readonly error: FerryError }

const NOT_MESHED: MeshDecision = Object.freeze({ meshed: false })

export function isMeshed (pod: Pod, namespace: Namespace | undefined): boolean {
  const annotation = pod.annotations[MESH_ANNOTATION]
  if (annotation === ENABLED) return true
  if (annotation === DISABLED) return false
  return namespace?.labels[MESH_LABEL] === ENABLED
}

export function meshDecision (pod: Pod, namespace: Namespace | undefined): MeshDecision {
  if (!isMeshed(pod, namespace)) return NOT_MESHED
  try {
    return Object.freeze({
      meshed: true,
      excludeOutboundPorts: parsePortList(pod, EXCLUDE_OUTBOUND_ANNOTATION),
      excludeInboundPorts: parsePortList(pod, EXCLUDE_INBOUND_ANNOTATION)
    })
  } catch (err) {
    return Object.freeze({ meshed: true, error: err as FerryError })
  }
}

/** Parses a comma-separated port annotation ("" or absent → []). Throws FERRY_ERR_CONFIG. */
export function parsePortList (pod: Pod, annotation: string): readonly number[] {
  const value = pod.annotations[annotation]
  if (value === undefined || value.trim() === '') return Object.freeze([])
  const ports = new Set<number>()
  for (const part of value.split(',')) {
    const s = part.trim()
    const n = /^\d{1,5}$/.test(s) ? Number(s) : NaN
    if (!(n >= 1 && n <= 65535)) {
      throw ferryError('FERRY_ERR_CONFIG', `pod ${pod.namespace}/${pod.name}: annotation ${annotation}: "${s}" is not a port number (1-65535) in "${value}"`)
    }
    ports.add(n)
  }
  return Object.freeze([...ports].sort((a, b) => a - b))
}

export type InboundMode = 'STRICT' | 'PERMISSIVE'

/** Ferry's default, as zero trust asks (Istio's is PERMISSIVE). */
export const DEFAULT_INBOUND_MODE: InboundMode = 'STRICT'

export interface InboundModeDecision {
  readonly mode: InboundMode
  /** Where it came from: the pod's annotation, its namespace's label, or the default. */
  readonly scope: 'workload' | 'namespace' | 'default' | 'port' | 'mesh'
  /** "namespace/name" of the PeerAuthentication that decided, when one did. */
  readonly policy?: string
  /** Set when a value was not STRICT or PERMISSIVE: it was ignored and the decision fails closed (STRICT). */
  readonly invalid?: string
}

const DEFAULT_DECISION: InboundModeDecision = Object.freeze({ mode: DEFAULT_INBOUND_MODE, scope: 'default' })
// Valid decisions are shared constants: deciding per connection allocates nothing.
const DECISIONS: Record<'workload' | 'namespace', Readonly<Record<string, InboundModeDecision>>> = {
  workload: Object.freeze({ STRICT: Object.freeze({ mode: 'STRICT', scope: 'workload' }), PERMISSIVE: Object.freeze({ mode: 'PERMISSIVE', scope: 'workload' }) }),
  namespace: Object.freeze({ STRICT: Object.freeze({ mode: 'STRICT', scope: 'namespace' }), PERMISSIVE: Object.freeze({ mode: 'PERMISSIVE', scope: 'namespace' }) })
}

/** A PeerAuthentication's verdict for a pod and port (src/policy MtlsModes.modeFor). */
export interface PeerAuthenticationMode {
  readonly mode: InboundMode
  readonly scope: 'port' | 'workload' | 'namespace' | 'mesh' | 'default'
  readonly policy?: string
}

/**
 * Whether plaintext from outside the mesh may reach `pod`: THE one place this is decided.
 * A PeerAuthentication that sets a mode for the pod (any scope but Ferry's default)
 * overrides the annotation and the label; otherwise the pod's annotation, its namespace's
 * label, then STRICT. An invalid value is never read as PERMISSIVE: that level is STRICT
 * and `invalid` says why.
 */
export function inboundMode (pod: Pod, namespace: Namespace | undefined, peer: PeerAuthenticationMode | null = null): InboundModeDecision {
  if (peer !== null && peer.scope !== 'default') return peer
  const annotation = pod.annotations[INBOUND_MODE_KEY]
  if (annotation !== undefined) return levelDecision(annotation, 'workload', `pod ${pod.namespace}/${pod.name}: annotation`)
  const label = namespace?.labels[INBOUND_MODE_KEY]
  if (label !== undefined) return levelDecision(label, 'namespace', `namespace ${pod.namespace}: label`)
  return DEFAULT_DECISION
}

function levelDecision (value: string, scope: 'workload' | 'namespace', where: string): InboundModeDecision {
  if (value === 'STRICT' || value === 'PERMISSIVE') return DECISIONS[scope][value]
  return { mode: 'STRICT', scope, invalid: `${where} ${INBOUND_MODE_KEY}: "${value.slice(0, 64)}" is not STRICT or PERMISSIVE; using STRICT` }
}
