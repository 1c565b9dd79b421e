import { ferryError, type FerryError } from '../errors'
import type { Namespace, Pod } from './model'

// Which pods are in the mesh, and which of their ports are left alone.
//
//   meshed  = namespace label ferry.dev/mesh=enabled, unless the pod is annotated
//             ferry.dev/mesh=disabled; or the pod is annotated ferry.dev/mesh=enabled.
//   ports   = ferry.dev/exclude-outbound-ports / ferry.dev/exclude-inbound-ports,
//             comma-separated port numbers.
// A meshed pod whose annotations are invalid gets a decision carrying the error, so the
// agent can report it and enroll nothing of it (never half).

export const MESH_LABEL = 'ferry.dev/mesh'
export const MESH_ANNOTATION = 'ferry.dev/mesh'
export const EXCLUDE_OUTBOUND_ANNOTATION = 'ferry.dev/exclude-outbound-ports'
export const EXCLUDE_INBOUND_ANNOTATION = 'ferry.dev/exclude-inbound-ports'
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
