import { FileDiscoverySource } from './source-file'
import { registerDiscoverySource } from './source'

// Discovery: where the mesh learns about pods and services. Importing this module
// registers the built-in sources.

registerDiscoverySource('file', (opts) => new FileDiscoverySource({ path: opts.target, log: opts.log }))

export * from './model'
export * from './source'
export { FileDiscoverySource } from './source-file'
export { parseClusterList } from './cluster-list'
export { ServiceIndex, type Endpoint, type ServicePortEntry, resolveTargetPort } from './service-index'
export { meshDecision, isMeshed, type MeshDecision, inboundMode, type InboundMode, type InboundModeDecision, INBOUND_MODE_KEY, DEFAULT_INBOUND_MODE } from './mesh-policy'
export { type PodLocator, type PodLocation, type PodLocatorOptions, LabAnnotationLocator, createPodLocator, registerPodLocator } from './pod-locator'
export { canonicalIP, familyOf, type Family } from './ip'
