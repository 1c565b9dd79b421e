import { spawn } from 'node:child_process'
import { request } from 'node:http'
import { connect, isIP } from 'node:net'
import type * as grpc from '@grpc/grpc-js'
import { expand } from '../container-env'
import type { LabContainer, LabProbeHandler } from '../manifest/spec'
import { podProcessArgv } from '../spawn'
import type { PlanContainer, PlanPod } from '../topology'

// One run of a probe, as the kubelet makes it (pkg/kubelet/prober): the network probes
// are made by this process — the kubelet, in its own cgroup and the node's network
// namespace — to the pod's IP unless the probe names a host; the node's routes give
// them the node's address as their source. Success is:
//   httpGet    a response with status 200–399 in time (User-Agent kube-probe/<version>,
//              Accept */*, the probe's headers, no keep-alive; redirects not followed)
//   tcpSocket  the connection is accepted in time (then closed)
//   grpc       grpc.health.v1.Health/Check answers SERVING in time (plaintext)
//   exec       the command exits 0 in time; it runs in the container's cgroup and
//              network namespace with the container's environment, as `ferry lab exec`
//              runs commands, its $(VAR) references expanded like the kubelet does
// Nothing here throws: every outcome is a result with a detail for the log.

export interface ProbeOutcome {
  readonly ok: boolean
  readonly detail: string
}

export interface ProbeTarget {
  readonly pod: PlanPod
  readonly container: PlanContainer
  /** The container's declared ports (named ones are looked up by name). */
  readonly ports: LabContainer['ports']
}

/** The Kubernetes minor version the lab's kubelet names in its User-Agent. */
export const KUBE_PROBE_USER_AGENT = 'kube-probe/1.31'
/** The kubelet reads at most this much of an HTTP probe's body. */
const MAX_BODY = 10 * 1024
const MAX_OUTPUT = 10 * 1024

export async function runProbe (handler: LabProbeHandler, target: ProbeTarget, timeoutMs: number): Promise<ProbeOutcome> {
  switch (handler.kind) {
    case 'httpGet': {
      const port = resolvePort(handler.port, target)
      if (typeof port === 'string') return { ok: false, detail: port }
      return await httpProbe(handler.host ?? target.pod.ipv4, port, handler.path, handler.headers, timeoutMs)
    }
    case 'tcpSocket': {
      const port = resolvePort(handler.port, target)
      if (typeof port === 'string') return { ok: false, detail: port }
      return await tcpProbe(handler.host ?? target.pod.ipv4, port, timeoutMs)
    }
    case 'grpc':
      return await grpcProbe(target.pod.ipv4, handler.port, handler.service ?? '', timeoutMs)
    case 'exec':
      return await execProbe(target, handler.command, timeoutMs)
  }
}

/** The port number, or why there is none. */
function resolvePort (port: number | string, target: ProbeTarget): number | string {
  if (typeof port === 'number') return port
  const found = target.ports.find((p) => p.name === port)
  return found === undefined ? `couldn't find port ${port} in container ${target.container.name}` : found.containerPort
}

function hostPort (host: string, port: number): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`
}

export async function httpProbe (host: string, port: number, path: string, headers: ReadonlyArray<{ name: string, value: string }>, timeoutMs: number): Promise<ProbeOutcome> {
  const url = `http://${hostPort(host, port)}${path}`
  const h: Record<string, string> = { 'user-agent': KUBE_PROBE_USER_AGENT, accept: '*/*', connection: 'close' }
  for (const x of headers) h[x.name.toLowerCase()] = x.value
  return await new Promise((resolve) => {
    let done = false
    const finish = (o: ProbeOutcome): void => { if (!done) { done = true; clearTimeout(timer); req.destroy(); resolve(o) } }
    const req = request({ host, port, path, method: 'GET', headers: h, agent: false }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => { if (body.length < MAX_BODY) body += chunk })
      res.on('end', () => {
        const status = res.statusCode ?? 0
        const ok = status >= 200 && status < 400
        finish({ ok, detail: `GET ${url}: HTTP ${status}${ok ? '' : `: ${body.trim().slice(0, 200)}`}` })
      })
      res.on('error', (e) => finish({ ok: false, detail: `GET ${url}: ${e.message}` }))
    })
    const timer = setTimeout(() => finish({ ok: false, detail: `GET ${url}: no answer within ${timeoutMs} ms` }), timeoutMs)
    req.on('error', (e) => finish({ ok: false, detail: `GET ${url}: ${e.message}` }))
    req.end()
  })
}

export async function tcpProbe (host: string, port: number, timeoutMs: number): Promise<ProbeOutcome> {
  const where = hostPort(host, port)
  return await new Promise((resolve) => {
    const socket = connect({ host, port })
    const finish = (o: ProbeOutcome): void => { clearTimeout(timer); socket.destroy(); resolve(o) }
    const timer = setTimeout(() => finish({ ok: false, detail: `dial tcp ${where}: no answer within ${timeoutMs} ms` }), timeoutMs)
    socket.once('connect', () => finish({ ok: true, detail: `dial tcp ${where}: connected` }))
    socket.once('error', (e) => finish({ ok: false, detail: `dial tcp ${where}: ${e.message}` }))
  })
}

type HealthClient = grpc.Client & { Check: (req: { service: string }, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: { status: string }) => void) => void }
type HealthClientConstructor = new (address: string, creds: grpc.ChannelCredentials, options?: grpc.ChannelOptions) => HealthClient
let health: { grpc: typeof grpc, Client: HealthClientConstructor } | null = null

/**
 * gRPC and the health service's client (proto/grpc/health/v1/health.proto), loaded on
 * the first gRPC probe: a kubelet whose pods probe otherwise starts without them.
 */
function healthClient (): { grpc: typeof grpc, Client: HealthClientConstructor } {
  if (health === null) {
    const { loadProtoPackage } = require('../../identity/protos') as typeof import('../../identity/protos')
    health = { grpc: require('@grpc/grpc-js') as typeof grpc, Client: loadProtoPackage(['grpc/health/v1/health.proto']).grpc.health.v1.Health as HealthClientConstructor }
  }
  return health
}

export async function grpcProbe (host: string, port: number, service: string, timeoutMs: number): Promise<ProbeOutcome> {
  const where = hostPort(host, port)
  const { grpc, Client } = healthClient()
  // A fresh channel per probe, as the kubelet dials one per probe: nothing is kept open
  // between probes, and each probe is a new connection from this process.
  const client = new Client(where, grpc.credentials.createInsecure(), { 'grpc.enable_retries': 0, 'grpc.use_local_subchannel_pool': 1 })
  return await new Promise((resolve) => {
    client.Check({ service }, { deadline: Date.now() + timeoutMs }, (err, res) => {
      client.close()
      if (err !== null) {
        resolve({ ok: false, detail: `gRPC health ${where} "${service}": ${err.code === grpc.status.DEADLINE_EXCEEDED ? `timeout: no answer within ${timeoutMs} ms` : err.details || err.message}` })
        return
      }
      const status = res?.status ?? 'UNKNOWN'
      resolve({ ok: status === 'SERVING', detail: `gRPC health ${where} "${service}": ${status}` })
    })
  })
}

export async function execProbe (target: ProbeTarget, command: readonly string[], timeoutMs: number): Promise<ProbeOutcome> {
  const { pod, container } = target
  const argv = podProcessArgv(pod, container.env, command.map((a) => expand(a, container.env)), container.cgroup ?? pod.cgroup)
  const shown = command.join(' ')
  return await new Promise((resolve) => {
    let out = ''
    let done = false
    const child = spawn(argv[0], argv.slice(1), { cwd: container.workingDir, stdio: ['ignore', 'pipe', 'pipe'], detached: true })
    const finish = (o: ProbeOutcome): void => { if (!done) { done = true; clearTimeout(timer); resolve(o) } }
    const collect = (b: Buffer): void => { if (out.length < MAX_OUTPUT) out += b.toString() }
    child.stdout?.on('data', collect)
    child.stderr?.on('data', collect)
    const timer = setTimeout(() => {
      // Its process group: the command and whatever it started.
      try { process.kill(-(child.pid as number), 'SIGKILL') } catch { /* gone */ }
      finish({ ok: false, detail: `exec ${shown}: timed out after ${timeoutMs} ms` })
    }, timeoutMs)
    child.on('error', (e) => finish({ ok: false, detail: `exec ${shown}: ${e.message}` }))
    child.on('close', (code, signal) => {
      const output = out.trim().slice(0, 200)
      finish({ ok: code === 0, detail: `exec ${shown}: ${signal !== null ? `killed by ${signal}` : `exit ${String(code)}`}${output === '' ? '' : `: ${output}`}` })
    })
  })
}
