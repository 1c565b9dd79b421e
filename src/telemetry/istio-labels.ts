import type { ConnectionRecord } from './connection-record'
import type { Reporter } from './request-record'
import { DEFAULT_CLUSTER_DOMAIN } from './cluster-names'

// Istio's standard metric labels (https://istio.io/latest/docs/reference/config/metrics/),
// computed from what the proxy knows about a connection. The names and values are
// Istio's, so that Istio's Grafana dashboards and Kiali's graph read Ferry's metrics
// unchanged:
//   reporter                        source (the client side's proxy) | destination (the server side's)
//   *_workload, *_workload_namespace Ferry's workload name of the pod, its namespace
//   *_principal                     SPIFFE ID ("unknown" when not known)
//   *_app, *_version                the pod's `app` (else `app.kubernetes.io/name`) and
//                                   `version` (else `app.kubernetes.io/version`) labels
//   *_canonical_service / _revision as Istio derives them (pkg/model: CanonicalService):
//                                   service.istio.io/canonical-name, app.kubernetes.io/name,
//                                   app, else the workload name; service.istio.io/canonical-revision,
//                                   app.kubernetes.io/version, version, else "latest"
//   *_cluster                       the agent's cluster name (Istio's default "Kubernetes")
//   destination_service             the Service's FQDN (name.namespace.svc.<cluster domain>,
//                                   cluster-names.ts)
//   destination_service_name / _namespace
//   request_protocol                http | grpc | tcp
//   response_flags                  Envoy's %RESPONSE_FLAGS% ("-" when none)
//   connection_security_policy      reporter=source: "unknown" (Istio: the client side cannot
//                                   know the server's policy); destination: mutual_tls when
//                                   the connection came through the mTLS tunnel, else none
// "unknown" wherever Istio writes it: a peer that is not a known pod, a destination that
// is not a Service, a principal nothing proved.

export const UNKNOWN = 'unknown'

/** Istio's default cluster name (global.multiCluster.clusterName). */
export const DEFAULT_CLUSTER_NAME = 'Kubernetes'


/** The labels of Istio's TCP metrics (istio_tcp_*), in exposition order. */
export const CONNECTION_LABELS = Object.freeze([
  'reporter',
  'source_workload', 'source_workload_namespace', 'source_principal', 'source_app', 'source_version',
  'source_canonical_service', 'source_canonical_revision', 'source_cluster',
  'destination_workload', 'destination_workload_namespace', 'destination_principal', 'destination_app', 'destination_version',
  'destination_canonical_service', 'destination_canonical_revision', 'destination_cluster',
  'destination_service', 'destination_service_name', 'destination_service_namespace',
  'request_protocol', 'response_flags', 'connection_security_policy'
] as const)

/** The labels of Istio's request metrics (istio_requests_total, istio_request_*, istio_response_bytes). */
export const REQUEST_LABELS = Object.freeze([...CONNECTION_LABELS, 'response_code', 'grpc_response_status'] as const)

/** The labels of Istio's gRPC message counters (istio_request_messages_total, istio_response_messages_total). */
export const MESSAGE_LABELS = Object.freeze([...CONNECTION_LABELS, 'grpc_response_status'] as const)

export type ConnectionLabel = typeof CONNECTION_LABELS[number]
export type MessageLabel = typeof MESSAGE_LABELS[number]
export type RequestLabel = typeof REQUEST_LABELS[number]

/** What telemetry reads of a pod (src/discovery/model.ts Pod has these). */
export interface PodLike {
  readonly name: string
  readonly namespace: string
  readonly workload: string
  readonly labels: Readonly<Record<string, string>>
}

/** The pods of the current cluster snapshot (src/discovery/service-index.ts has both lookups). */
export interface PodDirectory {
  podByName (namespace: string, name: string): PodLike | undefined
  podByIP (address: string): PodLike | undefined
}

export interface IstioLabelOptions {
  /** source_cluster / destination_cluster of known pods. Default DEFAULT_CLUSTER_NAME. */
  readonly clusterName?: string
  /** The Services' DNS domain in destination_service. Default DEFAULT_CLUSTER_DOMAIN (cluster.local). */
  readonly clusterDomain?: string
  /** Where pod labels come from; without it app/version are "unknown" and the canonical service is the workload. */
  readonly pods?: PodDirectory
  /** The SPIFFE ID of a pod (a request's endpoint other than the connection's destination); null: unknown. */
  readonly principalOf?: (pod: PodLike) => string | null
}

const NO_PODS: PodDirectory = { podByName: () => undefined, podByIP: () => undefined }

/** What Istio derives from a workload's pod labels. */
export interface WorkloadMeta {
  readonly app: string
  readonly version: string
  readonly canonicalService: string
  readonly canonicalRevision: string
}

const CANONICAL_NAME_LABELS = ['service.istio.io/canonical-name', 'app.kubernetes.io/name', 'app']
const CANONICAL_REVISION_LABELS = ['service.istio.io/canonical-revision', 'app.kubernetes.io/version', 'version']
const APP_LABELS = ['app', 'app.kubernetes.io/name']
const VERSION_LABELS = ['version', 'app.kubernetes.io/version']

function firstLabel (labels: Readonly<Record<string, string>>, keys: readonly string[]): string | undefined {
  for (const k of keys) {
    const v = labels[k]
    if (v !== undefined && v !== '') return v
  }
  return undefined
}

// Pods (and their labels) are frozen and replaced whole per snapshot: one derivation per labels object.
const metaCache = new WeakMap<object, Map<string, WorkloadMeta>>()

/** Istio's app, version and canonical service/revision of a workload with these pod labels. */
export function workloadMeta (labels: Readonly<Record<string, string>> | undefined, workload: string): WorkloadMeta {
  if (labels === undefined) return Object.freeze({ app: UNKNOWN, version: UNKNOWN, canonicalService: workload, canonicalRevision: 'latest' })
  let byWorkload = metaCache.get(labels)
  const cached = byWorkload?.get(workload)
  if (cached !== undefined) return cached
  const meta = Object.freeze({
    app: firstLabel(labels, APP_LABELS) ?? UNKNOWN,
    version: firstLabel(labels, VERSION_LABELS) ?? UNKNOWN,
    canonicalService: firstLabel(labels, CANONICAL_NAME_LABELS) ?? workload,
    canonicalRevision: firstLabel(labels, CANONICAL_REVISION_LABELS) ?? 'latest'
  })
  if (byWorkload === undefined) { byWorkload = new Map(); metaCache.set(labels, byWorkload) }
  byWorkload.set(workload, meta)
  return meta
}

/**
 * The Envoy response flag of a connection's Ferry result (the access log keeps the finer
 * result): UF upstream connection failure (refused or timed out), UH no healthy upstream
 * (a Service without endpoints), NR no route / no matching filter chain (no original
 * destination, a plaintext connection refused by a STRICT pod), UC upstream connection
 * termination (reset while relaying), RBAC denied by authorization.
 */
export function connectionResponseFlags (result: ConnectionRecord['result']): string {
  switch (result) {
    case null:
    case 'ok': return '-'
    case 'connect_error':
    case 'connect_timeout': return 'UF'
    case 'no_endpoints': return 'UH'
    case 'no_original_dst':
    case 'denied_plaintext': return 'NR'
    case 'reset': return 'UC'
    case 'denied': return 'RBAC'
  }
}

/** Computes Istio's label values for records; one per agent (or worker). */
export class IstioLabeler {
  private readonly cluster: string
  private readonly domain: string
  private readonly pods: PodDirectory
  private readonly principalOf: (pod: PodLike) => string | null

  constructor (o: IstioLabelOptions = {}) {
    this.cluster = o.clusterName ?? DEFAULT_CLUSTER_NAME
    this.domain = o.clusterDomain ?? DEFAULT_CLUSTER_DOMAIN
    this.pods = o.pods ?? NO_PODS
    this.principalOf = o.principalOf ?? (() => null)
  }

  private labelsOf (namespace: string, pod: string): Readonly<Record<string, string>> | undefined {
    return this.pods.podByName(namespace, pod)?.labels
  }

  /**
   * The destination of one request: the pod at `upstream` when that is a known pod other
   * than the connection's destination (a connection's requests are balanced over
   * endpoints); null: the connection's destination is the request's.
   */
  requestDestination (r: ConnectionRecord, upstream: string | null): { readonly pod: PodLike, readonly principal: string } | null {
    if (upstream === null) return null
    const pod = this.pods.podByIP(upstream)
    if (pod === undefined) return null
    const d = r.destination
    if (d !== null && d.pod === pod.name && d.namespace === pod.namespace) return null
    return { pod, principal: this.principalOf(pod) ?? UNKNOWN }
  }

  /**
   * The values of CONNECTION_LABELS for a record, in that order. Every value is a
   * Kubernetes name, a SPIFFE ID or a fixed word: none holds a NUL, so values joined by
   * NUL name a series.
   */
  connectionValues (r: ConnectionRecord, reporter: Reporter, protocol: string, responseFlags: string,
    destination: { readonly pod: PodLike, readonly principal: string } | null = null): string[] {
    const src = r.source
    const srcMeta = src.workload === null || src.namespace === null || src.pod === null
      ? null
      : workloadMeta(this.labelsOf(src.namespace, src.pod), src.workload)
    const dst = destination === null ? r.destination : { pod: destination.pod.name, namespace: destination.pod.namespace, workload: destination.pod.workload }
    const dstMeta = destination !== null
      ? workloadMeta(destination.pod.labels, destination.pod.workload)
      : (dst === null ? null : workloadMeta(this.labelsOf(dst.namespace, dst.pod), dst.workload))
    const dstPrincipal = destination === null ? (r.destinationPrincipal ?? UNKNOWN) : destination.principal
    const svc = splitService(r.service)
    return [
      reporter,
      srcMeta === null ? UNKNOWN : src.workload!, srcMeta === null ? UNKNOWN : src.namespace!, r.sourcePrincipal ?? UNKNOWN,
      srcMeta?.app ?? UNKNOWN, srcMeta?.version ?? UNKNOWN, srcMeta?.canonicalService ?? UNKNOWN, srcMeta?.canonicalRevision ?? UNKNOWN,
      srcMeta === null ? UNKNOWN : this.cluster,
      dst?.workload ?? UNKNOWN, dst?.namespace ?? UNKNOWN, dstPrincipal,
      dstMeta?.app ?? UNKNOWN, dstMeta?.version ?? UNKNOWN, dstMeta?.canonicalService ?? UNKNOWN, dstMeta?.canonicalRevision ?? UNKNOWN,
      dstMeta === null ? UNKNOWN : this.cluster,
      svc === null ? UNKNOWN : `${svc.name}.${svc.namespace}.svc.${this.domain}`, svc?.name ?? UNKNOWN, svc?.namespace ?? UNKNOWN,
      protocol, responseFlags,
      reporter === 'source' ? UNKNOWN : (r.mtls ? 'mutual_tls' : 'none')
    ]
  }
}

/** "name.namespace" (ConnectionRecord.service) split; null when there is none. */
function splitService (service: string | null): { name: string, namespace: string } | null {
  if (service === null) return null
  const dot = service.indexOf('.')
  if (dot < 0) return { name: service, namespace: UNKNOWN }
  return { name: service.slice(0, dot), namespace: service.slice(dot + 1) }
}

/** A labels object from names and values (same length and order). */
export function labelObject<L extends string> (names: readonly L[], values: readonly string[]): Record<L, string> {
  const o = {} as Record<L, string>
  names.forEach((n, i) => { o[n] = values[i]! })
  return o
}

/** The reporter of a connection record: its outbound side is the source's proxy, its inbound side the destination's. */
export function connectionReporter (r: ConnectionRecord): Reporter {
  return r.direction === 'outbound' ? 'source' : 'destination'
}
