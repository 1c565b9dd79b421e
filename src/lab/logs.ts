import { ferryError } from '../errors'
import { findPod } from './exec'
import type { LabState } from './state'

// Where `ferry lab logs` reads: one file per container and one per node agent, in the
// lab's state dir (<stateDir>/logs/<ns>_<pod>_<container>.log, node-<node>.log), and
// one per node kubelet (kubelet-<node>.log).

export type LogTarget =
  | { readonly kind: 'pod', readonly namespace: string, readonly name: string, readonly container?: string }
  | { readonly kind: 'node', readonly name: string }
  | { readonly kind: 'kubelet', readonly name: string }

export function logPath (state: LabState, target: LogTarget): string {
  if (target.kind === 'kubelet') {
    const node = state.plan.nodes.find((n) => n.name === target.name)
    if (node === undefined) throw ferryError('FERRY_ERR_POD_NOT_FOUND', `lab ${state.name} has no node ${target.name}`)
    return node.kubeletLog
  }
  if (target.kind === 'node') {
    const node = state.plan.nodes.find((n) => n.name === target.name)
    if (node === undefined) throw ferryError('FERRY_ERR_POD_NOT_FOUND', `lab ${state.name} has no node ${target.name}`)
    if (!state.plan.mesh) throw ferryError('FERRY_ERR_INVALID_ARG', `lab ${state.name} runs without the mesh: node ${target.name} has no agent log`)
    return node.agentLog
  }
  const pod = findPod(state, target.namespace, target.name)
  if (target.container === undefined) {
    if (pod.containers.length > 1) {
      throw ferryError('FERRY_ERR_INVALID_ARG', `pod ${pod.namespace}/${pod.name} has several containers: choose one with -c (${pod.containers.map((c) => c.name).join(', ')})`)
    }
    return pod.containers[0].log
  }
  const c = pod.containers.find((x) => x.name === target.container)
  if (c === undefined) throw ferryError('FERRY_ERR_POD_NOT_FOUND', `pod ${pod.namespace}/${pod.name} has no container ${target.container}`)
  return c.log
}
