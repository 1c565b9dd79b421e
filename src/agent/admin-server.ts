import { closeSync } from 'node:fs'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { ClusterSnapshot } from '../discovery/model'
import { ferryError, type FerryError, isFerryError } from '../errors'
import { tcpListen } from '../native'
import { l7ConfigSection, l7ForAuthz } from '../l7/admin'
import { checkConnection, configView } from '../policy/check'
import type { HttpRequestSpec } from '../policy/http-request'
import { compilePolicySet, type PolicySet } from '../policy/policy-set'
import { emptySnapshot } from '../resources/snapshot'
import type { InboundAuthorizer } from '../proxy/authorize'
import type { AdminAuth } from './admin-auth'
import type { ProxyMetrics } from '../telemetry/metrics'
import type { Logger } from '../telemetry/logger'
import { heapFigures } from '../telemetry/heap'
import type { PodEnroller } from './enroller'
import type { SockmapReportShape } from './platform'
import type { NodeIdentities } from './identities'
import type { NodeTunnel } from './node-tunnel'
import type { WorkerSet } from './workers'
import { routeCheckLive, routesSection } from '../routing/admin'

// The agent's HTTP endpoints, in the node's network namespace on 0.0.0.0. /debug/*
// answers only authenticated callers (a bearer token: src/agent/admin-auth.ts) — 401
// without one, 403 when not allowed, 429/503 when the token cannot be checked now;
// /metrics and readiness need none (scrapers and the kubelet carry no credentials).
//   admin :15020  GET /metrics      Prometheus text (the agent's own registry)
//                 GET /debug/pods   JSON: enrolled pods, their listeners, pending pods
//                 GET /debug/certificates JSON: every identity's certificate (serial,
//                                   notBefore, notAfter, expiresInSeconds), its next request,
//                                   last attempt and failures since the last success
//                                   ({"enabled":false} without a CA)
//                 GET /debug/tunnel JSON: the tunnel's port, server and pool counts (and
//                                   each worker's, with the SecureContexts it made),
//                                   what the kernel did with SYNs to the port (kernelSyns,
//                                   null without kernel admission) ({"enabled":false}
//                                   without a CA)
//                 GET /debug/capture JSON: `sockmap`: whether the sockmap shortcut is on
//                                   ({enabled}, else also code, reason, missing: what
//                                   the kernel's BTF lacks) and sk_msg's counters
//                                   (stats: messages and bytes by the shortcut, by
//                                   direction; messages left to TCP)
//                 GET /debug/config JSON: the configuration in force (generation, origin,
//                                   files, every resource with its file and line), and
//                                   `l7`: per Service port and per port of each enrolled
//                                   pod, whether L7 is engaged, the protocol and why
//                                   (src/l7/view.ts; null before a cluster snapshot),
//                                   and `routes`: every Service port with routes, its
//                                   entries in order, unresolved references, overridden
//                                   VirtualServices (src/routing/admin.ts), and under
//                                   `workers` each worker's backends (Router.describe:
//                                   endpoints with its latency estimates, ejections, the
//                                   retry budget's window, the pool's counts and limits)
//                 GET /debug/memory JSON: RSS, and the JavaScript heap of the main thread
//                                   and of each worker (src/telemetry/heap.ts); POST runs a
//                                   full garbage collection of each thread first
//                 GET /debug/routes?from=NS/POD&to=NS/SERVICE[:PORT][&path=P&method=M&host=H&header=K=V…]
//                                   JSON: `ferry route check`'s answer from the live
//                                   configuration and cluster snapshot
//                 GET /debug/authz?from=SOURCE&to=DEST[&method=M&path=P&host=H&header=K:V…]
//                                   JSON: `ferry policy check`'s explanation, decided by
//                                   the live PolicySet for the live cluster snapshot
//                                   (src/policy/check.ts); 400/404 for names it cannot
//                                   use, 503 while no configuration is in force
//   ready :15021  GET /healthz/ready 200 {"ready":true,"generation":N,"enrolled":[uids],"pending":[]}
//                                   503 same shape until the first pass over a snapshot has
//                                   tried every local meshed pod, and while draining;
//                                   `pending` lists the pods not enrolled (yet), which
//                                   never make the node unready. With --config-dir, also
//                                   "config":{"ready","required":true,"generation":G,"reason"?,
//                                   "issues"?}, and 503 until a first valid configuration.
//                                   With a CA, also "certificates": {"ready","identities":[ids],
//                                   "pending":[{spiffeId,state,attempts,code?,error?}],
//                                   "failing":[{spiffeId,serial,notAfter,expiresInSeconds,failures,
//                                   since,code,error}]}, and 503 until every enrolled pod's
//                                   identity has a valid certificate (and again once one expired
//                                   with no successor). `failing`: renewals failing while the
//                                   certificate in hand is valid; the node stays ready on it

//
// Each server listens on a socket the addon makes (so its fd is known and can be handed
// to the next agent: src/handoff/), or on one given by fd — taken over from the agent
// before this one, already bound and listening, with its queued connections.

export const ADMIN_HOST = '0.0.0.0'

export interface AdminServers {
  readonly adminPort: number
  readonly readyPort: number
  /** The listening sockets, owned by the servers (closed by close()): lend them to a handoff, keys `admin` and `ready`. */
  readonly fds: { readonly admin: number, readonly ready: number }
  close (): Promise<void>
}

/** A listening socket to serve on instead of binding the port. */
export interface ListeningFd { readonly fd: number }

export interface AdminDeps {
  readonly adminPort: number
  readonly readyPort: number
  readonly metrics: ProxyMetrics
  /** The node's metrics: the main thread's and every worker's, summed. */
  readonly scrape: () => Promise<string>
  readonly workers: WorkerSet
  /** Why readiness answers 503 whatever else holds (a new agent is taking our sockets over), or null. */
  readonly notReady?: () => string | null
  readonly enroller: PodEnroller
  readonly identities: NodeIdentities | null
  readonly tunnel: NodeTunnel | null
  readonly log: Logger
  /** The policies in force (and whether a configuration is required). */
  readonly authz: InboundAuthorizer
  /** The live cluster snapshot (discovery's last good one), to look names up. */
  readonly cluster: () => ClusterSnapshot | null
  readonly node: string
  /** Names pods' identities in explanations (the agent's --trust-domain). */
  readonly trustDomain: string
  /** Who may read /debug/*. */
  readonly auth: AdminAuth
  /** The sockmap shortcut's state and counters, for /debug/capture (null where capture has none: test platforms). */
  readonly sockmap?: () => SockmapReportShape | null
  /** Serve on these listening sockets (e.g. taken over from the previous agent) instead of binding adminPort / readyPort. */
  readonly listeners?: { readonly admin?: ListeningFd, readonly ready?: ListeningFd }
}

/** Node's own default for net.Server. */
const ADMIN_BACKLOG = 511
/** Paths under this prefix need an authenticated caller. */
const DEBUG_PREFIX = '/debug/'

export async function startAdminServers (o: AdminDeps): Promise<AdminServers> {
  const admin = createServer((req, res) => {
    if (!(req.url ?? '/').startsWith(DEBUG_PREFIX)) { route(req, res, o, ADMIN_ROUTES); return }
    o.auth.check(req.headers.authorization).then((r) => {
      o.metrics.adminDebugRequest(r.ok ? 'ok' : String(r.status))
      if (r.ok) { route(req, res, o, ADMIN_ROUTES, DEBUG_ACTIONS); return }
      o.log.debug({ path: req.url, remote: req.socket.remoteAddress, status: r.status, reason: r.reason }, 'debug request refused')
      res.writeHead(r.status, { 'content-type': 'application/json', ...(r.status === 401 ? { 'www-authenticate': 'Bearer realm="ferry-agent"' } : {}) })
        .end(JSON.stringify({ code: 'FERRY_ERR_AUTHN', error: r.reason }))
    }, (err: unknown) => {
      o.log.error({ err, path: req.url }, 'debug request authentication failed')
      if (!res.headersSent) json(res, 500, { error: 'internal error' })
    })
  })
  const ready = createServer((req, res) => { route(req, res, o, READY_ROUTES) })
  const adminFd = await serve(admin, o.listeners?.admin ?? o.adminPort, '--admin-port')
  let readyFd: number
  try {
    readyFd = await serve(ready, o.listeners?.ready ?? o.readyPort, '--ready-port')
  } catch (err) {
    await close(admin)
    throw err
  }
  return {
    adminPort: (admin.address() as AddressInfo).port,
    readyPort: (ready.address() as AddressInfo).port,
    fds: { admin: adminFd, ready: readyFd },
    close: async () => { await Promise.all([close(admin), close(ready)]) }
  }
}

type Handler = (deps: AdminDeps, res: ServerResponse, query: URLSearchParams) => Promise<void> | void

const ADMIN_ROUTES: Record<string, Handler> = {
  '/metrics': async ({ metrics, scrape }, res) => {
    const text = await scrape()
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
      probePorts: e.plan.pod.probePorts,
      listeners: e.addresses,
      workers: e.listeners.length,
      enrolledAt: e.enrolledAt
    }))
    json(res, 200, { generation: enroller.status().generation, pods, pending: enroller.status().pending })
  },
  '/debug/certificates': ({ identities, node }, res) => {
    if (identities === null) { json(res, 200, { enabled: false, node }); return }
    json(res, 200, { enabled: true, node, certificates: identities.details() })
  },
  '/debug/tunnel': async ({ tunnel, workers }, res) => {
    if (tunnel === null) { json(res, 200, { enabled: false }); return }
    const node = tunnel.stats()
    const each = await workers.tunnelStats()
    json(res, 200, { enabled: true, ...node, ...each, buffers: { ...node.buffers, heldBytes: each.workers.reduce((n, w) => n + w.heldBytes, 0) } })
  },
  '/debug/capture': ({ sockmap }, res) => {
    const r = sockmap?.() ?? null
    json(res, 200, { sockmap: r === null ? null : { ...r.status, stats: Object.fromEntries(Object.entries(r.stats).map(([k, v]) => [k, Number(v)])) } })
  },
  '/debug/workers': async ({ workers }, res) => {
    json(res, 200, { workers: await workers.stats() })
  },
  '/debug/memory': async ({ workers }, res) => {
    json(res, 200, await memoryView(workers, false))
  },
  '/debug/config': async (deps, res) => {
    const { authz, node } = deps
    const set = authz.current()
    const config = authz.readiness()
    // Each worker's backends (its own latency estimates; ejections are node-wide).
    const backends = (await deps.workers.all({ kind: 'routing' }).catch(() => [])).flatMap((r) => r.kind === 'routing' ? [{ worker: r.worker, backends: r.backends }] : [])
    json(res, set === null && config.required ? 503 : 200, { node, config, ...(set === null ? {} : configView(set.snapshot)), l7: l7ConfigSection(deps), routes: { ...(routesSection(deps.cluster(), set?.snapshot ?? null) as object), workers: backends } })
  },
  '/debug/routes': (deps, res, query) => {
    const r = routeCheckLive(deps.cluster(), deps.authz.current()?.snapshot ?? null, query)
    json(res, r.status, r.body)
  },
  '/debug/authz': (deps, res, query) => {
    const r = explainLive(deps, query.get('from'), query.get('to'), httpSpecOf(query))
    json(res, r.status, r.body)
  }
}

/** Without --config-dir no policy exists: explanations say so (allowed, no policy applies). */
const NO_CONFIG_SET: PolicySet = compilePolicySet(emptySnapshot('(no --config-dir: no policies)'))
const SUBJECT_ERRORS: Record<string, number> = { FERRY_ERR_INVALID_ARG: 400, FERRY_ERR_SPIFFE_ID: 400, FERRY_ERR_WORKLOAD_NOT_FOUND: 404 }

/** `ferry policy check` against the live PolicySet and cluster snapshot (src/policy/check.ts). */
function explainLive (deps: AdminDeps, from: string | null, to: string | null, http: HttpRequestSpec): { status: number, body: unknown } {
  if (from === null || from === '' || to === null || to === '') {
    return { status: 400, body: { code: 'FERRY_ERR_INVALID_ARG', error: 'give both from=SOURCE and to=DEST (as for ferry policy check)' } }
  }
  const config = deps.authz.readiness()
  const set = deps.authz.current() ?? (config.required ? null : NO_CONFIG_SET)
  if (set === null) return { status: 503, body: { code: 'FERRY_ERR_CONFIG', error: config.reason, config } }
  try {
    const result = checkConnection(set, from, to, { cluster: deps.cluster(), trustDomain: deps.trustDomain }, http)
    return { status: 200, body: { node: deps.node, generation: set.generation, origin: set.snapshot.origin, ...result, l7: l7ForAuthz(deps, to) } }
  } catch (err) {
    const status = isFerryError(err) ? SUBJECT_ERRORS[err.code] : undefined
    if (status === undefined || !isFerryError(err)) throw err
    return { status, body: { code: err.code, error: err.message } }
  }
}

/** The HTTP request of a /debug/authz query (method, path, host, header…), as `ferry policy check` sends it. */
function httpSpecOf (query: URLSearchParams): HttpRequestSpec {
  const one = (k: string): { [key: string]: string } => { const v = query.get(k); return v === null ? {} : { [k]: v } }
  return { ...one('method'), ...one('path'), ...one('host'), headers: query.getAll('header') }
}

/** POST /debug/* actions (an authenticated caller only). */
const DEBUG_ACTIONS: Record<string, Handler> = {
  // A drill: worker N fails as an uncaught exception would make it (its connections are
  // reset and counted, the main thread starts it again). What a failing worker costs is
  // then something an operator can see rather than believe.
  '/debug/workers/crash': async ({ workers, log }, res, query) => {
    const id = Number(query.get('worker'))
    if (!Number.isInteger(id) || workers.host(id) === null) { json(res, 400, { code: 'FERRY_ERR_INVALID_ARG', error: `worker=N names a live worker (0-${workers.size - 1})` }); return }
    log.warn({ worker: id }, 'worker crash asked for on the admin port')
    await workers.crash(id)
    json(res, 202, { worker: id, crashed: true })
  },
  // A full garbage collection of every thread, then /debug/memory's figures: memory still
  // held after it is the agent's, not garbage (what a churn run compares to its baseline).
  // Each collection pauses its thread (milliseconds for the agent's heaps).
  '/debug/memory': async ({ workers }, res) => {
    json(res, 200, await memoryView(workers, true))
  }
}

/** The agent's memory: RSS, and the heap of the main thread and of each worker (after a full collection of each when `gc`). */
async function memoryView (workers: WorkerSet, gc: boolean): Promise<unknown> {
  const main = heapFigures(gc)
  const each = await workers.memory(gc)
  const heapUsedBytes = [main, ...each.map((w) => w.heap)].reduce((n, h) => n + h.heapUsedBytes, 0)
  return { collected: gc, rssBytes: process.memoryUsage().rss, heapUsedBytes, main, workers: each }
}

const READY_ROUTES: Record<string, Handler> = {
  '/healthz/ready': ({ enroller, identities, authz, notReady }, res) => {
    // Shared with a new agent during a handoff: a probe that reaches us is not about it.
    const lent = notReady?.() ?? null
    if (lent !== null) { json(res, 503, { ready: false, reason: lent }); return }
    const s = enroller.status()
    const config = authz.readiness()
    // The config section only when the agent has a configuration source (without one, nothing to wait for).
    const body = { ready: s.ready && config.ready, generation: s.generation, enrolled: s.enrolled, pending: s.pending.map((p) => p.uid), ...(config.required ? { config } : {}) }
    if (identities === null) {
      json(res, body.ready ? 200 : 503, body)
      return
    }
    const certificates = identities.certificates(enroller.enrolledPods().map((e) => e.plan.pod))
    const ready = body.ready && certificates.ready
    json(res, ready ? 200 : 503, { ...body, ready, certificates })
  }
}

function route (req: IncomingMessage, res: ServerResponse, deps: AdminDeps, routes: Record<string, Handler>, actions: Record<string, Handler> = {}): void {
  const url = new URL(req.url ?? '/', 'http://admin')
  const path = url.pathname
  const handler = req.method === 'POST' ? actions[path] : routes[path]
  if (handler === undefined || (req.method !== 'GET' && req.method !== 'HEAD' && req.method !== 'POST')) {
    const known = routes[path] !== undefined || actions[path] !== undefined
    json(res, known ? 405 : 404, { error: known ? 'method not allowed' : 'not found', paths: Object.keys(routes) })
    return
  }
  Promise.resolve().then(() => handler(deps, res, url.searchParams)).catch((err) => {
    deps.log.error({ err, path }, 'admin handler failed')
    if (!res.headersSent) json(res, 500, { error: 'internal error' })
  })
}

function json (res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body))
}

/** Serves on the given listening fd, or on a new socket bound to ADMIN_HOST:port; returns the fd the server owns. */
async function serve (server: Server, on: number | ListeningFd, option: string): Promise<number> {
  let fd: number
  if (typeof on === 'number') {
    try {
      fd = tcpListen({ family: 4, address: ADMIN_HOST, port: on, backlog: ADMIN_BACKLOG })
    } catch (err) {
      throw ferryError('FERRY_ERR_LISTEN', `${option} ${on}: ${(err as Error).message}`, { cause: err, errno: (err as FerryError).errno })
    }
  } else {
    fd = on.fd
  }
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      if (typeof on === 'number') closeSync(fd)
      reject(ferryError('FERRY_ERR_LISTEN', `${option}: cannot serve on fd ${fd}: ${err.message}`, { cause: err, errno: err.code }))
    })
    server.listen({ fd, backlog: ADMIN_BACKLOG }, resolve)
  })
  return fd
}

async function close (server: Server): Promise<void> {
  server.closeAllConnections()
  await new Promise<void>((resolve) => { server.close(() => { resolve() }) })
}
