import { formatIssue } from '../resources/issues'
import { countByState, type InForce, type ObjectState } from '../resources/reports'
import type { ConfigSnapshot } from '../resources/snapshot'
import { explain, type Explanation } from './explain'
import { type HttpRequestSpec, requestOf } from './http-request'
import type { PolicySet } from './policy-set'
import { resolveDestinations, resolveSource, type SubjectOptions } from './subjects'

// One `ferry policy check`: what a person typed after --from and --to, decided against
// one PolicySet. The CLI runs it on a directory it loads; the agent's admin endpoint
// (/debug/authz) runs it on its live PolicySet and cluster snapshot, and the CLI prints
// both answers the same way. Throws the subjects' FerryErrors for names it cannot use.

export interface CheckResult {
  /** Every destination allowed. */
  readonly allowed: boolean
  /** How the source was understood, for people. */
  readonly source: string
  /** The HTTP request decided (absent: a connection, where L7 conditions are not evaluated). */
  readonly request?: { readonly method: string, readonly path: string, readonly rawPath: string, readonly host: string, readonly headers: Readonly<Record<string, string>> }
  readonly results: ReadonlyArray<{ readonly destination: string, readonly explanation: Explanation }>
}

/** `http`: an HTTP request to decide at L7 (--path, --method, --header, --host); none: a connection. */
export function checkConnection (set: PolicySet, from: string, to: string, opts: SubjectOptions, http: HttpRequestSpec = {}): CheckResult {
  const source = resolveSource(from, opts)
  const destinations = resolveDestinations(to, opts)
  const req = requestOf(http)
  const results = destinations.map((d) => ({ destination: d.description, explanation: explain(set, { source, destination: d, request: req?.view ?? null }) }))
  return {
    allowed: results.every((r) => r.explanation.allowed),
    source: source.description,
    ...(req === null ? {} : { request: { method: req.view.method, path: req.view.path, rawPath: req.rawPath, host: req.view.host, headers: req.headers } }),
    results
  }
}

/** A configuration snapshot as plain data: what `/debug/config` serves. */
export interface ConfigView {
  readonly generation: number
  readonly origin: string
  readonly rootNamespace: string
  readonly files: readonly string[]
  readonly resources: ReadonlyArray<{
    readonly kind: string
    readonly apiVersion: string
    readonly ref: string
    readonly file: string
    readonly line: number
    /** AuthorizationPolicy: ALLOW or DENY (with " [dry-run]"); PeerAuthentication: its mode. */
    readonly summary: string
    /** What Ferry does not enforce as written (`field: what it does instead`); absent when enforced as written. */
    readonly degraded?: readonly string[]
  }>
  /** Every object read, with what became of it. */
  readonly objects: ReadonlyArray<{
    readonly object: string
    readonly state: ObjectState
    readonly apiVersion: string | null
    readonly file: string
    readonly line: number
    readonly inForce: InForce
    readonly note?: string
    /** `file:line: object: field: message` */
    readonly issues: readonly string[]
    readonly reportedBy?: string
  }>
  readonly counts: Readonly<Record<ObjectState, number>>
}

export function configView (snapshot: ConfigSnapshot): ConfigView {
  const notes = (r: { degraded: ReadonlyArray<{ field: string, effect: string }> }): { degraded?: string[] } =>
    r.degraded.length === 0 ? {} : { degraded: r.degraded.map((d) => `${d.field}: ${d.effect}`) }
  return {
    generation: snapshot.generation,
    origin: snapshot.origin,
    rootNamespace: snapshot.rootNamespace,
    files: snapshot.files,
    resources: [
      ...snapshot.authorizationPolicies.map((p) => ({ kind: p.kind, apiVersion: p.apiVersion, ref: p.ref, ...p.origin, summary: `${p.spec.action}${p.dryRun ? ' [dry-run]' : ''}`, ...notes(p) })),
      ...snapshot.peerAuthentications.map((p) => ({ kind: p.kind, apiVersion: p.apiVersion, ref: p.ref, ...p.origin, summary: p.spec.mtls?.mode ?? 'UNSET', ...notes(p) }))
    ],
    objects: snapshot.objects.map((o) => ({
      object: o.object,
      state: o.state,
      apiVersion: o.apiVersion,
      file: o.file,
      line: o.line,
      inForce: o.inForce,
      ...(o.note === undefined ? {} : { note: o.note }),
      issues: o.issues.map(formatIssue),
      ...(o.reportedBy === undefined ? {} : { reportedBy: o.reportedBy })
    })),
    counts: countByState(snapshot.objects)
  }
}
