import { classifyDocument, type Identity } from './classify'
import { hasSelector, type Resource } from './documents'
import type { ConfigIssue } from './issues'
import type { InForce, ObjectReport, ObjectState } from './reports'
import { CONFIG_DEFAULTS, type ConfigSnapshot, createSnapshot, type LineFinder, type SourceDocument } from './snapshot'
import { parseYamlDocuments } from './yaml'

// Documents → a ConfigSnapshot, object by object: one bad object affects only itself.
// Every configuration source admits through here (the agent's directory and stream, the
// controller's feeds, `ferry lab apply`, `ferry policy check`).
//
// Each document is classified on its own (classify.ts). Then, in a stable order (by
// file path, then line):
//   - a name defined twice (kind + namespace + name): the first applies, the later is refused;
//   - a refused object whose earlier version was valid: that earlier version keeps applying;
//   - a file with a document Ferry cannot even identify (bad YAML, no kind, no name):
//     every object that file held before, and holds no more, keeps its last good version;
//   - a second namespace-wide (or mesh-wide) PeerAuthentication in a namespace: the one
//     already in force applies (else the first), the other is refused;
//   - a PeerAuthentication with a selector in the root namespace applies to nothing, as
//     in Istio: degraded, ignored.
// "Earlier" and "before" are this ConfigAdmission's memory of what it put in force last
// time, which a saved configuration can seed (seed()) across restarts.

export interface AdmitOptions {
  /** Where the documents come from, for logs and explanations (a directory, "controller …"). */
  readonly origin: string
  readonly generation: number
  readonly rootNamespace?: string
  /**
   * Objects refused where the documents were judged before (the controller's refusals,
   * sent beside the documents of what it keeps in force). Reported as they are — except
   * that an object this admission knows an earlier valid version of, and that nothing
   * else puts in force, keeps that version here too.
   */
  readonly upstream?: readonly ObjectReport[]
}

/** An object in force: the resource Ferry enforces (null: nothing of it is enforced) and its document. */
interface InForceObject {
  readonly id: Identity
  readonly resource: Resource | null
  readonly lineOf: LineFinder
  readonly document: SourceDocument
  /** The file that holds it now (for a kept earlier version: the file whose current document is bad). */
  readonly claimedBy: string
}

interface Pending {
  state: ObjectState
  readonly object: string
  readonly key: string | null
  readonly apiVersion: string | null
  readonly file: string
  readonly line: number
  issues: ConfigIssue[]
  inForce: InForce
  refusal?: 'invalid' | 'conflict'
  note?: string
}

export class ConfigAdmission {
  private lastGood = new Map<string, InForceObject>()
  private namespaceWide = new Map<string, string>()

  /** Makes `documents` (a saved configuration) the last good versions, without reporting anything. */
  seed (documents: readonly SourceDocument[], rootNamespace?: string): void {
    this.admit(documents, { origin: '(saved)', generation: 0, rootNamespace })
  }

  admit (documents: readonly SourceDocument[], opts: AdmitOptions): ConfigSnapshot {
    const rootNamespace = opts.rootNamespace ?? CONFIG_DEFAULTS.rootNamespace
    const sorted = [...documents].sort(byPlace)
    const reports: Pending[] = []
    const candidates: InForceObject[] = []
    const refusedByKey = new Map<string, Pending>()
    const unreadable = new Map<string, Pending>()
    const reportOf = new Map<InForceObject, Pending>()
    for (const d of sorted) {
      const parsed = parseYamlDocuments(d.text, d.path, { firstLine: d.line })
      for (const issue of parsed.issues) {
        const r = anonymous(issue)
        reports.push(r)
        if (!unreadable.has(d.path)) unreadable.set(d.path, r)
      }
      for (const doc of parsed.documents) {
        const c = classifyDocument(doc)
        if (c.type === 'anonymous') {
          const r = anonymous(c.issues[0], c.issues)
          reports.push(r)
          if (!unreadable.has(d.path)) unreadable.set(d.path, r)
        } else if (c.type === 'refused') {
          const r: Pending = { state: 'refused', object: c.id.object, key: c.id.key, apiVersion: c.apiVersion, file: doc.file, line: doc.lineOf([]), issues: [...c.issues], inForce: 'none', refusal: 'invalid' }
          reports.push(r)
          if (!refusedByKey.has(c.id.key)) refusedByKey.set(c.id.key, r)
        } else {
          const own: SourceDocument = { path: doc.file, text: doc.source.text, line: doc.source.line }
          const candidate: InForceObject = { id: c.id, resource: c.resource, lineOf: c.lineOf, document: own, claimedBy: doc.file }
          const r: Pending = {
            state: c.notes.length === 0 ? 'accepted' : 'degraded',
            object: c.id.object,
            key: c.id.key,
            apiVersion: c.apiVersion,
            file: doc.file,
            line: doc.lineOf([]),
            issues: [...c.notes],
            inForce: c.notes.length === 0 ? 'as-written' : 'degraded'
          }
          candidates.push(candidate)
          reports.push(r)
          reportOf.set(candidate, r)
        }
      }
    }

    // A name defined twice: the first applies.
    const inForce = new Map<string, InForceObject>()
    for (const c of candidates) {
      const first = inForce.get(c.id.key)
      if (first === undefined) { inForce.set(c.id.key, c); continue }
      const r = reportOf.get(c) as Pending
      refuse(r, { file: r.file, line: c.lineOf(['metadata', 'name']), object: c.id.object, path: ['metadata', 'name'], message: `defined twice (also at ${where(first.document, first.lineOf)})` },
        'other-definition', `the first definition (${where(first.document, first.lineOf)}) applies`)
    }
    // A refused object: its earlier version, or (a second, bad definition) the good one.
    for (const [key, r] of refusedByKey) {
      const good = inForce.get(key)
      if (good !== undefined) {
        r.inForce = 'other-definition'
        r.note = `the definition at ${where(good.document, good.lineOf)} applies`
        continue
      }
      const earlier = this.lastGood.get(key)
      if (earlier === undefined) {
        r.note = 'nothing of it is in force (no earlier valid version)'
        continue
      }
      inForce.set(key, { ...earlier, claimedBy: r.file })
      r.inForce = 'earlier-version'
      r.note = `the earlier version (${where(earlier.document, earlier.lineOf)}) keeps applying`
    }
    // A file that cannot be read whole: what it held before stays.
    for (const [file, r] of unreadable) {
      const kept: string[] = []
      for (const earlier of this.lastGood.values()) {
        if (earlier.claimedBy !== file || inForce.has(earlier.id.key) || refusedByKey.has(earlier.id.key)) continue
        inForce.set(earlier.id.key, earlier)
        kept.push(earlier.id.object)
      }
      if (kept.length > 0) {
        r.inForce = 'earlier-version'
        r.note = `the objects this file held before keep their last good version: ${kept.join(', ')}`
      }
    }
    const upstream: ObjectReport[] = []
    for (const r of opts.upstream ?? []) {
      const earlier = r.key === null || inForce.has(r.key) ? undefined : this.lastGood.get(r.key)
      if (earlier === undefined) { upstream.push(r); continue }
      inForce.set(earlier.id.key, earlier)
      upstream.push({ ...r, inForce: 'earlier-version', note: `${r.note === undefined ? '' : `${r.note}; `}here its earlier version (${where(earlier.document, earlier.lineOf)}) keeps applying` })
    }
    this.peerAuthenticationRules(inForce, reports, reportOf, rootNamespace)

    const objects = [...inForce.values()].sort((a, b) => byPlace(a.document, b.document))
    const resources = objects.map((o) => o.resource).filter((r): r is Resource => r !== null)
    const byRef = (a: Resource, b: Resource): number => a.ref < b.ref ? -1 : a.ref > b.ref ? 1 : 0
    this.lastGood = new Map(objects.map((o) => [o.id.key, o]))
    this.namespaceWide = new Map(objects.filter((o) => isNamespaceWide(o.resource)).map((o) => [o.id.namespace, o.id.key]))
    const of = <K extends Resource['kind']>(kind: K): Array<Extract<Resource, { kind: K }>> =>
      resources.filter((r): r is Extract<Resource, { kind: K }> => r.kind === kind).sort(byRef)
    return createSnapshot({
      generation: opts.generation,
      origin: opts.origin,
      rootNamespace,
      files: [...new Set(sorted.map((d) => d.path))].sort(),
      authorizationPolicies: of('AuthorizationPolicy'),
      peerAuthentications: of('PeerAuthentication'),
      httpRoutes: of('HTTPRoute'),
      grpcRoutes: of('GRPCRoute'),
      virtualServices: of('VirtualService'),
      destinationRules: of('DestinationRule'),
      rateLimits: of('RateLimit'),
      objects: mergeReports(reports.map(freezeReport), upstream),
      documents: objects.map((o) => o.document)
    }, new Map(objects.filter((o) => o.resource !== null).map((o) => [o.resource as Resource, o.lineOf])))
  }

  /** At most one namespace-wide PeerAuthentication per namespace; none with a selector in the root namespace. */
  private peerAuthenticationRules (inForce: Map<string, InForceObject>, reports: Pending[], reportOf: Map<InForceObject, Pending>, rootNamespace: string): void {
    const byNamespace = new Map<string, InForceObject[]>()
    for (const o of [...inForce.values()].sort((a, b) => byPlace(a.document, b.document))) {
      const pa = o.resource
      if (pa?.kind !== 'PeerAuthentication') continue
      if (hasSelector(pa.spec.selector)) {
        if (pa.metadata.namespace !== rootNamespace) continue
        inForce.set(o.id.key, { ...o, resource: null })
        const r = reportOf.get(o)
        if (r !== undefined) {
          r.state = 'degraded'
          r.inForce = 'degraded'
          r.issues.push({ file: r.file, line: o.lineOf(['spec', 'selector']), object: o.id.object, path: ['spec', 'selector'], message: `a PeerAuthentication with a selector in the root namespace (${rootNamespace}) applies to nothing (as in Istio); ignored: move it to the workload's namespace, or drop the selector to make it mesh-wide` })
        }
        continue
      }
      const list = byNamespace.get(o.id.namespace) ?? []
      list.push(o)
      byNamespace.set(o.id.namespace, list)
    }
    for (const [ns, list] of byNamespace) {
      if (list.length < 2) continue
      const before = this.namespaceWide.get(ns)
      const winner = list.find((o) => o.id.key === before) ?? list[0]
      const scope = ns === rootNamespace ? 'mesh-wide PeerAuthentication' : `namespace-wide PeerAuthentication in ${ns}`
      for (const o of list) {
        if (o === winner) continue
        const earlier = this.lastGood.get(o.id.key)
        const fallback = earlier !== undefined && isNamespaceWide(earlier.resource) === false ? earlier : undefined
        if (fallback === undefined) inForce.delete(o.id.key)
        else inForce.set(o.id.key, fallback)
        const r = reportOf.get(o) ?? reports.find((p) => p.key === o.id.key)
        if (r === undefined) continue
        const why = `a second ${scope} (the one in force is ${winner.id.object} at ${where(winner.document, winner.lineOf)}); Istio would use the oldest, Ferry keeps the one already in force`
        refuse(r, { file: r.file, line: o.lineOf(['metadata', 'name']), object: o.id.object, path: ['metadata', 'name'], message: why },
          fallback === undefined ? 'other-definition' : 'earlier-version',
          fallback === undefined ? `${winner.id.object} applies to the namespace` : `the earlier version (${where(fallback.document, fallback.lineOf)}) keeps applying`)
      }
    }
  }
}

/** One admission with no memory: what `ferry policy check --dir` and `ferry lab apply` judge. */
export function admitDocuments (documents: readonly SourceDocument[], opts: AdmitOptions): ConfigSnapshot {
  return new ConfigAdmission().admit(documents, opts)
}

function anonymous (first: ConfigIssue, issues: readonly ConfigIssue[] = [first]): Pending {
  return { state: 'refused', object: `document at ${first.file}:${first.line ?? 1}`, key: null, apiVersion: null, file: first.file, line: first.line ?? 1, issues: [...issues], inForce: 'none', refusal: 'invalid', note: 'Ferry cannot tell which object this is' }
}

/** Refused for a conflict with another object. */
function refuse (r: Pending, issue: ConfigIssue, inForce: InForce, note: string): void {
  r.state = 'refused'
  r.refusal = 'conflict'
  r.issues = [issue]
  r.inForce = inForce
  r.note = note
}

function isNamespaceWide (r: Resource | null): boolean {
  return r?.kind === 'PeerAuthentication' && !hasSelector(r.spec.selector)
}

function where (d: SourceDocument, lineOf: LineFinder): string {
  return `${d.path}:${lineOf([])}`
}

function byPlace (a: SourceDocument, b: SourceDocument): number {
  if (a.path !== b.path) return a.path < b.path ? -1 : 1
  return (a.line ?? 1) - (b.line ?? 1)
}

/** Upstream reports replace this admission's report of the same object. */
function mergeReports (own: readonly ObjectReport[], upstream: readonly ObjectReport[]): ObjectReport[] {
  const keys = new Set(upstream.map((r) => r.key).filter((k) => k !== null))
  return [...own.filter((o) => o.key === null || !keys.has(o.key)), ...upstream.map((r) => Object.freeze({ ...r }))]
}

function freezeReport (r: Pending): ObjectReport {
  return Object.freeze({ ...r, issues: Object.freeze(r.issues.map((i) => Object.freeze({ ...i }))) })
}
