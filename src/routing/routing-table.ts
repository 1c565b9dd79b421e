import type { ClusterSnapshot } from '../discovery/model'
import type { DestinationRuleSpec, GRPCRouteSpec, HTTPRouteSpec, VirtualServiceSpec } from './api-types'
import { type RouteObject, ServicesView } from './cluster-view'
import { compileGateway, type GatewayRouting, portKey } from './compile-gateway'
import { compileIstio, type IstioRouting } from './compile-istio'
import { lendRetries, type LentRetries } from './lent-retries'
import type { MatchInput } from './match'
import type { BackendRef, LentRetry, RouteKind, RouteRule, ServiceRoutes, TrafficPolicy } from './model'
import { compileDestinationRules, DEFAULT_POLICY, type DestinationRules, trafficPolicyOf } from './traffic-policy'

// Every route of one (cluster snapshot, configuration snapshot) pair, compiled once and
// frozen: what a Service port's callers get (routesFor), what policy a backend's
// endpoints are balanced and limited with (policyFor), and what was left out (problems).
// A Service port with a Gateway API route (HTTPRoute, GRPCRoute) ignores VirtualServices:
// the Gateway API route wins (overriddenVirtualServices says which, for their status),
// except that a VirtualService's retry policy is lent to GRPCRoute rules (lent-retries.ts).

/** The route objects of a configuration snapshot (src/resources/snapshot.ts names them so). */
export interface RouteConfig {
  readonly httpRoutes: ReadonlyArray<RouteObject<HTTPRouteSpec>>
  readonly grpcRoutes: ReadonlyArray<RouteObject<GRPCRouteSpec>>
  readonly virtualServices: ReadonlyArray<RouteObject<VirtualServiceSpec>>
  readonly destinationRules: ReadonlyArray<RouteObject<DestinationRuleSpec>>
}

export const NO_ROUTES: RouteConfig = Object.freeze({ httpRoutes: [], grpcRoutes: [], virtualServices: [], destinationRules: [] })

export interface OverriddenVirtualService {
  /** "namespace/name" of the VirtualService. */
  readonly ref: string
  /** The Services ("ns/name") whose Gateway API routes take precedence over it. */
  readonly services: readonly string[]
  /** The condition's message. */
  readonly message: string
}

export class RoutingTable {
  private constructor (
    readonly services: ServicesView,
    private readonly gateway: GatewayRouting,
    private readonly istio: IstioRouting,
    private readonly rules: DestinationRules,
    private readonly lent: LentRetries
  ) {}

  static empty (): RoutingTable { return RoutingTable.build(null, NO_ROUTES) }

  static build (cluster: ClusterSnapshot | null, config: Partial<RouteConfig> | null, clusterDomain?: string): RoutingTable {
    const services = ServicesView.of(cluster, clusterDomain)
    const c = { ...NO_ROUTES, ...(config ?? {}) }
    const rules = compileDestinationRules(c.destinationRules, services)
    const gateway = compileGateway([
      ...c.httpRoutes.map((object) => ({ kind: 'HTTPRoute' as const, object })),
      ...c.grpcRoutes.map((object) => ({ kind: 'GRPCRoute' as const, object }))
    ], services)
    const istio = compileIstio(c.virtualServices, rules, services)
    return new RoutingTable(services, gateway, istio, rules, lendRetries(gateway, istio))
  }

  /** The routes callers in `callerNamespace` get on Service `service` ("ns/name") port `port`; null: none (plain balancing). */
  routesFor (service: string, port: number, callerNamespace: string): ServiceRoutes | null {
    const key = portKey(service, port)
    const g = this.gateway.ports.get(key)
    if (g !== undefined) {
      const r = g.consumers.get(callerNamespace) ?? g.producer
      if (r !== null) return r
    }
    if (g !== undefined) return null
    return this.istio.ports.get(key) ?? null
  }

  /**
   * The VirtualService entry whose retry policy a request routed by `rule` on the Service
   * port gets (lent-retries.ts): only for a GRPCRoute rule without one of its own; null: none.
   */
  lentRetry (service: string, port: number, rule: RouteRule, input: MatchInput): LentRetry | null {
    if (rule.source.kind !== 'GRPCRoute' || rule.retry !== null) return null
    return this.lent.ports.get(portKey(service, port))?.select(input) ?? null
  }

  /** Whether the Service port has anything routing does: a route (any caller's) or a DestinationRule. */
  hasRouting (service: string, port: number): boolean {
    const key = portKey(service, port)
    return this.gateway.ports.has(key) || this.istio.ports.has(key) || this.rules.byService.has(service)
  }

  /** The kind of route that makes the port L7 (for its protocol when undeclared), and the route's name; null: none. */
  routeOf (service: string, port: number): { readonly kind: RouteKind, readonly ref: string } | null {
    const key = portKey(service, port)
    const g = this.gateway.ports.get(key)
    if (g !== undefined) {
      const any = g.producer ?? [...g.consumers.values()][0]
      if (any !== undefined) return { kind: any.kind, ref: any.objects[0] ?? any.kind }
    }
    const vs = this.istio.ports.get(key)
    return vs === undefined ? null : { kind: 'VirtualService', ref: vs.objects[0] ?? 'VirtualService' }
  }

  /** What makes the port L7 for src/l7/table.ts: the route's name and the protocol it implies on an undeclared port (GRPCRoute: grpc; else http1). */
  engagement (service: string, port: number): { readonly ref: string, readonly protocol: 'http1' | 'grpc' } | null {
    const r = this.routeOf(service, port)
    return r === null ? null : { ref: r.ref, protocol: r.kind === 'GRPCRoute' ? 'grpc' : 'http1' }
  }

  /** The balancing and limits of a backend: its DestinationRule's policy for the port and subset, or the defaults. */
  policyFor (backend: Pick<BackendRef, 'service' | 'port' | 'subset'>): TrafficPolicy {
    const rule = this.rules.byService.get(backend.service)
    return rule === undefined ? DEFAULT_POLICY : trafficPolicyOf(rule, backend.port, backend.subset?.name ?? null)
  }

  /** What did not resolve, by "Kind ns/name" (ResolvedRefs false). */
  problems (): ReadonlyMap<string, readonly string[]> {
    return new Map([...this.gateway.problems, ...this.istio.problems, ...this.rules.problems])
  }

  /** Every Service port with routes: for /debug/config and `ferry route check`. */
  routedPorts (): string[] {
    return [...new Set([...this.gateway.ports.keys(), ...this.istio.ports.keys()])].sort()
  }

  /** The VirtualServices a Gateway API route overrides on at least one Service. */
  overriddenVirtualServices (): OverriddenVirtualService[] {
    const out: OverriddenVirtualService[] = []
    for (const [name, targets] of this.istio.targets) {
      const services = targets.filter((s) => this.gateway.services.has(s))
      if (services.length === 0) continue
      const ref = name.slice('VirtualService '.length)
      const rest = this.lent.lenders.has(ref)
        ? '; only its retries (http[].retries) still apply there, to the requests of GRPCRoute rules its rules match'
        : '; this VirtualService does not apply there'
      out.push(Object.freeze({ ref, services: Object.freeze(services), message: `overridden: Gateway API routes (HTTPRoute/GRPCRoute) attached to ${services.map((s) => `Service ${s}`).join(', ')} take precedence${rest}` }))
    }
    return out
  }
}

/**
 * For the controller's status: the VirtualServices overridden by Gateway API routes on
 * the same Service, given the cluster and the route objects in force.
 */
export function overriddenVirtualServices (cluster: ClusterSnapshot | null, config: Partial<RouteConfig>, clusterDomain?: string): OverriddenVirtualService[] {
  return RoutingTable.build(cluster, config, clusterDomain).overriddenVirtualServices()
}
