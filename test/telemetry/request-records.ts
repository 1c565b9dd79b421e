import type { ConnectionRecord } from '../../src/telemetry/connection-record'
import type { PodDirectory, PodLike } from '../../src/telemetry/istio-labels'
import type { HttpRequestRecord } from '../../src/telemetry/request-record'

// Records and pods shared by the telemetry tests: a "web" pod (v1) calling the "cart"
// Service, whose two pods carry Istio's canonical labels in different spellings.

export const WEB: PodLike = { name: 'web-1', namespace: 'shop', workload: 'web', labels: { app: 'web', version: 'v1' } }
export const CART_A: PodLike = { name: 'cart-a', namespace: 'shop', workload: 'cart', labels: { 'app.kubernetes.io/name': 'cart', 'app.kubernetes.io/version': '2.0' } }
export const CART_B: PodLike = {
  name: 'cart-b',
  namespace: 'shop',
  workload: 'cart',
  labels: { app: 'cart', version: 'v2', 'service.istio.io/canonical-name': 'cart-svc', 'service.istio.io/canonical-revision': 'canary' }
}
export const WEB_ID = 'spiffe://cluster.local/ns/shop/sa/web'
export const CART_ID = 'spiffe://cluster.local/ns/shop/sa/cart'

const byIP = new Map<string, PodLike>([['10.244.0.5', WEB], ['10.244.1.7', CART_A], ['10.244.1.8', CART_B]])
export const PODS: PodDirectory = {
  podByName: (ns, name) => [...byIP.values()].find((p) => p.namespace === ns && p.name === name),
  podByIP: (ip) => byIP.get(ip)
}

export function conn (over: Partial<ConnectionRecord> = {}): ConnectionRecord {
  return {
    direction: 'outbound',
    source: { pod: 'web-1', namespace: 'shop', workload: 'web', ip: '10.244.0.5', port: 40000 },
    originalDst: { address: '10.96.0.20', port: 8080, family: 4 },
    service: 'cart.shop',
    endpoint: { address: '10.244.1.7', port: 8080, family: 4 },
    destination: { pod: 'cart-a', namespace: 'shop', workload: 'cart' },
    sourcePrincipal: WEB_ID,
    destinationPrincipal: CART_ID,
    mtls: true,
    result: null,
    errorCode: null,
    errorReason: null,
    bytesReceived: () => 0,
    bytesSent: () => 0,
    durationMs: () => 1,
    telemetry: null,
    ...over
  }
}

export function request (over: Partial<HttpRequestRecord> = {}): HttpRequestRecord {
  return {
    reporter: 'source',
    conn: conn(),
    protocol: 'http',
    httpVersion: '1.1',
    method: 'GET',
    authority: 'cart.shop:8080',
    path: '/items',
    responseCode: 200,
    grpcStatus: null,
    responseFlags: '-',
    durationMs: 3,
    requestBytes: 0,
    responseBytes: 120,
    upstream: { address: '10.244.1.7', port: 8080, family: 4 },
    traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
    requestId: 'req-1',
    ...over
  }
}
