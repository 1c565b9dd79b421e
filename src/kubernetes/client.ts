import type * as K8s from '@kubernetes/client-node' with { 'resolution-mode': 'import' }
import { ferryError } from '../errors'

// The official Kubernetes client (@kubernetes/client-node 1.x, an ES module) loaded on
// first use, so that commands that never talk to an API server do not pay for it, and
// the kubeconfig Ferry uses: a file given on the command line (the lab's); in a pod, the
// service account's (token, CA, the KUBERNETES_SERVICE_* address); elsewhere
// $KUBECONFIG or ~/.kube/config; in tests, an explicit server.

export type KubernetesClient = typeof K8s
export type { K8s }

let loaded: Promise<KubernetesClient> | null = null

export async function loadKubernetesClient (): Promise<KubernetesClient> {
  loaded ??= import('@kubernetes/client-node')
  return await loaded
}

export interface KubeConfigSource {
  /** An API server URL (http:// for tests only), with an optional bearer token; absent: the default lookup. */
  readonly server?: string
  readonly token?: string
  /** A kubeconfig file (`ferry agent --kubeconfig`); its current context is used. */
  readonly file?: string
}

export async function loadKubeConfig (source: KubeConfigSource = {}): Promise<K8s.KubeConfig> {
  const k8s = await loadKubernetesClient()
  const kc = new k8s.KubeConfig()
  try {
    if (source.file !== undefined) {
      kc.loadFromFile(source.file)
    } else if (source.server === undefined) {
      kc.loadFromDefault()
    } else {
      kc.loadFromOptions({
        // A plain-http server (tests) has no TLS to verify; the client refuses http otherwise.
        clusters: [{ name: 'ferry', server: source.server, skipTLSVerify: source.server.startsWith('http://') }],
        users: [{ name: 'ferry', ...(source.token === undefined ? {} : { token: source.token }) }],
        contexts: [{ name: 'ferry', cluster: 'ferry', user: 'ferry' }],
        currentContext: 'ferry'
      })
    }
  } catch (err) {
    throw ferryError('FERRY_ERR_KUBE_API', `cannot load a kubeconfig: ${(err as Error).message}`, { cause: err })
  }
  if (kc.getCurrentCluster() === null) throw ferryError('FERRY_ERR_KUBE_API', 'the kubeconfig names no current cluster')
  return kc
}

/** An ApiException's or a watch error's HTTP status, if it has one. */
export function httpStatusOf (err: unknown): number | undefined {
  const e = err as { code?: unknown, statusCode?: unknown } | null
  if (typeof e?.statusCode === 'number') return e.statusCode
  if (typeof e?.code === 'number') return e.code
  return undefined
}
