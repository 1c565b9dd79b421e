import { type DeclaredMtlsMode, hasSelector, type MtlsMode, type PeerAuthentication, selects } from '../resources/documents'
import { type MtlsDecision, POLICY_DEFAULTS, type WorkloadRef } from './model'

// The mTLS mode of a workload (and port), from PeerAuthentication as Istio composes it:
// the most specific level that sets a mode wins — port (portLevelMtls of the workload's
// policy) → workload (selector, in its own namespace) → namespace (no selector) → mesh
// (no selector, in the root namespace) → Ferry's default, STRICT. UNSET inherits.
//
// The loader guarantees at most one namespace-wide policy per namespace and no selector
// policies in the root namespace (Istio ignores those). When several workload policies
// select one workload, Istio takes the oldest; files have no age, so Ferry takes the
// first by name and says so in `explain`.

export interface MtlsOptions {
  readonly rootNamespace: string
  readonly defaultMode?: MtlsMode
}

export class MtlsModes {
  readonly rootNamespace: string
  readonly defaultMode: MtlsMode
  private readonly mesh: PeerAuthentication | null
  private readonly namespaceWide: ReadonlyMap<string, PeerAuthentication>
  private readonly workloadLevel: ReadonlyMap<string, readonly PeerAuthentication[]>

  private constructor (policies: readonly PeerAuthentication[], opts: MtlsOptions) {
    this.rootNamespace = opts.rootNamespace
    this.defaultMode = opts.defaultMode ?? POLICY_DEFAULTS.mtlsMode
    let mesh: PeerAuthentication | null = null
    const namespaceWide = new Map<string, PeerAuthentication>()
    const workloadLevel = new Map<string, PeerAuthentication[]>()
    for (const p of [...policies].sort((a, b) => a.ref < b.ref ? -1 : a.ref > b.ref ? 1 : 0)) {
      const ns = p.metadata.namespace
      if (hasSelector(p.spec.selector)) {
        if (ns === this.rootNamespace) continue // applies to nothing (the loader rejects it)
        const list = workloadLevel.get(ns) ?? []
        list.push(p)
        workloadLevel.set(ns, list)
      } else if (ns === this.rootNamespace) {
        mesh ??= p
      } else if (!namespaceWide.has(ns)) {
        namespaceWide.set(ns, p)
      }
    }
    this.mesh = mesh
    this.namespaceWide = namespaceWide
    this.workloadLevel = workloadLevel
  }

  static compile (policies: readonly PeerAuthentication[], opts: MtlsOptions): MtlsModes {
    return new MtlsModes(policies, opts)
  }

  /** The mode for connections to `w` (on `port`, when given), and which policy set it. */
  modeFor (w: WorkloadRef, port?: number): MtlsDecision {
    let decision: MtlsDecision = { mode: this.defaultMode, scope: 'default' }
    const mesh = declared(this.mesh?.spec.mtls?.mode)
    if (mesh !== null) decision = { mode: mesh, scope: 'mesh', policy: this.mesh?.ref }
    if (w.namespace !== this.rootNamespace) {
      const nsPolicy = this.namespaceWide.get(w.namespace)
      const ns = declared(nsPolicy?.spec.mtls?.mode)
      if (ns !== null) decision = { mode: ns, scope: 'namespace', policy: nsPolicy?.ref }
    }
    const wl = this.workloadPolicy(w)
    if (wl === null) return decision
    const own = declared(wl.spec.mtls?.mode)
    if (own !== null) decision = { mode: own, scope: 'workload', policy: wl.ref }
    if (port !== undefined) {
      const atPort = declared(wl.spec.portLevelMtls?.[String(port)]?.mode)
      if (atPort !== null) decision = { mode: atPort, scope: 'port', policy: wl.ref }
    }
    return decision
  }

  /** The PeerAuthentications consulted for `w` (mesh, namespace, workload) whose mode Ferry reads differently from the document. */
  degradedFor (w: WorkloadRef): PeerAuthentication[] {
    const chain = [this.mesh, w.namespace === this.rootNamespace ? null : this.namespaceWide.get(w.namespace) ?? null, this.workloadPolicy(w)]
    return chain.filter((p): p is PeerAuthentication => p !== null && p.degraded.some((d) => d.kind === 'mode'))
  }

  /** Workload-level policies that select `w`, first (the one in force) by name. */
  workloadPolicies (w: WorkloadRef): PeerAuthentication[] {
    return (this.workloadLevel.get(w.namespace) ?? []).filter((p) => selects(p.spec.selector?.matchLabels ?? {}, w.labels))
  }

  private workloadPolicy (w: WorkloadRef): PeerAuthentication | null {
    for (const p of this.workloadLevel.get(w.namespace) ?? []) if (selects(p.spec.selector?.matchLabels ?? {}, w.labels)) return p
    return null
  }
}

function declared (mode: DeclaredMtlsMode | undefined): MtlsMode | null {
  return mode === undefined || mode === 'UNSET' ? null : mode
}
