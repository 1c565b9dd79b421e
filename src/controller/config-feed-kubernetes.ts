import type { FerryError } from '../errors'
import { type ResourceKind, ROUTING_KINDS } from '../resources/documents'
import type { ConfigFile } from '../resources/loader'
import type { PolicyCollection, PolicyObjects } from '../kubernetes/policy-objects'
import { type ConfigFeed, type ConfigVersion, ConfigVersioner, type VersionerOptions } from './config-feed'
import { PolicyStatusWriter, type StatusPatcher, type StatusTarget } from './policy-status'
import { overriddenVirtualServices } from './route-status'

// The configuration from the API server (`ferry controller --kubernetes`): the
// AuthorizationPolicy, PeerAuthentication and RateLimit objects of Ferry's and Istio's
// groups and the routes (HTTPRoute, GRPCRoute, VirtualService, DestinationRule;
// src/kubernetes/policy-objects.ts), each turned back into the document a user wrote —
// apiVersion, kind, metadata.{name, namespace, labels, annotations}, spec — and
// admitted object by object by src/resources exactly like a directory. The fields the
// API server adds (uid, resourceVersion, managedFields, status, …) are dropped here:
// they are not configuration. A bad object is refused alone (its last valid version
// keeps applying) and each object's verdict is written to its status
// (policy-status.ts): FerryAccepted, FerryDegraded; on routes, their APIs' conditions
// (route-status.ts).

/** Written by kubectl apply; a copy of the object, not configuration. */
const DROPPED_ANNOTATIONS = new Set(['kubectl.kubernetes.io/last-applied-configuration'])

export interface PolicyObjectSource {
  readonly origin: string
  start (watcher: { onObjects: (all: readonly PolicyObjects[]) => void, onError: (err: FerryError) => void }): void
  /** Writes an object's status (absent: statuses are not written). */
  readonly patchStatus?: StatusPatcher
  close (): void
}

export class KubernetesConfigFeed implements ConfigFeed {
  readonly kind = 'kubernetes'
  private readonly versioner: ConfigVersioner
  private readonly status: PolicyStatusWriter | null

  constructor (private readonly opts: VersionerOptions & { readonly source: PolicyObjectSource }) {
    this.versioner = new ConfigVersioner(opts)
    const patch = opts.source.patchStatus
    this.status = patch === undefined ? null : new PolicyStatusWriter({ patch: patch.bind(opts.source), log: opts.log.child({ component: 'policy-status' }) })
  }

  async start (onVersion: (v: ConfigVersion) => void, waitMs: number): Promise<void> {
    this.versioner.start(onVersion)
    let first: () => void = () => {}
    const firstSeen = new Promise<void>((resolve) => { first = resolve })
    this.opts.source.start({
      onObjects: (all) => {
        const targets: Array<Omit<StatusTarget, 'report'> & { path: string }> = []
        const documents = all.flatMap(({ collection, objects }) => objects.map((object) => {
          const d = policyDocument(collection, object)
          targets.push({ collection, object, path: d.path })
          return d
        }))
        const { snapshot } = this.versioner.offer(documents, this.opts.source.origin)
        const reportOf = new Map(snapshot.objects.map((r) => [r.file, r]))
        const overridden = overriddenVirtualServices(snapshot)
        this.status?.update(targets.map((t) => {
          const md = (t.object as { metadata?: { namespace?: unknown, name?: unknown } }).metadata
          const o = t.collection.kind === 'VirtualService' ? overridden.get(`${String(md?.namespace)}/${String(md?.name)}`) : undefined
          return { collection: t.collection, object: t.object, report: reportOf.get(t.path), ...(o === undefined ? {} : { overridden: o }) }
        }))
        first()
      },
      onError: (err) => { this.opts.log.error({ code: err.code, err: err.message }, 'policy objects unavailable; the last good configuration keeps serving') }
    })
    let timer: NodeJS.Timeout | undefined
    await Promise.race([firstSeen, new Promise<void>((resolve) => { timer = setTimeout(resolve, waitMs) })])
    clearTimeout(timer)
  }

  current (): ConfigVersion | null { return this.versioner.current() }

  close (): void { this.opts.source.close() }
}

/** An API object as the document its author wrote, named after where it lives. */
export function policyDocument (c: Pick<PolicyCollection, 'group' | 'version' | 'kind'>, object: object): ConfigFile {
  const o = object as { metadata?: Record<string, unknown>, spec?: unknown }
  const md = o.metadata ?? {}
  const metadata: Record<string, unknown> = { name: md.name, namespace: md.namespace }
  if (md.labels !== undefined && md.labels !== null) metadata.labels = md.labels
  // Gateway API orders routes of equal precedence by age: the routing kinds keep it.
  if (ROUTING_KINDS.has(c.kind as ResourceKind) && typeof md.creationTimestamp === 'string') metadata.creationTimestamp = md.creationTimestamp
  const annotations = Object.entries((md.annotations ?? {}) as Record<string, unknown>).filter(([k]) => !DROPPED_ANNOTATIONS.has(k))
  if (annotations.length > 0) metadata.annotations = Object.fromEntries(annotations)
  const apiVersion = `${c.group}/${c.version}`
  const document = { apiVersion, kind: c.kind, metadata, spec: o.spec ?? {} }
  return { path: `kubernetes:${apiVersion}/${c.kind}/${String(md.namespace)}/${String(md.name)}`, text: JSON.stringify(document, null, 2) + '\n' }
}
