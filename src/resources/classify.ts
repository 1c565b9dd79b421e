import { toResource } from './convert'
import { degradeDocument } from './degrade'
import { type Resource, RESOURCE_KINDS, type ResourceKind, resourceKey, ROUTING_KINDS } from './documents'
import type { ConfigIssue } from './issues'
import type { LineFinder } from './snapshot'
import { validateResource } from './validate'
import type { LocatedDocument } from './yaml'

// One parsed document, judged on its own:
//
//   anonymous   Ferry cannot tell which object it is (not a map, no known kind, no
//               metadata.name or namespace): refused
//   refused     a known object (kind + namespace + name), malformed: unknown field,
//               wrong type, bad format, missing required field
//   admitted    well-formed: enforced as written, or degraded (degrade.ts) when it uses
//               what Ferry cannot enforce; `resource` is null when nothing of it is
//               enforced (action AUDIT)

export interface Identity {
  readonly kind: ResourceKind
  readonly namespace: string
  readonly name: string
  /** resourceKey(): what makes two documents the same object. */
  readonly key: string
  /** `AuthorizationPolicy prod/deny-dev` */
  readonly object: string
}

export type Classified =
  | { readonly type: 'anonymous', readonly issues: readonly ConfigIssue[] }
  | { readonly type: 'refused', readonly id: Identity, readonly apiVersion: string | null, readonly issues: readonly ConfigIssue[] }
  | { readonly type: 'admitted', readonly id: Identity, readonly apiVersion: string, readonly resource: Resource | null, readonly lineOf: LineFinder, readonly notes: readonly ConfigIssue[] }

export function classifyDocument (doc: LocatedDocument): Classified {
  const file = doc.file
  const at = (path: ReadonlyArray<string | number>): number => doc.lineOf(path)
  const value = doc.value
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return { type: 'anonymous', issues: [{ file, line: at([]), message: 'a document must be a map with apiVersion, kind, metadata and spec' }] }
  }
  const v = value as Record<string, any>
  const kind = kindOf(v)
  if (typeof kind !== 'string') return { type: 'anonymous', issues: [{ file, line: at(['kind']), path: ['kind'], message: kind.problem }] }
  const md = v.metadata
  const name = typeof md?.name === 'string' && md.name !== '' ? md.name as string : null
  const namespace = typeof md?.namespace === 'string' && md.namespace !== '' ? md.namespace as string : null
  if (name === null || namespace === null) {
    const missing = name === null ? 'name' : 'namespace'
    return { type: 'anonymous', issues: [{ file, line: at(['metadata']), object: `${kind} ${name ?? '(unnamed)'}`, path: ['metadata', missing], message: 'is required (a non-empty string): without it Ferry cannot tell which object this is' }] }
  }
  const id: Identity = { kind, namespace, name, key: resourceKey(kind, namespace, name), object: `${kind} ${namespace}/${name}` }
  const apiVersion = typeof v.apiVersion === 'string' ? v.apiVersion : null
  const located = (path: ReadonlyArray<string | number>, message: string): ConfigIssue => ({ file, line: at(path), object: id.object, path, message })
  const problems = validateResource(kind, v)
  const malformed = problems.filter((p) => p.unsupported !== true)
  // A route is refused for what Ferry cannot carry out too: name all of it at once.
  const shown = ROUTING_KINDS.has(kind) ? problems : malformed
  if (malformed.length > 0) return { type: 'refused', id, apiVersion, issues: shown.map((p) => located(p.path, p.message)) }
  const origin = { file, line: at([]) }
  if (problems.length === 0) return { type: 'admitted', id, apiVersion: v.apiVersion, resource: toResource(kind, v, origin), lineOf: doc.lineOf, notes: [] }
  const d = degradeDocument(kind, v, problems)
  if (!d.ok) return { type: 'refused', id, apiVersion, issues: d.issues.map((p) => located(p.path, p.message)) }
  const notes = d.degraded.degradations.map((g) => located(g.path, `${g.reason}; ${g.effect}`))
  const resource = d.degraded.ignored ? null : toResource(kind, d.degraded.value, origin, d.degraded)
  return { type: 'admitted', id, apiVersion: v.apiVersion, resource, lineOf: doc.lineOf, notes }
}

function kindOf (v: Record<string, unknown>): ResourceKind | { problem: string } {
  const kind = v.kind
  if (typeof kind !== 'string' || kind === '') return { problem: `is required (one of ${RESOURCE_KINDS.join(', ')})` }
  if ((RESOURCE_KINDS as readonly string[]).includes(kind)) return kind as ResourceKind
  const group = typeof v.apiVersion === 'string' ? v.apiVersion : ''
  if (group.includes('istio.io/') || group.startsWith('gateway.networking.k8s.io/')) return { problem: `${JSON.stringify(kind)} (${group}) is not supported by Ferry; Ferry reads ${RESOURCE_KINDS.join(', ')}` }
  return { problem: `${JSON.stringify(kind)} is not a Ferry configuration kind (known: ${RESOURCE_KINDS.join(', ')})` }
}
