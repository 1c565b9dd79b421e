import { closeSync, rmSync, statSync } from 'node:fs'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { Counter, type Registry } from 'prom-client'
import { ferryError, type FerryError, isFerryError } from '../errors'
import { unixListen } from '../native'
import type { Logger } from '../telemetry/logger'
import { prepareSocketFile } from '../util/socket-file'
import { CNI_ROUTES, type CniCommand, type CniPodRequest, MAX_REQUEST_BYTES, parsePodRequest, podName } from './protocol'

// The agent's end of the ferry-cni plugin's requests (src/cni/protocol.ts): an HTTP/1.1
// server on a unix socket. Only root on the host reaches it: the socket is mode 0600
// (set before it listens), owned by the agent's uid 0, in a directory the agent creates
// 0700 when it is missing (the file mode is the access check, as for containerd's own
// socket). The listening socket is the addon's, so its fd can be handed to the next
// agent (src/handoff/), which then serves it with `listenFd`. Anything that is not a
// well-formed request of the protocol is refused (404, 405, 413, 400) before the handler
// sees it. Each request is counted (ferry_cni_requests_total{command,result}) and logged.
// Closing (the agent's SIGTERM) ends the requests in progress without an answer: the
// plugin then retries until its timeout, so a pod's ADD carries over to the next agent.

/** Node's own default for a server's backlog: pods starting at once queue their ADDs here. */
const CNI_BACKLOG = 511

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
  /** The listening socket, owned by the server (closed by close()): lend it to a handoff (src/handoff/). */
  readonly fd: number
  /**
   * Stops accepting, ends the waits in progress, removes the socket file — unless
   * `keepSocketFile`: after a handoff the next agent serves the same socket at the same
   * path, and the file is its.
   */
  close: (opts?: { keepSocketFile?: boolean }) => Promise<void>
}

type Result = 'enrolled' | 'not_meshed' | 'forgotten' | 'failed' | 'timeout' | 'invalid'

/** The answer reaches the plugin before its own timeout: a tenth of it, at most a second, earlier. */
export function answerWithinMs (timeoutMs: number): number {
  return Math.max(1, timeoutMs - Math.min(1000, Math.floor(timeoutMs / 10)))
}

export interface CniServerOptions {
  readonly socketPath: string
  readonly handler: CniHandler
  readonly log: Logger
  readonly registry: Registry
  /** Serve this listening socket, already at socketPath (taken over from the agent before this one), instead of making one. */
  readonly listenFd?: number
}

export async function startCniServer (o: CniServerOptions): Promise<CniServer> {
  const { socketPath, handler, log } = o
  const requests = new Counter({ name: CNI_METRIC_NAMES.requests, help: 'Requests from the ferry-cni plugin, by command (add, del, check) and result (enrolled, not_meshed, forgotten, failed, timeout, invalid)', labelNames: ['command', 'result'], registers: [o.registry] })
  const fd = o.listenFd ?? listenAt(socketPath)
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
    server.once('error', (err: NodeJS.ErrnoException) => {
      if (o.listenFd === undefined) closeSync(fd)
      reject(ferryError('FERRY_ERR_LISTEN', `--cni-socket ${socketPath}: cannot serve: ${err.message}`, { cause: err, errno: err.code }))
    })
    server.listen({ fd }, () => { resolve() })
  })
  const inode = statSync(socketPath).ino
  log.info({ socket: socketPath, adopted: o.listenFd !== undefined }, 'cni server listening')
  let closed: Promise<void> | null = null
  return {
    socketPath,
    fd,
    close: async (opts = {}) => {
      closed ??= (async () => {
        const done = new Promise<void>((resolve) => { server.close(() => { resolve() }) })
        handler.close()
        for (const stop of inFlight) stop.abort()
        server.closeAllConnections()
        await done
        if (opts.keepSocketFile === true) return
        // Only our own socket: a newer agent may already listen at the path.
        try { if (statSync(socketPath).ino === inode) rmSync(socketPath) } catch {}
      })()
      await closed
    }
  }
}

/**
 * A 0600 listening socket at `path` (the mode is set before it listens), in a directory
 * made 0700 when missing, replacing the stale socket of an earlier agent; anything else
 * at the path is refused. The addon makes it, so that its fd can be handed over.
 */
function listenAt (path: string): number {
  prepareSocketFile(path, (message) => ferryError('FERRY_ERR_INVALID_ARG', `--cni-socket ${message}`))
  try {
    return unixListen({ path, type: 'stream', mode: 0o600, backlog: CNI_BACKLOG })
  } catch (err) {
    throw ferryError('FERRY_ERR_LISTEN', `--cni-socket ${path}: cannot listen: ${(err as Error).message}`, { cause: err, errno: (err as FerryError).errno })
  }
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
