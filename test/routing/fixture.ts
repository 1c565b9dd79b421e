import type { ClusterSnapshot, Pod, Service } from '../../src/discovery/model'
import type { BalancerEndpoint } from '../../src/balancer/balancer'
import type { PickInput, Placed, RequestBalancer } from '../../src/balancer/request'
import type { RouteObject } from '../../src/routing/cluster-view'
import type { RoutedRequestView } from '../../src/routing/model'

// Hand-built clusters, route objects and requests for the routing tests, and a small
// round-robin RequestBalancer (the product's balancers live in src/balancer/).

export function service (namespace: string, name: string, ports: number[] = [80], selector: Record<string, string> = { app: name }): Service {
  return {
    name,
    namespace,
    annotations: {},
    clusterIPs: [`10.96.${ports[0] % 250}.${(name.length * 7 + namespace.length) % 250}`],
    ports: ports.map((port) => ({ name: `http-${port}`, port, targetPort: 8000 + (port % 1000), protocol: 'TCP' as const, appProtocol: null })),
    selector,
    publishNotReadyAddresses: false
  }
}

let podN = 0
export function pod (namespace: string, name: string, labels: Record<string, string>, ip?: string): Pod {
  podN++
  return {
    uid: `uid-${name}-${podN}`,
    name,
    namespace,
    nodeName: 'n1',
    serviceAccountName: 'default',
    labels,
    annotations: {},
    podIPs: [ip ?? `10.1.${Math.floor(podN / 250)}.${podN % 250}`],
    hostIPs: ['192.168.0.1'],
    ports: [],
    probePorts: [],
    ready: true,
    phase: 'Running',
    hostNetwork: false,
    workload: name
  }
}

export function cluster (services: Service[], pods: Pod[] = []): ClusterSnapshot {
  const namespaces = [...new Set([...services.map((s) => s.namespace), ...pods.map((p) => p.namespace)])].map((name) => ({ name, labels: {} }))
  return { generation: 1, origin: 'test', namespaces, nodes: [{ name: 'n1', labels: {} }], pods, services }
}

export function obj<S> (namespace: string, name: string, spec: S, creationTimestamp?: string): RouteObject<S> {
  return { metadata: { name, namespace, ...(creationTimestamp === undefined ? {} : { creationTimestamp }) }, spec }
}

export function request (o: { method?: string, path?: string, query?: string, host?: string, headers?: Record<string, string>, grpc?: boolean } = {}): RoutedRequestView {
  const headers = Object.fromEntries(Object.entries(o.headers ?? {}).map(([k, v]) => [k.toLowerCase(), v]))
  return {
    method: o.method ?? 'GET',
    path: o.path ?? '/',
    query: o.query ?? '',
    host: o.host ?? 'svc',
    grpc: o.grpc ?? false,
    header: (name) => headers[name]
  }
}

/** A seeded generator (mulberry32): statistical tests that always see the same numbers. */
export function seeded (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6D2B79F5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

export class TestRoundRobin<E extends BalancerEndpoint> implements RequestBalancer<E> {
  private list: readonly E[] = []
  private next = 0
  readonly placed: string[] = []

  update (endpoints: readonly E[]): void { this.list = endpoints; this.next = 0 }

  pick (input: PickInput<E>): E | null {
    for (let i = 0; i < this.list.length; i++) {
      const e = this.list[(this.next + i) % this.list.length]
      if (input.eligible(e)) { this.next = (this.next + i + 1) % this.list.length; return e }
    }
    return null
  }

  place (e: E): Placed {
    this.placed.push(e.id)
    return { end: () => {} }
  }

  describe (): ReadonlyArray<{ readonly id: string, readonly ewmaMs: number | null, readonly pending: number }> {
    return this.list.map((e) => ({ id: e.id, ewmaMs: null, pending: 0 }))
  }
}
