import type { ConfigSnapshot } from '../resources/snapshot'
import { explain, type Explanation } from './explain'
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
  readonly results: ReadonlyArray<{ readonly destination: string, readonly explanation: Explanation }>
}

export function checkConnection (set: PolicySet, from: string, to: string, opts: SubjectOptions): CheckResult {
  const source = resolveSource(from, opts)
  const destinations = resolveDestinations(to, opts)
  const results = destinations.map((d) => ({ destination: d.description, explanation: explain(set, { source, destination: d }) }))
  return { allowed: results.every((r) => r.explanation.allowed), source: source.description, results }
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
  }>
}

export function configView (snapshot: ConfigSnapshot): ConfigView {
  return {
    generation: snapshot.generation,
    origin: snapshot.origin,
    rootNamespace: snapshot.rootNamespace,
    files: snapshot.files,
    resources: [
      ...snapshot.authorizationPolicies.map((p) => ({ kind: p.kind, apiVersion: p.apiVersion, ref: p.ref, ...p.origin, summary: `${p.spec.action}${p.dryRun ? ' [dry-run]' : ''}` })),
      ...snapshot.peerAuthentications.map((p) => ({ kind: p.kind, apiVersion: p.apiVersion, ref: p.ref, ...p.origin, summary: p.spec.mtls?.mode ?? 'UNSET' }))
    ]
  }
}
