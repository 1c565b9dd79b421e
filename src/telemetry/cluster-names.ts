// The cluster's two names in Istio's metrics, checked alike wherever they are given
// (`ferry agent --cluster-name/--cluster-domain`, `ferry install --set`):
//   cluster name    source_cluster / destination_cluster (Istio's default "Kubernetes")
//   cluster domain  the DNS domain of the cluster's Services (the kubelet's
//                   --cluster-domain, default cluster.local): destination_service is
//                   name.namespace.svc.<domain>

export const DEFAULT_CLUSTER_DOMAIN = 'cluster.local'

// A Prometheus label value may hold anything, but Istio's cluster names are Kubernetes-style names.
const CLUSTER_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/

/** What a cluster name must be, when `text` is not one; null when it is. */
export function clusterNameProblem (text: string): string | null {
  return CLUSTER_NAME.test(text) ? null : 'a name of letters, digits, "-", "_" and "." (at most 63 characters)'
}

/** What a cluster domain must be, when `text` is not one; null when it is. */
export function clusterDomainProblem (text: string): string | null {
  const ok = text.length <= 253 && text.split('.').every((label) => DNS_LABEL.test(label))
  return ok ? null : 'a DNS domain such as cluster.local (lowercase letters, digits, "-" and ".")'
}

/** "name.namespace" of a Service → its FQDN in `domain`. */
export function serviceFqdn (nameDotNamespace: string, domain: string): string {
  return `${nameDotNamespace}.svc.${domain}`
}
