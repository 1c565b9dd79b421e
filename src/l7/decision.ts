// What the node proxy does with a connection's bytes: relay them (L4, as always), or
// handle HTTP requests one by one (L7) in a given protocol. Decided per destination
// Service port at the source (engage.ts: l7ForService) and per workload port at the
// destination (l7ForWorkload), from switches (switch.ts) and the port's declared protocol
// (protocol.ts); looked up per connection through an L7Table (table.ts).

/**
 * The protocol an L7 port speaks, and the one spoken upstream (on http1 and http2 ports
 * a client speaking the other version is translated: src/http/declared.ts):
 *   http1   HTTP/1.1 (WebSocket and other Upgrades pass through as a tunnel)
 *   http2   HTTP/2 with prior knowledge (h2c)
 *   grpc    gRPC: HTTP/2 with prior knowledge, gRPC status and trailers
 *   detect  undeclared: connect upstream at once (a server-first protocol's greeting
 *           flows) and decide from the client's first bytes (an HTTP/1.x request line
 *           or the HTTP/2 preface: L7; anything else: the connection stays L4)
 *   tcp     declared not HTTP (tcp, tls, https, mongo, mysql, redis…): never L7
 */
export type L7Protocol = 'http1' | 'http2' | 'grpc' | 'detect' | 'tcp'

export const L7_PROTOCOLS: readonly L7Protocol[] = Object.freeze(['http1', 'http2', 'grpc', 'detect', 'tcp'])

export interface L7Decision {
  /** True: the proxy handles this connection's HTTP requests one by one. False: L4. */
  readonly engaged: boolean
  /** The port's protocol, declared or `detect`; reported even when not engaged. */
  readonly protocol: L7Protocol
  /** Why, for people (/debug/config, `ferry policy check`). */
  readonly reason: string
}

export function l7Decision (engaged: boolean, protocol: L7Protocol, reason: string): L7Decision {
  return Object.freeze({ engaged, protocol, reason })
}
