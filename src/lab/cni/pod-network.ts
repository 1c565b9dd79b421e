import { existsSync } from 'node:fs'
import { ferryError, isFerryError } from '../../errors'
import { backoffDelay, type BackoffPolicy } from '../../identity/backoff'
import { type Deadline, sleep } from '../clock'
import type { LabPlan, PlanNode, PlanPod } from '../topology'
import { addNetwork, attachmentFor, cachePath, delNetwork } from './attachment'
import { readConflist } from './conflist'
import type { CniResult } from './primary'

// A pod's network, as the kubelet and its runtime handle it: ADD is retried until the
// pod's deadline, with the kubelet's kind of backoff (short here, for tests: 0.5 s
// doubling to 5 s), the pod's containers held back meanwhile; every failure is logged
// with the plugin's message and followed by a DEL of the failed attempt (the spec: a
// delete must follow an add, even a failed one). DEL on teardown is best effort: its
// failures are reported, never thrown, and never stop a pod's removal.

export const CNI_RETRY: BackoffPolicy = Object.freeze({ initialMs: 500, maxMs: 5000, multiplier: 2, jitter: 0 })

export interface PodNetworkOptions {
  readonly deadline: Deadline
  readonly signal?: AbortSignal
  /** A line for a person per failed attempt. */
  readonly say?: (line: string) => void
}

export async function setUpPodNetwork (plan: LabPlan, pod: PlanPod, annotations: Readonly<Record<string, string>>, opts: PodNetworkOptions): Promise<CniResult> {
  const node = nodeOf(plan, pod)
  const att = attachmentFor(plan, pod, annotations)
  for (let attempt = 1; ; attempt++) {
    opts.signal?.throwIfAborted()
    try {
      return await addNetwork(plan, node, pod, att)
    } catch (err) {
      if (!isFerryError(err, 'FERRY_ERR_LAB_CNI')) throw err
      await delNetwork(plan, node, pod, att).catch(() => {}) // logged by the attachment
      const delay = backoffDelay(attempt, CNI_RETRY, Math.random)
      if (opts.deadline.remainingMs <= delay) {
        throw ferryError('FERRY_ERR_LAB_CNI', `pod ${pod.namespace}/${pod.name} never got its network (${attempt} attempt(s) until the deadline; every call is in ${node.cni.log}); last: ${err.message}`, { cause: err })
      }
      opts.say?.(`pod ${pod.namespace}/${pod.name}: ${err.message}; retrying in ${delay} ms`)
      await sleep(delay, opts.signal)
    }
  }
}

/** DEL of the pod's attachment; returns the failure's message, or null. Never throws. */
export async function tearDownPodNetwork (plan: LabPlan, pod: PlanPod, annotations: Readonly<Record<string, string>>): Promise<string | null> {
  try {
    await delNetwork(plan, nodeOf(plan, pod), pod, attachmentFor(plan, pod, annotations))
    return null
  } catch (err) {
    return (err as Error).message
  }
}

/** True once the pod's network is set up (its ADD result is cached). */
export function podNetworkReady (plan: LabPlan, pod: PlanPod): boolean {
  const node = plan.nodes.find((n) => n.name === pod.node)
  if (node?.cni === undefined) return true // a lab from before the lab ran CNI
  try {
    return existsSync(cachePath(node.cni, readConflist(node.cni).name, attachmentFor(plan, pod, {})))
  } catch {
    return false
  }
}

/** True when some node's conflist chains a plugin after the lab's primary (so DEL has something to run). */
export function hasChainedPlugins (plan: LabPlan): boolean {
  return plan.nodes.some((n) => {
    if (n.cni === undefined) return false
    try {
      return readConflist(n.cni).plugins.length > 1
    } catch {
      return false
    }
  })
}

function nodeOf (plan: LabPlan, pod: PlanPod): PlanNode {
  const node = plan.nodes.find((n) => n.name === pod.node)
  if (node === undefined) throw ferryError('FERRY_ERR_LAB', `pod ${pod.namespace}/${pod.name}: no node ${pod.node} in the plan`)
  return node
}
