import { httpStatusOf, type KubeConfigSource, loadKubeConfig, loadKubernetesClient } from './client'

// Whether the agent's own DaemonSet is being deleted: the one case in which an agent's
// SIGTERM takes the ferry-cni plugin off its node. A rolling update, a restart, a node
// shutdown or an eviction also end the agent with SIGTERM, and there the entry must stay
// (pods started before the next agent is up would escape the mesh). Asked of the API
// server at that moment:
//
//   404                          the DaemonSet is gone (kubectl delete's default,
//                                background propagation: the object goes first)
//   metadata.deletionTimestamp   being deleted (foreground propagation)
//   anything else, or no answer  not being deleted: the entry stays (a node left with
//                                the entry and no agent holds back its meshed pods, which
//                                `ferry cni uninstall` undoes; the opposite mistake would
//                                let pods escape silently)

export interface DeletionVerdict {
  readonly deleting: boolean
  readonly why: string
}

export const DELETION_CHECK_TIMEOUT_MS = 5000

export async function daemonSetDeletion (kubeconfig: KubeConfigSource, namespace: string, name: string, timeoutMs = DELETION_CHECK_TIMEOUT_MS): Promise<DeletionVerdict> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<DeletionVerdict>((resolve) => {
    timer = setTimeout(() => { resolve({ deleting: false, why: `no answer from the API server within ${timeoutMs} ms` }) }, timeoutMs)
  })
  try {
    return await Promise.race([ask(kubeconfig, namespace, name), timeout])
  } finally {
    clearTimeout(timer)
  }
}

async function ask (kubeconfig: KubeConfigSource, namespace: string, name: string): Promise<DeletionVerdict> {
  try {
    const client = await loadKubernetesClient()
    const kc = await loadKubeConfig(kubeconfig)
    const ds = await kc.makeApiClient(client.AppsV1Api).readNamespacedDaemonSet({ name, namespace })
    const when = ds.metadata?.deletionTimestamp
    if (when !== undefined && when !== null) return { deleting: true, why: `DaemonSet ${namespace}/${name} is being deleted (deletionTimestamp ${new Date(when).toISOString()})` }
    return { deleting: false, why: `DaemonSet ${namespace}/${name} is in place` }
  } catch (err) {
    if (httpStatusOf(err) === 404) return { deleting: true, why: `DaemonSet ${namespace}/${name} is gone` }
    return { deleting: false, why: `cannot read DaemonSet ${namespace}/${name}: ${(err as Error).message.slice(0, 200)}` }
  }
}
