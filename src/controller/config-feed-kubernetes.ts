import type { FerryError } from '../errors'
import type { ConfigFile } from '../resources/loader'
import type { PolicyCollection, PolicyObjects } from '../kubernetes/policy-objects'
import type { Logger } from '../telemetry/logger'
import { type ConfigFeed, type ConfigVersion, ConfigVersioner } from './config-feed'

// The configuration from the API server (`ferry controller --kubernetes`): the
// AuthorizationPolicy and PeerAuthentication objects of Ferry's and Istio's groups
// (src/kubernetes/policy-objects.ts), each turned back into the document a user wrote —
// apiVersion, kind, metadata.{name, namespace, labels, annotations}, spec — and
// validated as a set by src/resources exactly like a directory. The fields the API
// server adds (uid, resourceVersion, managedFields, status, …) are dropped here, since
// Ferry's schema refuses them in documents. A bad object rejects the set, with its name
// and field in the log; the last good version keeps serving.

/** Written by kubectl apply; a copy of the object, not configuration. */
const DROPPED_ANNOTATIONS = new Set(['kubectl.kubernetes.io/last-applied-configuration'])

export interface PolicyObjectSource {
  readonly origin: string
  start (watcher: { onObjects: (all: readonly PolicyObjects[]) => void, onError: (err: FerryError) => void }): void
  close (): void
}

export class KubernetesConfigFeed implements ConfigFeed {
  readonly kind = 'kubernetes'
  private versioner: ConfigVersioner | null = null

  constructor (private readonly opts: { readonly source: PolicyObjectSource, readonly log: Logger, readonly rootNamespace: string }) {}

  async start (onVersion: (v: ConfigVersion) => void, waitMs: number): Promise<void> {
    this.versioner = new ConfigVersioner({ log: this.opts.log, rootNamespace: this.opts.rootNamespace, onVersion })
    let first: () => void = () => {}
    const firstSeen = new Promise<void>((resolve) => { first = resolve })
    this.opts.source.start({
      onObjects: (all) => {
        this.versioner?.offer(all.flatMap(({ collection, objects }) => objects.map((o) => policyDocument(collection, o))), this.opts.source.origin)
        first()
      },
      onError: (err) => { this.opts.log.error({ code: err.code, err: err.message }, 'policy objects unavailable; the last good configuration keeps serving') }
    })
    let timer: NodeJS.Timeout | undefined
    await Promise.race([firstSeen, new Promise<void>((resolve) => { timer = setTimeout(resolve, waitMs) })])
    clearTimeout(timer)
  }

  current (): ConfigVersion | null { return this.versioner?.current() ?? null }

  close (): void { this.opts.source.close() }
}

/** An API object as the document its author wrote, named after where it lives. */
export function policyDocument (c: Pick<PolicyCollection, 'group' | 'version' | 'kind'>, object: object): ConfigFile {
  const o = object as { metadata?: Record<string, unknown>, spec?: unknown }
  const md = o.metadata ?? {}
  const metadata: Record<string, unknown> = { name: md.name, namespace: md.namespace }
  if (md.labels !== undefined && md.labels !== null) metadata.labels = md.labels
  const annotations = Object.entries((md.annotations ?? {}) as Record<string, unknown>).filter(([k]) => !DROPPED_ANNOTATIONS.has(k))
  if (annotations.length > 0) metadata.annotations = Object.fromEntries(annotations)
  const apiVersion = `${c.group}/${c.version}`
  const document = { apiVersion, kind: c.kind, metadata, spec: o.spec ?? {} }
  return { path: `kubernetes:${apiVersion}/${c.kind}/${String(md.namespace)}/${String(md.name)}`, text: JSON.stringify(document, null, 2) + '\n' }
}
