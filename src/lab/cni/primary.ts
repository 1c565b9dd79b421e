import { POD_GATEWAY } from '../ipam'
import { POD_IFNAME, netnsPath, type LabPlan, type PlanPod } from '../topology'
import { CNI_VERSION } from './conflist'

// The result of the lab's primary plugin for a pod (CNI spec 1.0.0, section 5, "ADD
// Success"): what src/lab/network.ts made — the node's end of the veth, the pod's eth0
// in its namespace, a /32 and a /128 behind the link-local gateways, default routes.
// MAC addresses are left out: the link is routed point to point, its L2 addresses mean
// nothing to anyone. This is the prevResult the first chained plugin receives.

export interface CniResult {
  readonly cniVersion: string
  readonly interfaces?: ReadonlyArray<{ readonly name: string, readonly mac?: string, readonly sandbox?: string }>
  readonly ips?: ReadonlyArray<{ readonly address: string, readonly gateway?: string, readonly interface?: number }>
  readonly routes?: ReadonlyArray<{ readonly dst: string, readonly gw?: string }>
  readonly dns?: Readonly<Record<string, unknown>>
  readonly [key: string]: unknown
}

export function primaryResult (plan: LabPlan, pod: PlanPod): CniResult {
  return {
    cniVersion: CNI_VERSION,
    interfaces: [
      { name: pod.hostVeth },
      { name: POD_IFNAME, sandbox: netnsPath(plan.paths, pod.netns) }
    ],
    ips: [
      { address: `${pod.ipv4}/32`, gateway: POD_GATEWAY.v4, interface: 1 },
      { address: `${pod.ipv6}/128`, gateway: POD_GATEWAY.v6, interface: 1 }
    ],
    routes: [
      { dst: '0.0.0.0/0', gw: POD_GATEWAY.v4 },
      { dst: '::/0', gw: POD_GATEWAY.v6 }
    ],
    dns: {}
  }
}
