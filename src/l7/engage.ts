import type { Namespace, Pod, Service, ServicePort } from '../discovery/model'
import { resolveTargetPort, selectorMatches } from '../discovery/service-index'
import { type L7Decision, l7Decision } from './decision'
import { portProtocol, type PortProtocol } from './protocol'
import { combine, L7_KEY, namespaceSwitch, podSwitch, serviceSwitch, type SwitchReading } from './switch'

// Where L7 applies (decision.ts says what that means):
//
//   source       per destination Service port: engaged when the Service (annotation) or
//   (routing,    its namespace (label) says ferry.dev/l7=enabled, or a route targets the
//   balancing)   Service (`route`: src/routing/routing-table.ts routeOf; on a port that
//                declares no protocol, the route's kind implies it: RouteEngagement).
//                ferry.dev/l7=disabled on the Service wins over its namespace, and over
//                a route.
//   destination  per workload port: engaged when the pod (annotation) or its namespace
//   (authz,      (label) says ferry.dev/l7=enabled, or when an AuthorizationPolicy with
//   telemetry)   L7 fields selects the pod on that port (`policyL7Ref`, from
//                InboundAuthorizer.l7PolicyFor). A policy engages L7 even on a pod that
//                says disabled: an opt-out must not switch an authorization rule off.
//
// Either side: a port declared not HTTP (protocol `tcp`: appProtocol tcp, a `tcp-`
// name, tls, mongo, …) is never L7, whatever the switches or policies say; the reason
// says so (an L7 policy then applies to it as to any non-HTTP bytes: an L7 ALLOW cannot
// match them, an L7 DENY applies without its L7 conditions).
//
// These functions build reasons (strings) and are for building tables and explaining:
// per connection, look decisions up in an L7Table (table.ts).

/** One decision and the invalid switch values met while making it (for warnings.ts). */
export interface Decided {
  readonly decision: L7Decision
  readonly invalid: readonly string[]
}

/**
 * A route that targets a Service port (src/routing/routing-table.ts routeOf): its name, and
 * the protocol it implies when the port declares none (an HTTPRoute or VirtualService:
 * http1, on which clients may speak either version; a GRPCRoute: grpc).
 */
export interface RouteEngagement {
  readonly ref: string
  readonly protocol: 'http1' | 'grpc'
}

export function l7ForService (service: Service, port: ServicePort, namespace: Namespace | undefined, route: string | RouteEngagement | null = null): L7Decision {
  return decideService(service, port, namespace, route).decision
}

export function decideService (service: Service, port: ServicePort, namespace: Namespace | undefined, routeArg: string | RouteEngagement | null = null): Decided {
  const { decided, overridden, invalid } = combine(serviceSwitch(service), namespaceSwitch(namespace))
  const route = routeArg === null ? null : typeof routeArg === 'string' ? routeArg : routeArg.ref
  const declared = portProtocol(port)
  const proto: PortProtocol = declared.protocol === 'detect' && routeArg !== null && typeof routeArg !== 'string' && decided.state !== 'disabled'
    ? { protocol: routeArg.protocol, source: `undeclared; ${routeArg.protocol} for route ${routeArg.ref}` }
    : declared
  const owner = `service ${service.namespace}/${service.name}`
  const by = switchText(decided, overridden)
  if (proto.protocol === 'tcp') {
    const ignored = decided.state === 'enabled' ? `; ${by} does not apply to it` : route !== null ? `; route ${route} does not apply to it` : ''
    return { decision: l7Decision(false, 'tcp', `${proto.source} declares a protocol that is not HTTP: L4${ignored}`), invalid }
  }
  const protocol = `protocol ${proto.protocol} (${proto.source})`
  if (decided.state === 'disabled') return { decision: l7Decision(false, proto.protocol, `${by}${route === null ? '' : ` (route ${route} ignored)`}; ${protocol}`), invalid }
  if (decided.state === 'enabled') return { decision: l7Decision(true, proto.protocol, `${by}; ${protocol}`), invalid }
  if (route !== null) return { decision: l7Decision(true, proto.protocol, `route ${route} targets it; ${protocol}`), invalid }
  return { decision: l7Decision(false, proto.protocol, `no ${L7_KEY} on ${owner} or namespace ${service.namespace}, and no route targets it; ${protocol}`), invalid }
}

/**
 * `services`: the cluster's Services (those selecting the pod and exposing `port` as
 * their targetPort declare its protocol; none: detect). Per connection, use
 * L7Table.forWorkload, which has them indexed.
 */
export function l7ForWorkload (pod: Pod, port: number, namespace: Namespace | undefined, policyL7Ref: string | null, services: readonly Service[] = []): L7Decision {
  return decideWorkload(pod, workloadPortProtocol(pod, port, services), namespace, policyL7Ref).decision
}

export function decideWorkload (pod: Pod, proto: PortProtocol, namespace: Namespace | undefined, policyL7Ref: string | null): Decided {
  const { decided, overridden, invalid } = combine(podSwitch(pod), namespaceSwitch(namespace))
  const by = switchText(decided, overridden)
  const policy = policyL7Ref === null ? '' : `AuthorizationPolicy ${policyL7Ref} has L7 fields and selects it`
  if (proto.protocol === 'tcp') {
    const ignored = [decided.state === 'enabled' ? by : '', policyL7Ref === null ? '' : `${policy}: it applies as to any non-HTTP bytes (an L7 ALLOW cannot match, an L7 DENY applies without its L7 conditions)`].filter((x) => x !== '')
    return { decision: l7Decision(false, 'tcp', `${proto.source} declares a protocol that is not HTTP: L4${ignored.length === 0 ? '' : `; ${ignored.join('; ')}`}`), invalid }
  }
  const protocol = `protocol ${proto.protocol} (${proto.source})`
  if (policyL7Ref !== null) {
    const also = decided.state === 'enabled' ? ` (and ${by})` : decided.state === 'disabled' ? ` (over ${by}: an opt-out does not switch a policy off)` : ''
    return { decision: l7Decision(true, proto.protocol, `${policy}${also}; ${protocol}`), invalid }
  }
  if (decided.state !== 'unset') return { decision: l7Decision(decided.state === 'enabled', proto.protocol, `${by}; ${protocol}`), invalid }
  return { decision: l7Decision(false, proto.protocol, `no ${L7_KEY} on pod ${pod.namespace}/${pod.name} or namespace ${pod.namespace}, and no AuthorizationPolicy with L7 fields selects it; ${protocol}`), invalid }
}

/**
 * The protocol of a pod's port, from the Services that select the pod and expose that
 * port (named targetPorts resolved against the pod's container ports). Services that
 * declare nothing do not count; when declarations disagree, the client's bytes decide
 * (detect), and the reason names them.
 */
export function workloadPortProtocol (pod: Pod, port: number, services: readonly Service[]): PortProtocol {
  const declared: Array<{ readonly what: string, readonly proto: PortProtocol }> = []
  let exposed = false
  for (const service of services) {
    if (service.namespace !== pod.namespace || service.selector === null || !selectorMatches(service.selector, pod.labels)) continue
    for (const sp of service.ports) {
      if (sp.protocol !== 'TCP' || resolveTargetPort(sp, pod) !== port) continue
      exposed = true
      const proto = portProtocol(sp)
      if (proto.protocol !== 'detect') declared.push({ what: `service ${service.namespace}/${service.name} port ${sp.port}`, proto })
    }
  }
  if (declared.length === 0) {
    return Object.freeze({ protocol: 'detect', source: exposed ? 'no Service exposing this port declares its protocol' : 'no Service exposes this port' })
  }
  const first = declared[0]
  if (declared.every((d) => d.proto.protocol === first.proto.protocol)) {
    const more = declared.length > 1 ? ` and ${declared.length - 1} more` : ''
    return Object.freeze({ protocol: first.proto.protocol, source: `${first.what}: ${first.proto.source}${more}` })
  }
  return Object.freeze({ protocol: 'detect', source: `Services disagree (${declared.map((d) => `${d.what}: ${d.proto.protocol}`).join(', ')})` })
}

function switchText (decided: SwitchReading, overridden: SwitchReading | null): string {
  return overridden === null ? decided.where : `${decided.where} (over ${overridden.where})`
}
