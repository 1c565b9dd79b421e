// What a set of lab manifests asks for, once validated: the fields the lab uses, typed,
// defaulted and frozen. Everything after the manifest stage works from this.

export const DEFAULT_NAMESPACE = 'default'

export type IPFamily = 'IPv4' | 'IPv6'
export type IPFamilyPolicy = 'SingleStack' | 'PreferDualStack' | 'RequireDualStack'

export interface Origin {
  readonly file: string
  readonly line: number
}

export interface LabNode {
  readonly name: string
  readonly labels: Readonly<Record<string, string>>
  readonly annotations: Readonly<Record<string, string>>
  readonly origin: Origin
}

export interface LabNamespace {
  readonly name: string
  readonly labels: Readonly<Record<string, string>>
  readonly annotations: Readonly<Record<string, string>>
  /** False for the implicit `default` namespace. */
  readonly declared: boolean
}

/** A container env var: a literal value, or a Downward API field of the pod. */
export type LabEnvVar =
  | { readonly name: string, readonly value: string }
  | { readonly name: string, readonly fieldPath: string }

export interface LabContainerPort {
  readonly name?: string
  readonly containerPort: number
}

/** The kubelet's three probes of a container, by the name the kubelet logs them with. */
export type ProbeKind = 'startup' | 'liveness' | 'readiness'
export const PROBE_KINDS: readonly ProbeKind[] = ['startup', 'liveness', 'readiness']

/** How a probe checks a container (exactly one handler, as Kubernetes requires). */
export type LabProbeHandler =
  | { readonly kind: 'httpGet', readonly path: string, readonly port: number | string, readonly host: string | null, readonly scheme: 'HTTP', readonly headers: ReadonlyArray<{ readonly name: string, readonly value: string }> }
  | { readonly kind: 'tcpSocket', readonly port: number | string, readonly host: string | null }
  | { readonly kind: 'grpc', readonly port: number, readonly service: string | null }
  | { readonly kind: 'exec', readonly command: readonly string[] }

/** A container probe with the API server's defaults applied (a 0 also means the default, as there). */
export interface LabProbe {
  readonly handler: LabProbeHandler
  readonly initialDelaySeconds: number
  readonly periodSeconds: number
  readonly timeoutSeconds: number
  readonly successThreshold: number
  readonly failureThreshold: number
  /** Kept to publish it as written; the lab's kubelet stops containers with the pod's grace period. */
  readonly terminationGracePeriodSeconds: number | null
}

/** Kubernetes' probe defaults (SetDefaults_Probe). */
export const PROBE_DEFAULTS = Object.freeze({ periodSeconds: 10, timeoutSeconds: 1, successThreshold: 1, failureThreshold: 3 })

export interface LabContainer {
  readonly name: string
  readonly command: readonly string[]
  readonly args: readonly string[]
  readonly env: readonly LabEnvVar[]
  readonly ports: readonly LabContainerPort[]
  /** Absolute; defaults to the directory of the manifest file. */
  readonly workingDir: string
  /** Probes by kind; absent in state files from before the lab ran probes. */
  readonly probes?: Readonly<Partial<Record<ProbeKind, LabProbe>>>
}

export interface LabPod {
  readonly namespace: string
  readonly name: string
  readonly nodeName: string
  readonly serviceAccountName: string
  readonly hostname: string
  readonly labels: Readonly<Record<string, string>>
  readonly annotations: Readonly<Record<string, string>>
  readonly ownerReferences: readonly unknown[]
  readonly hostAliases: ReadonlyArray<{ readonly ip: string, readonly hostnames: readonly string[] }>
  readonly terminationGracePeriodSeconds: number
  /** What the kubelet does with a container its liveness or startup probe killed (Never: leave it stopped). Absent in older state files: Always. */
  readonly restartPolicy?: 'Always' | 'OnFailure' | 'Never'
  readonly containers: readonly LabContainer[]
  readonly origin: Origin
}

export interface LabServicePort {
  readonly name?: string
  readonly port: number
  /** A number, or the name of a container port. */
  readonly targetPort: number | string
  readonly appProtocol?: string
}

export interface LabService {
  readonly namespace: string
  readonly name: string
  readonly labels: Readonly<Record<string, string>>
  readonly annotations: Readonly<Record<string, string>>
  readonly selector: Readonly<Record<string, string>>
  readonly ports: readonly LabServicePort[]
  readonly headless: boolean
  /** Families in order, primary first (resolved from ipFamilies/ipFamilyPolicy/clusterIPs). */
  readonly ipFamilies: readonly IPFamily[]
  readonly ipFamilyPolicy: IPFamilyPolicy
  /** Cluster IPs the manifest asked for, by family; the rest are allocated. */
  readonly requestedClusterIPs: Readonly<Partial<Record<IPFamily, string>>>
  readonly origin: Origin
}

export interface LabSpec {
  readonly files: readonly string[]
  readonly nodes: readonly LabNode[]
  readonly namespaces: readonly LabNamespace[]
  readonly pods: readonly LabPod[]
  readonly services: readonly LabService[]
}

/** Default grace period of the lab (Kubernetes: 30 s, too long for a test lab). */
export const DEFAULT_GRACE_SECONDS = 2
/** The lab never waits longer than this for a pod to stop, whatever the manifest says. */
export const MAX_GRACE_SECONDS = 10
