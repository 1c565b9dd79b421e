import type { LabPod, LabService, LabSpec } from './manifest/spec'
import type { LabPlan, PlanPod } from './topology'

// Which pods back a Service: same namespace, labels matching the selector — what the
// EndpointSlice controller computes. Pure.

export function selects (svc: LabService, pod: LabPod): boolean {
  if (pod.namespace !== svc.namespace) return false
  const entries = Object.entries(svc.selector)
  return entries.length > 0 && entries.every(([k, v]) => pod.labels[k] === v)
}

export function endpointsOf (spec: LabSpec, plan: LabPlan, svc: LabService): PlanPod[] {
  const out: PlanPod[] = []
  spec.pods.forEach((pod, i) => { if (selects(svc, pod)) out.push(plan.pods[i]) })
  return out
}

/** The container port a service port reaches on a pod (named target ports looked up per pod), or null. */
export function targetPortOn (pod: LabPod, target: number | string): number | null {
  if (typeof target === 'number') return target
  for (const c of pod.containers) for (const p of c.ports) if (p.name === target) return p.containerPort
  return null
}
