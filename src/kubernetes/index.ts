import { registerDiscoverySource } from '../discovery/source'
import { registerPodLocator } from '../discovery/pod-locator'
import { defaultKubeletLocatorOptions, KubeletPodLocator } from './pod-locator-kubelet'
import { KubernetesDiscoverySource } from './source'

// Ferry on a real cluster: discovery from the Kubernetes API and pods located the way
// the kubelet and the container runtime lay them out. Importing this module registers
//   discovery source "kubernetes"  (target: this node's name; API server from the given
//                                   kubeconfig file, else the in-cluster service account,
//                                   $KUBECONFIG or ~/.kube/config)
//   pod locator "kubelet"          (the given procRoot and cgroupRoot, else the host
//                                   mounts /host/sys/fs/cgroup and /host/proc when
//                                   present, else this host's own)

registerDiscoverySource('kubernetes', (opts) => new KubernetesDiscoverySource({ node: opts.target, log: opts.log, ...(opts.kubeconfig === undefined ? {} : { kubeconfig: { file: opts.kubeconfig } }) }))
registerPodLocator('kubelet', (opts) => {
  const defaults = defaultKubeletLocatorOptions()
  return new KubeletPodLocator({ cgroupMount: opts.cgroupRoot ?? defaults.cgroupMount, procRoot: opts.procRoot ?? defaults.procRoot })
})

export { KubernetesDiscoverySource, KUBERNETES_SOURCE_DEFAULTS, type KubernetesSourceOptions } from './source'
export { KubeletPodLocator, defaultKubeletLocatorOptions, HOST_MOUNTS, type KubeletLocatorOptions } from './pod-locator-kubelet'
export { podCgroupCandidates, expandSlice } from './cgroup-layout'
export { loadKubeConfig, loadKubernetesClient } from './client'
