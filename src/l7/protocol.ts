import type { ServicePort } from '../discovery/model'
import type { L7Protocol } from './decision'

// A Service port's protocol, as Istio reads it (pkg/config/kube/conversion.go and
// pkg/config/protocol): the port's `appProtocol` when set, else the prefix of its name
// before the first "-" (`http`, `http-web`, `grpc-api`, `tcp-db`…), compared without
// case. Istio's protocols map to Ferry's:
//
//   http, kubernetes.io/ws                  http1
//   http2, kubernetes.io/h2c                http2
//   grpc                                    grpc
//   grpc-web                                detect: browsers send gRPC-Web over
//                                           HTTP/1.1 as often as HTTP/2, and Ferry has
//                                           no gRPC-Web translation; the client's bytes
//                                           decide
//   tcp, tls, https, kubernetes.io/wss,
//   mongo, mysql, redis, udp                tcp (not HTTP, or HTTP Ferry cannot read)
//   anything else, or nothing               detect
//
// Unlike Istio, an undeclared port 25, 53, 3306 or 27017 is not forced to TCP: Ferry's
// detection never stalls a server-first protocol (the upstream connection is made at
// once and the greeting flows), which is why Istio keeps that list.

export interface PortProtocol {
  readonly protocol: L7Protocol
  /** Where it came from, for people: `appProtocol "grpc"`, `port name "http-web"`, … */
  readonly source: string
}

// Maps, not objects: a port named "constructor" must not find Object.prototype's.
const PROTOCOLS: ReadonlyMap<string, L7Protocol> = new Map([
  ['http', 'http1'],
  ['http2', 'http2'],
  ['grpc', 'grpc'],
  ['tcp', 'tcp'],
  ['tls', 'tcp'],
  ['https', 'tcp'],
  ['mongo', 'tcp'],
  ['mysql', 'tcp'],
  ['redis', 'tcp'],
  ['udp', 'tcp']
])

/** Kubernetes' own appProtocol names (they never appear as port names). */
const KUBERNETES_APP_PROTOCOLS: ReadonlyMap<string, L7Protocol> = new Map([
  ['kubernetes.io/h2c', 'http2'],
  ['kubernetes.io/ws', 'http1'],
  ['kubernetes.io/wss', 'tcp']
])

const GRPC_WEB = 'grpc-web'

export function portProtocol (port: Pick<ServicePort, 'name' | 'appProtocol' | 'protocol'>): PortProtocol {
  if (port.protocol !== 'TCP') return Object.freeze({ protocol: 'tcp', source: `protocol ${port.protocol} (the proxy carries TCP only)` })
  if (port.appProtocol !== null) {
    const value = port.appProtocol.toLowerCase()
    const known = KUBERNETES_APP_PROTOCOLS.get(value) ?? (value === GRPC_WEB ? 'detect' : PROTOCOLS.get(value))
    const source = `appProtocol "${port.appProtocol}"`
    if (known !== undefined) return Object.freeze({ protocol: known, source: value === GRPC_WEB ? `${source} (gRPC-Web: HTTP/1.1 or HTTP/2, detected)` : source })
    return Object.freeze({ protocol: 'detect', source: `${source} (not a protocol Ferry knows)` })
  }
  if (port.name !== null) {
    const name = port.name.toLowerCase()
    const source = `port name "${port.name}"`
    if (name.startsWith(GRPC_WEB)) return Object.freeze({ protocol: 'detect', source: `${source} (gRPC-Web: HTTP/1.1 or HTTP/2, detected)` })
    const dash = name.indexOf('-')
    const known = PROTOCOLS.get(dash < 0 ? name : name.slice(0, dash))
    if (known !== undefined) return Object.freeze({ protocol: known, source })
  }
  return UNDECLARED
}

/** No appProtocol, no known name prefix. */
export const UNDECLARED: PortProtocol = Object.freeze({ protocol: 'detect', source: 'no appProtocol or known port-name prefix' })
