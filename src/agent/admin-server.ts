import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { ferryError } from '../errors'
import type { ProxyMetrics } from '../telemetry/metrics'
import type { Logger } from '../telemetry/logger'
import type { PodEnroller } from './enroller'
import type { NodeIdentities } from './identities'
import type { NodeTunnel } from './node-tunnel'

// The agent's HTTP endpoints, in the node's network namespace on 0.0.0.0:
//   admin :15020  GET /metrics      Prometheus text (the agent's own registry)
//                 GET /debug/pods   JSON: enrolled pods, their listeners, pending pods
//                 GET /debug/tunnel JSON: the tunnel's port, server and pool counts
//                                   ({"enabled":false} without a CA)
//   ready :15021  GET /healthz/ready 200 {"ready":true,"generation":N,"enrolled":[uids],"pending":[]}
//                                   503 same shape while the snapshot is not loaded or a
//                                   local meshed pod is not enrolled.
//                                   With a CA, also "certificates": {"ready","identities":[ids],
//                                   "pending":[{spiffeId,state,attempts,code?,error?}]}, and 503
//                                   until every enrolled pod's identity has a valid certificate

export const ADMIN_HOST = '0.0.0.0'

export interface AdminServers {
  readonly adminPort: number
  readonly readyPort: number
  close (): Promise<void>
}

export async function startAdminServers (o: { adminPort: number, readyPort: number, metrics: ProxyMetrics, enroller: PodEnroller, identities: NodeIdentities | null, tunnel: NodeTunnel | null, log: Logger }): Promise<AdminServers> {
  const admin = createServer((req, res) => { route(req, res, o, ADMIN_ROUTES) })
  const ready = createServer((req, res) => { route(req, res, o, READY_ROUTES) })
  await listen(admin, o.adminPort, '--admin-port')
  try {
    await listen(ready, o.readyPort, '--ready-port')
  } catch (err) {
    await close(admin)
    throw err
  }
  return {
    adminPort: (admin.address() as AddressInfo).port,
    readyPort: (ready.address() as AddressInfo).port,
    close: async () => { await Promise.all([close(admin), close(ready)]) }
  }
}

type Deps = Parameters<typeof startAdminServers>[0]
type Handler = (deps: Deps, res: ServerResponse) => Promise<void> | void

const ADMIN_ROUTES: Record<string, Handler> = {
  '/metrics': async ({ metrics }, res) => {
    const text = await metrics.text()
    res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text)
  },
  '/debug/pods': ({ enroller }, res) => {
    const pods = enroller.enrolledPods().map((e) => ({
      uid: e.plan.pod.uid,
      name: e.plan.pod.name,
      namespace: e.plan.pod.namespace,
      podIPs: e.plan.pod.podIPs,
      netns: e.plan.location.netnsPath,
      netnsCookie: e.netns.cookie.toString(),
      cgroup: e.plan.location.cgroupPath,
      excludeOutboundPorts: e.plan.excludeOutboundPorts,
      excludeInboundPorts: e.plan.excludeInboundPorts,
      listeners: e.servers.map((s) => s.address()),
      enrolledAt: e.enrolledAt
    }))
    json(res, 200, { generation: enroller.status().generation, pods, pending: enroller.status().pending })
  },
  '/debug/tunnel': ({ tunnel }, res) => {
    json(res, 200, tunnel === null ? { enabled: false } : { enabled: true, ...tunnel.stats() })
  }
}

const READY_ROUTES: Record<string, Handler> = {
  '/healthz/ready': ({ enroller, identities }, res) => {
    const s = enroller.status()
    const body = { ready: s.ready, generation: s.generation, enrolled: s.enrolled, pending: s.pending.map((p) => p.uid) }
    if (identities === null) {
      json(res, s.ready ? 200 : 503, body)
      return
    }
    const certificates = identities.certificates(enroller.enrolledPods().map((e) => e.plan.pod))
    const ready = s.ready && certificates.ready
    json(res, ready ? 200 : 503, { ...body, ready, certificates })
  }
}

function route (req: IncomingMessage, res: ServerResponse, deps: Deps, routes: Record<string, Handler>): void {
  const path = (req.url ?? '/').split('?')[0]
  const handler = routes[path]
  if (handler === undefined || (req.method !== 'GET' && req.method !== 'HEAD')) {
    json(res, handler === undefined ? 404 : 405, { error: handler === undefined ? 'not found' : 'method not allowed', paths: Object.keys(routes) })
    return
  }
  Promise.resolve(handler(deps, res)).catch((err) => {
    deps.log.error({ err, path }, 'admin handler failed')
    if (!res.headersSent) json(res, 500, { error: 'internal error' })
  })
}

function json (res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body))
}

async function listen (server: Server, port: number, option: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      reject(ferryError('FERRY_ERR_INVALID_ARG', `${option} ${port}: cannot listen on ${ADMIN_HOST}:${port}: ${err.message}`, { cause: err, errno: err.code }))
    })
    server.listen({ host: ADMIN_HOST, port }, resolve)
  })
}

async function close (server: Server): Promise<void> {
  server.closeAllConnections()
  await new Promise<void>((resolve) => { server.close(() => { resolve() }) })
}
