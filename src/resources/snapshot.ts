import type { AuthorizationPolicy, DestinationRule, GRPCRoute, HTTPRoute, PeerAuthentication, RateLimit, Resource, SourceLocation, VirtualService } from './documents'
import type { FieldPath } from './issues'
import type { ObjectReport } from './reports'

// One consistent view of a configuration source: the resources in force, each object's
// fate (src/resources/admission.ts: accepted, degraded or refused, with what applies
// instead), and the documents of what is in force. A snapshot is immutable; a change
// produces a new one with the next generation, and nothing partial is ever visible.

export const CONFIG_DEFAULTS = Object.freeze({
  /** Policies in this namespace apply to the whole mesh (Istio's istio-system). */
  rootNamespace: 'ferry-system'
})

/** One object's document: its own text and where it was read (a file and the line it starts at, or an API object's name). */
export interface SourceDocument {
  readonly path: string
  readonly text: string
  /** The line of `path` where `text` starts (1 when absent). */
  readonly line?: number
}

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
  /** Traffic management (src/routing/ compiles them), each sorted by namespace, then name. */
  readonly httpRoutes: readonly HTTPRoute[]
  readonly grpcRoutes: readonly GRPCRoute[]
  readonly virtualServices: readonly VirtualService[]
  readonly destinationRules: readonly DestinationRule[]
  readonly rateLimits: readonly RateLimit[]
  /** Every object read and what became of it, by file and line. */
  readonly objects: readonly ObjectReport[]
  /**
   * The document of every object in force (the earlier version of a refused one, and the
   * ones whose policy enforces nothing, e.g. AUDIT), by path and line: what the
   * controller serves, and what a saved configuration holds.
   */
  readonly documents: readonly SourceDocument[]
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
    httpRoutes: Object.freeze([...fields.httpRoutes]),
    grpcRoutes: Object.freeze([...fields.grpcRoutes]),
    virtualServices: Object.freeze([...fields.virtualServices]),
    destinationRules: Object.freeze([...fields.destinationRules]),
    rateLimits: Object.freeze([...fields.rateLimits]),
    objects: Object.freeze([...fields.objects]),
    documents: Object.freeze([...fields.documents]),
    locate
  })
}

/** The resource lists of a snapshot with none. */
export const NO_RESOURCES = Object.freeze({
  authorizationPolicies: [], peerAuthentications: [], httpRoutes: [], grpcRoutes: [], virtualServices: [], destinationRules: [], rateLimits: []
})

/** A snapshot with nothing in it: every connection allowed, mTLS at its default. */
export function emptySnapshot (origin = '(none)', rootNamespace: string = CONFIG_DEFAULTS.rootNamespace): ConfigSnapshot {
  return createSnapshot({ generation: 0, origin, rootNamespace, files: [], ...NO_RESOURCES, objects: [], documents: [] }, new Map())
}


/** How many resources of each kind a snapshot holds (for its "configuration applied" log line). */
export function resourceCounts (s: ConfigSnapshot): Record<keyof typeof NO_RESOURCES, number> {
  return {
    authorizationPolicies: s.authorizationPolicies.length,
    peerAuthentications: s.peerAuthentications.length,
    httpRoutes: s.httpRoutes.length,
    grpcRoutes: s.grpcRoutes.length,
    virtualServices: s.virtualServices.length,
    destinationRules: s.destinationRules.length,
    rateLimits: s.rateLimits.length
  }
}
