import { readFileSync } from 'node:fs'
import { request } from 'node:http'
import { connect as netConnect, isIP, type Socket } from 'node:net'
import { PORTS } from '../config/env'
import { ferryError } from '../errors'
import { connectInNetns, openNetns, type Netns } from '../native'
import { loadLab, resolveLabName } from './labs'
import { netnsPath } from './topology'

// Asking an agent's admin server (:15020, or its readiness port) for JSON from the host:
// `ferry policy check --lab/--agent` and the tests. A lab's agents listen in their node's
// network namespace, on the lab's underlay: not reachable from the host's namespace, and
// the host must never get an underlay address. So for a lab node the socket is made
// inside the node's namespace by the native addon (src/native/connect-in-netns.ts) and
// handed to the HTTP client as its connection, as `ferry lab status` probes readiness.
// Any other agent is dialled at the address given.

export interface AgentEndpoint {
  /** "node1 of lab shop (127.0.0.1:15020 in netns fl-shop-node1)", or "10.0.0.7:15020". */
  readonly description: string
  readonly host: string
  readonly port: number
  /** A new TCP connection to the agent's `port` (default: the admin port); connecting may take up to `timeoutMs`. */
  connect (timeoutMs: number, port?: number): Socket
  /** Releases what connect() holds open (a namespace handle). */
  close (): void
  /** The bearer token sent to /debug/* (src/agent/admin-auth.ts), when known. */
  readonly token?: string
}

export interface AgentReply {
  readonly status: number
  readonly body: any
}

/** The admin server of `node` (default: the lab's first node) of the lab named (or the only one up). */
export function labAgentEndpoint (labName: string | undefined, node: string | undefined): AgentEndpoint {
  const state = loadLab(resolveLabName(labName))
  const { plan } = state
  if (!plan.mesh) throw ferryError('FERRY_ERR_INVALID_ARG', `lab ${state.name} runs without the mesh (--no-mesh): it has no agents`)
  const n = node === undefined ? plan.nodes[0] : plan.nodes.find((x) => x.name === node)
  if (n === undefined) {
    throw ferryError('FERRY_ERR_POD_NOT_FOUND', `lab ${state.name} has no node ${String(node)} (nodes: ${plan.nodes.map((x) => x.name).join(', ')})`)
  }
  const host = '127.0.0.1'
  const port = PORTS.admin
  let ns: Netns | null = null
  const token = plan.adminTokenFile == null ? undefined : readFileSync(plan.adminTokenFile, 'utf8').trim()
  return {
    description: `${n.name} of lab ${state.name} (${host}:${port} in netns ${n.netns})`,
    ...(token === undefined ? {} : { token }),
    host,
    port,
    connect: (timeoutMs, other) => {
      ns ??= openNetns(netnsPath(plan.paths, n.netns))
      return connectInNetns(ns, { host, port: other ?? port, family: 4, timeoutMs })
    },
    close: () => { ns?.close(); ns = null }
  }
}

/** An agent at `HOST:PORT` (`[V6]:PORT` for IPv6) that this host reaches; `token`: for /debug/*. */
export function addressAgentEndpoint (text: string, token?: string): AgentEndpoint {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(text)
  const host = m?.[1] ?? m?.[2]
  const port = Number(m?.[3])
  if (host === undefined || (m?.[1] !== undefined && isIP(host) !== 6) || !(port >= 1 && port <= 65535)) {
    throw ferryError('FERRY_ERR_INVALID_ARG', `--agent "${text}" is invalid: expected HOST:PORT (e.g. 10.0.0.7:${PORTS.admin}, [fd00::7]:${PORTS.admin})`)
  }
  return {
    description: `${host.includes(':') ? `[${host}]` : host}:${port}`,
    ...(token === undefined ? {} : { token }),
    host,
    port,
    connect: (_timeoutMs, other) => netConnect({ host, port: other ?? port }),
    close: () => {}
  }
}

/** GET (or POST, for the admin port's actions) `path`; the answer's status and JSON body. FERRY_ERR_AGENT_UNAVAILABLE when there is none. */
export async function getAgentJson (endpoint: AgentEndpoint, path: string, opts: { timeoutMs: number, port?: number, method?: 'GET' | 'POST' }): Promise<AgentReply> {
  const r = await getAgentText(endpoint, path, opts)
  try {
    return { status: r.status, body: JSON.parse(r.text) }
  } catch (err) {
    throw ferryError('FERRY_ERR_AGENT_UNAVAILABLE', `agent ${endpoint.description}: answered ${String(r.status)} with a body that is not JSON`, { cause: err })
  }
}

/** getAgentJson's request, the body as text (e.g. /metrics). */
export async function getAgentText (endpoint: AgentEndpoint, path: string, opts: { timeoutMs: number, port?: number, method?: 'GET' | 'POST' }): Promise<{ status: number, text: string }> {
  const unavailable = (why: string, cause?: unknown): Error =>
    ferryError('FERRY_ERR_AGENT_UNAVAILABLE', `agent ${endpoint.description}: ${why}`, { cause })
  const port = opts.port ?? endpoint.port
  return await new Promise((resolve, reject) => {
    // No `agent` option: with one, Node ignores createConnection.
    const headers = { connection: 'close', ...(endpoint.token === undefined ? {} : { authorization: `Bearer ${endpoint.token}` }) }
    const req = request({ host: endpoint.host, port, path, method: opts.method ?? 'GET', headers, createConnection: () => endpoint.connect(opts.timeoutMs, port) }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => { text += chunk })
      res.on('error', (err) => { reject(unavailable(err.message, err)) })
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, text }) })
    })
    req.setTimeout(opts.timeoutMs, () => { req.destroy(unavailable(`no answer within ${opts.timeoutMs} ms`)) })
    req.on('error', (err: NodeJS.ErrnoException) => {
      reject(err.code === 'FERRY_ERR_AGENT_UNAVAILABLE' ? err : unavailable(`cannot connect (${err.code ?? err.message})`, err))
    })
    req.end()
  })
}
