import { chmodSync, lstatSync, mkdirSync, rmSync, statSync } from 'node:fs'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { dirname } from 'node:path'
import { Counter, type Registry } from 'prom-client'
import { ferryError, type FerryError, isFerryError } from '../errors'
import type { Logger } from '../telemetry/logger'
import { CNI_ROUTES, type CniCommand, type CniPodRequest, MAX_REQUEST_BYTES, parsePodRequest, podName } from './protocol'

// The agent's end of the ferry-cni plugin's requests (src/cni/protocol.ts): an HTTP/1.1
// server on a unix socket. Only root on the host reaches it: the socket is mode 0600,
// owned by the agent's uid 0, in a directory the agent creates 0700 when it is missing
// (Node cannot check a unix peer's credentials without reading its internals; the file
// mode is the access check, as for containerd's own socket). Anything that is not a
// well-formed request of the protocol is refused (404, 405, 413, 400) before the handler
// sees it. Each request is counted (ferry_cni_requests_total{command,result}) and logged.
// Closing (the agent's SIGTERM) ends the requests in progress without an answer: the
// plugin then retries until its timeout, so a pod's ADD carries over to the next agent.

export const CNI_METRIC_NAMES = Object.freeze({ requests: 'ferry_cni_requests_total' })

/** What the handler answers; a refusal is a thrown FerryError. */
export interface CniAnswer { readonly result: 'enrolled' | 'not-meshed' | 'forgotten' }

export interface CniHandler {
  /** Serves one request; `signal` aborts at the request's deadline (shortly before the plugin stops waiting). */
  handle: (req: CniPodRequest, signal: AbortSignal) => Promise<CniAnswer>
  /** The server is stopping: waits end now (answered 503). */
  close: () => void
}

export interface CniServer {
  readonly socketPath: string
  /** Stops accepting, ends the waits in progress, removes the socket. */
  close: () => Promise<void>
}

type Result = 'enrolled' | 'not_meshed' | 'forgotten' | 'failed' | 'timeout' | 'invalid'

/** The answer reaches the plugin before its own timeout: a tenth of it, at most a second, earlier. */
export function answerWithinMs (timeoutMs: number): number {
  return Math.max(1, timeoutMs - Math.min(1000, Math.floor(timeoutMs / 10)))
}

export async function startCniServer (o: { socketPath: string, handler: CniHandler, log: Logger, registry: Registry }): Promise<CniServer> {
  const { socketPath, handler, log } = o
  const requests = new Counter({ name: CNI_METRIC_NAMES.requests, help: 'Requests from the ferry-cni plugin, by command (add, del, check) and result (enrolled, not_meshed, forgotten, failed, timeout, invalid)', labelNames: ['command', 'result'], registers: [o.registry] })
  prepareSocketPath(socketPath)
  const inFlight = new Set<AbortController>()
  const server = createServer((req, res) => {
    const started = Date.now()
    const stop = new AbortController()
    inFlight.add(stop)
    serve(req, res, handler, stop.signal).finally(() => { inFlight.delete(stop) }).then(({ command, result, request, error }) => {
      requests.inc({ command: command ?? 'unknown', result })
      const fields = { command, result, pod: request === null ? undefined : podName(request), uid: request?.uid ?? undefined, containerId: request?.containerId, netns: request?.netns, podIPs: request?.podIPs, ms: Date.now() - started }
      if (error === null) log.info(fields, 'cni request')
      else log.warn({ ...fields, code: error.code, err: error.message }, 'cni request refused')
    }, (err: unknown) => { log.error({ err }, 'cni request handler failed') })
  })
  server.headersTimeout = 5000
  server.requestTimeout = 0 // an ADD lasts as long as the plugin's timeout; the handler bounds it
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => { reject(ferryError('FERRY_ERR_LISTEN', `--cni-socket ${socketPath}: cannot listen: ${err.message}`, { cause: err, errno: err.code })) })
    server.listen(socketPath, () => { resolve() })
  })
  chmodSync(socketPath, 0o600)
  const inode = statSync(socketPath).ino
  log.info({ socket: socketPath }, 'cni server listening')
  let closed: Promise<void> | null = null
  return {
    socketPath,
    close: async () => {
      closed ??= (async () => {
        const done = new Promise<void>((resolve) => { server.close(() => { resolve() }) })
        handler.close()
        for (const stop of inFlight) stop.abort()
        server.closeAllConnections()
        await done
        // Only our own socket: a newer agent may already listen at the path.
        try { if (statSync(socketPath).ino === inode) rmSync(socketPath) } catch {}
      })()
      await closed
    }
  }
}

/** The socket's directory (made 0700 when missing) and no stale socket of an earlier agent; anything else at the path is refused. */
function prepareSocketPath (path: string): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 })
  let isSocket: boolean
  try {
    isSocket = lstatSync(path).isSocket()
  } catch {
    return
  }
  if (!isSocket) throw ferryError('FERRY_ERR_INVALID_ARG', `--cni-socket ${path}: something that is not a socket is in the way`)
  rmSync(path)
}

interface Served { command: CniCommand | null, result: Result, request: CniPodRequest | null, error: FerryError | null }

async function serve (req: IncomingMessage, res: ServerResponse, handler: CniHandler, closing: AbortSignal): Promise<Served> {
  const command = (CNI_ROUTES as Record<string, CniCommand | undefined>)[req.url ?? ''] ?? null
  const refuse = (status: number, error: FerryError, result: Result, request: CniPodRequest | null = null): Served => {
    reply(res, status, { error: error.message, code: error.code })
    return { command, result, request, error }
  }
  if (command === null) { req.resume(); return refuse(404, ferryError('FERRY_ERR_CNI', `unknown path ${String(req.url).slice(0, 64)}`), 'invalid') }
  if (req.method !== 'POST') { req.resume(); return refuse(405, ferryError('FERRY_ERR_CNI', `${String(req.method)} is not POST`), 'invalid') }
  let body: unknown
  try {
    body = JSON.parse(await readBody(req))
  } catch (err) {
    return refuse(isFerryError(err) ? 413 : 400, isFerryError(err) ? err : ferryError('FERRY_ERR_CNI', 'malformed CNI request: the body is not JSON'), 'invalid')
  }
  let request: CniPodRequest
  try {
    request = parsePodRequest(command, body)
  } catch (err) {
    return refuse(400, err as FerryError, 'invalid')
  }
  const deadline = AbortSignal.timeout(answerWithinMs(request.timeoutMs))
  const signal = AbortSignal.any([deadline, closing])
  try {
    const answer = await handler.handle(request, signal)
    if (closing.aborted) throw ferryError('FERRY_ERR_CNI', 'the agent is shutting down')
    reply(res, 200, { result: answer.result })
    return { command, result: answer.result === 'not-meshed' ? 'not_meshed' : answer.result, request, error: null }
  } catch (err) {
    const error = isFerryError(err) ? err : ferryError('FERRY_ERR_CNI', `unexpected failure: ${(err as Error).message}`, { cause: err })
    // Shutting down: no answer (the connection is closed), so the plugin asks the next agent.
    if (closing.aborted) return { command, result: 'failed', request, error: ferryError('FERRY_ERR_CNI', `unanswered: the agent is shutting down (${error.message})`) }
    return refuse(deadline.aborted ? 504 : 409, error, deadline.aborted ? 'timeout' : 'failed', request)
  }
}

async function readBody (req: IncomingMessage): Promise<string> {
  return await new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    req.on('data', (c: Buffer) => {
      size += c.length
      if (size > MAX_REQUEST_BYTES) {
        req.pause()
        reject(ferryError('FERRY_ERR_CNI', `malformed CNI request: the body is larger than ${MAX_REQUEST_BYTES} bytes`))
        return
      }
      chunks.push(c)
    })
    req.on('end', () => { resolve(Buffer.concat(chunks).toString('utf8')) })
    req.on('error', reject)
  })
}

function reply (res: ServerResponse, status: number, body: Record<string, unknown>): void {
  const text = `${JSON.stringify(body)}\n`
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), connection: 'close' })
  res.end(text)
}
