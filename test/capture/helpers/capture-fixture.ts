import { createServer, type Server, type Socket } from 'node:net'
import { join } from 'node:path'
import pino from 'pino'
import { Capture } from '../../../src/capture'
import type { PodCaptureSpec } from '../../../src/capture'
import { connectInNetns, openNetns, type Netns } from '../../../src/native'
import { PATHS, PORTS } from '../../../src/config/env'
import { type PodEnv, type Teardownable } from './pod-env'
import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { uniqueName } from '../../helpers/names'

// An enrolled pod with the agent's side played by the test process: outbound
// listeners that answer with the original destination, inbound listeners that
// answer with their local (original destination) address.

export const silentLog = pino({ level: 'silent' })

/** A teardown step that cannot stop the next ones from running. */
export function safely (fn: () => unknown): () => Promise<void> {
  return async () => { try { await fn() } catch {} }
}

export function uniquePinRoot (t: Teardownable): string {
  const root = join(PATHS.bpffs, uniqueName('fct'))
  t.teardown(() => { if (existsSync(root)) execFileSync('rm', ['-rf', root]) })
  return root
}

/** Starts a server on a listening fd; closed by teardown. */
export async function serveFd (t: Teardownable, fd: number, onConn: (s: Socket) => void): Promise<Server> {
  const server = createServer(onConn)
  await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen({ fd }, resolve) })
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  return server
}

/** Connects from `ns` and resolves with everything received, or "error CODE" ("error TIMEOUT": no end within timeoutMs). */
export async function fetchFrom (ns: Netns, host: string, port: number, timeoutMs = 3000): Promise<string> {
  const s: Socket = connectInNetns(ns, { host, port, family: host.includes(':') ? 6 : 4, timeoutMs })
  return await new Promise((resolve) => {
    let data = ''
    const timer = setTimeout(() => { s.destroy(); resolve('error TIMEOUT') }, timeoutMs)
    const done = (result: string): void => { clearTimeout(timer); resolve(result) }
    s.on('data', (d) => { data += String(d) })
    s.on('end', () => { done(data) })
    s.on('error', (e: NodeJS.ErrnoException) => { done(`error ${e.code ?? ''}`) })
  })
}

/** Replies with a fixed text and ends. */
export function reply (text: string): (s: Socket) => void {
  return (s) => { s.on('error', () => {}); s.end(text) }
}

export interface AgentSide {
  netns: Netns
  /** Original destinations the outbound listener looked up, in order. */
  seen: Array<{ address: string, port: number } | null>
  outbound: Server[]
  inbound: Server[]
  inboundFds: { v4: number, v6: number }
}

/** The agent's per-pod listeners, inside the pod netns, as the proxy would make them. */
export async function agentSide (t: Teardownable, env: PodEnv, capture: () => Capture): Promise<AgentSide> {
  const netns = openNetns(env.podNsPath)
  t.teardown(() => netns.close())
  const seen: AgentSide['seen'] = []
  const onOutbound = (family: 4 | 6) => (s: Socket): void => {
    s.on('error', () => {})
    let dst
    try {
      dst = capture().originalDst(netns.cookie, family, s.remotePort ?? 0)
    } catch {
      s.end('outbound agent-down') // the test closed the Capture: an agent between lives
      return
    }
    seen.push(dst)
    s.end(`outbound ${dst === null ? 'none' : JSON.stringify(dst)}`)
  }
  const onInbound = (s: Socket): void => { s.on('error', () => {}); s.end(`inbound ${s.localAddress ?? ''} ${s.localPort ?? 0}`) }
  const outbound = [
    await serveFd(t, netns.listen({ family: 4, address: '127.0.0.1', port: PORTS.outbound }), onOutbound(4)),
    await serveFd(t, netns.listen({ family: 6, address: '::1', port: PORTS.outbound }), onOutbound(6))
  ]
  const v4 = netns.listen({ family: 4, address: '127.0.0.1', port: PORTS.inbound })
  const v6 = netns.listen({ family: 6, address: '::1', port: PORTS.inbound })
  const inbound = [await serveFd(t, v4, onInbound), await serveFd(t, v6, onInbound)]
  return { netns, seen, outbound, inbound, inboundFds: { v4, v6 } }
}

export function podSpec (env: PodEnv, agent: AgentSide, extra: Partial<PodCaptureSpec> = {}): PodCaptureSpec {
  return {
    uid: env.id,
    netns: agent.netns,
    cgroupPath: env.cgroupPath,
    podIPs: [env.podIP4, env.podIP6],
    excludeOutboundPorts: [],
    excludeInboundPorts: [],
    inboundListenerFds: [agent.inboundFds],
    ...extra
  }
}
