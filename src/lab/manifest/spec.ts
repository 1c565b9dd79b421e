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

export interface LabContainer {
  readonly name: string
  readonly command: readonly string[]
  readonly args: readonly string[]
  readonly env: readonly LabEnvVar[]
  readonly ports: readonly LabContainerPort[]
  /** Absolute; defaults to the directory of the manifest file. */
  readonly workingDir: string
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
