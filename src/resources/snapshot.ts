import type { AuthorizationPolicy, PeerAuthentication, Resource, SourceLocation } from './documents'
import type { FieldPath } from './issues'

// One consistent view of a configuration directory: every resource of every file, all
// valid together. A snapshot is immutable; a change produces a new one with the next
// generation, and nothing partial is ever visible.

export const CONFIG_DEFAULTS = Object.freeze({
  /** Policies in this namespace apply to the whole mesh (Istio's istio-system). */
  rootNamespace: 'ferry-system'
})

export interface ConfigSnapshot {
  /** 1 for the first good snapshot of a source, +1 for every changed one after. */
  readonly generation: number
  /** The directory (or file) it was read from. */
  readonly origin: string
  readonly rootNamespace: string
  /** The files it was read from, sorted. */
  readonly files: readonly string[]
  /** Sorted by namespace, then name. */
  readonly authorizationPolicies: readonly AuthorizationPolicy[]
  readonly peerAuthentications: readonly PeerAuthentication[]
  /** Where a field (full path, e.g. ['spec', 'rules', 0]) of one of this snapshot's resources is written. */
  locate: (resource: Resource, path: FieldPath) => SourceLocation
}

export type LineFinder = (path: FieldPath) => number

export function createSnapshot (fields: Omit<ConfigSnapshot, 'locate'>, lines: ReadonlyMap<Resource, LineFinder>): ConfigSnapshot {
  const locate = (resource: Resource, path: FieldPath): SourceLocation => {
    const lineOf = lines.get(resource)
    return lineOf === undefined ? resource.origin : { file: resource.origin.file, line: lineOf(path) }
  }
  return Object.freeze({
    ...fields,
    files: Object.freeze([...fields.files]),
    authorizationPolicies: Object.freeze([...fields.authorizationPolicies]),
    peerAuthentications: Object.freeze([...fields.peerAuthentications]),
    locate
  })
}

/** A snapshot with nothing in it: every connection allowed, mTLS at its default. */
export function emptySnapshot (origin = '(none)', rootNamespace: string = CONFIG_DEFAULTS.rootNamespace): ConfigSnapshot {
  return createSnapshot({ generation: 0, origin, rootNamespace, files: [], authorizationPolicies: [], peerAuthentications: [] }, new Map())
}
