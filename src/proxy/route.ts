import type { SocketAddr } from '../telemetry/connection-record'
import type { Conn } from './conn'
import { workloadRef } from './identify'
import type { Routes } from './route-table'

// Route stage. Outbound: a Service VIP:port goes to one of its endpoints (balanced);
// any other destination passes through unchanged. Inbound: always the original
// destination, on the pod's own address.
// Returns the address to connect to, or null when a Service has no endpoints.
// A connection balancer that counts open connections (least_request) is told when the
// source's connection closes.

export function routeOutbound (conn: Conn, routes: Routes): SocketAddr | null {
  const dst = conn.originalDst!
  const entry = routes.index.lookup(dst.address, dst.port)
  if (entry === undefined) {
    conn.endpoint = dst
    const pod = routes.index.podByIP(dst.address)
    if (pod !== undefined) conn.destination = workloadRef(pod)
    return dst
  }
  conn.service = entry.serviceName
  const ep = routes.pick(entry.key)
  if (ep === null) return null
  // A balancer that counts open connections hears when this one ends, however it ends.
  const release = routes.releaseFor?.(entry.key) ?? null
  if (release !== null && conn.downstream !== null) conn.downstream.once('close', () => { release(ep) })
  conn.endpoint = { address: ep.address, port: ep.port, family: ep.family }
  conn.destination = workloadRef(ep.pod)
  return conn.endpoint
}

export function routeInbound (conn: Conn, routes: Routes): SocketAddr {
  const dst = conn.originalDst!
  conn.endpoint = dst
  const entry = routes.index.serviceForEndpoint(dst.address, dst.port)
  if (entry !== undefined) conn.service = entry.serviceName
  return dst
}
