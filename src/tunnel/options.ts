import { ferryError } from '../errors'
import type { Svid } from '../identity/svid'
import { TunnelAdmission } from './admission'
import { NodeBufferBudget } from './buffer-budget'
import { TUNNEL_DEFAULTS } from './defaults'
import type { RefusalHook } from './refusal'
import type { TunnelRequest } from './server-stream'

// Options of the server and the pool, validated once at construction: an unknown name
// or an out-of-range value is FERRY_ERR_INVALID_ARG naming it; the result is frozen.

interface Tuning {
  /** HTTP/2 SETTINGS_INITIAL_WINDOW_SIZE (65535 … 2^31-1). */
  readonly streamWindowBytes?: number
  /** Connection receive window (65535 … 2^31-1). */
  readonly connectionWindowBytes?: number
  /** SETTINGS_MAX_FRAME_SIZE (16384 … 16777215). */
  readonly maxFrameBytes?: number
  readonly pingTimeoutMs?: number
  /** Clock for certificate validity checks (tests). */
  readonly now?: () => number
  /**
   * The node's tunnel buffer budget (buffer-budget.ts), shared by the server, the pool and
   * every worker's: NodeBufferBudget.create() once, attach() elsewhere. Default: one of
   * this object's own, with TUNNEL_DEFAULTS' limits.
   */
  readonly bufferBudget?: NodeBufferBudget
}

export interface TunnelServerOptions extends Tuning {
  /** The certificate to present for an SNI (see sni.ts), or null to refuse the handshake. */
  readonly selectSvid: (servername: string) => Svid | null
  /** Each CONNECT stream from a verified peer: answer with accept() or refuse(status). */
  readonly onStream: (request: TunnelRequest) => void
  readonly onRefused?: RefusalHook
  readonly handshakeTimeoutMs?: number
  /** Accept → first byte from the client, or it is reset. */
  readonly firstByteTimeoutMs?: number
  /**
   * Who may start a handshake (admission.ts): node-wide, shared by every tunnel server of
   * the node. Default: one of this server's own, with TUNNEL_DEFAULTS' limits.
   */
  readonly admission?: TunnelAdmission
  /** A session with no stream this long is closed. */
  readonly idleTimeoutMs?: number
  readonly decisionTimeoutMs?: number
  readonly maxConcurrentStreams?: number
  readonly maxHeaderListBytes?: number
}

export interface TunnelPoolOptions extends Tuning {
  readonly onRefused?: RefusalHook
  readonly openTimeoutMs?: number
  /** A pooled session with no stream this long is closed. */
  readonly idleTimeoutMs?: number
  /** Streams per session at most (also capped by the server's SETTINGS_MAX_CONCURRENT_STREAMS). */
  readonly maxStreamsPerSession?: number
}

type Kind = 'fn' | 'ms' | 'count' | 'window' | 'frame' | 'bytes' | 'admission' | 'budget'

const TUNING: Record<keyof Tuning, Kind> = {
  streamWindowBytes: 'window', connectionWindowBytes: 'window', maxFrameBytes: 'frame', pingTimeoutMs: 'ms', now: 'fn', bufferBudget: 'budget'
}
const SERVER: Record<keyof TunnelServerOptions, Kind> = {
  ...TUNING, selectSvid: 'fn', onStream: 'fn', onRefused: 'fn', handshakeTimeoutMs: 'ms', firstByteTimeoutMs: 'ms', admission: 'admission', idleTimeoutMs: 'ms', decisionTimeoutMs: 'ms', maxConcurrentStreams: 'count', maxHeaderListBytes: 'bytes'
}
const POOL: Record<keyof TunnelPoolOptions, Kind> = {
  ...TUNING, onRefused: 'fn', openTimeoutMs: 'ms', idleTimeoutMs: 'ms', maxStreamsPerSession: 'count'
}

const noRefusalHook: RefusalHook = () => {}

export interface TuningSettings {
  readonly streamWindowBytes: number
  readonly connectionWindowBytes: number
  readonly maxFrameBytes: number
  readonly pingTimeoutMs: number
  readonly now: () => number
  readonly bufferBudget: NodeBufferBudget
}

export interface ServerSettings extends TuningSettings {
  readonly selectSvid: (servername: string) => Svid | null
  readonly onStream: (request: TunnelRequest) => void
  readonly onRefused: RefusalHook
  readonly handshakeTimeoutMs: number
  readonly firstByteTimeoutMs: number
  readonly admission: TunnelAdmission
  readonly idleTimeoutMs: number
  readonly decisionTimeoutMs: number
  readonly maxConcurrentStreams: number
  readonly maxHeaderListBytes: number
}

export interface PoolSettings extends TuningSettings {
  readonly onRefused: RefusalHook
  readonly openTimeoutMs: number
  readonly idleTimeoutMs: number
  readonly maxStreamsPerSession: number
}

export function serverSettings (opts: TunnelServerOptions): ServerSettings {
  check('TunnelServer', opts, SERVER)
  if (typeof opts.selectSvid !== 'function' || typeof opts.onStream !== 'function') {
    throw ferryError('FERRY_ERR_INVALID_ARG', 'TunnelServer needs selectSvid and onStream functions')
  }
  return Object.freeze({
    ...tuning(opts),
    selectSvid: opts.selectSvid,
    onStream: opts.onStream,
    onRefused: opts.onRefused ?? noRefusalHook,
    handshakeTimeoutMs: opts.handshakeTimeoutMs ?? TUNNEL_DEFAULTS.handshakeTimeoutMs,
    firstByteTimeoutMs: opts.firstByteTimeoutMs ?? TUNNEL_DEFAULTS.firstByteTimeoutMs,
    admission: opts.admission ?? TunnelAdmission.create(),
    idleTimeoutMs: opts.idleTimeoutMs ?? TUNNEL_DEFAULTS.serverIdleTimeoutMs,
    decisionTimeoutMs: opts.decisionTimeoutMs ?? TUNNEL_DEFAULTS.decisionTimeoutMs,
    maxConcurrentStreams: opts.maxConcurrentStreams ?? TUNNEL_DEFAULTS.maxConcurrentStreams,
    maxHeaderListBytes: opts.maxHeaderListBytes ?? TUNNEL_DEFAULTS.maxHeaderListBytes
  })
}

export function poolSettings (opts: TunnelPoolOptions = {}): PoolSettings {
  check('TunnelPool', opts, POOL)
  return Object.freeze({
    ...tuning(opts),
    onRefused: opts.onRefused ?? noRefusalHook,
    openTimeoutMs: opts.openTimeoutMs ?? TUNNEL_DEFAULTS.openTimeoutMs,
    idleTimeoutMs: opts.idleTimeoutMs ?? TUNNEL_DEFAULTS.clientIdleTimeoutMs,
    maxStreamsPerSession: opts.maxStreamsPerSession ?? TUNNEL_DEFAULTS.maxConcurrentStreams
  })
}

function tuning (opts: Tuning): TuningSettings {
  return {
    streamWindowBytes: opts.streamWindowBytes ?? TUNNEL_DEFAULTS.streamWindowBytes,
    connectionWindowBytes: opts.connectionWindowBytes ?? TUNNEL_DEFAULTS.connectionWindowBytes,
    maxFrameBytes: opts.maxFrameBytes ?? TUNNEL_DEFAULTS.maxFrameBytes,
    pingTimeoutMs: opts.pingTimeoutMs ?? TUNNEL_DEFAULTS.pingTimeoutMs,
    now: opts.now ?? Date.now,
    bufferBudget: opts.bufferBudget ?? NodeBufferBudget.create(opts.streamWindowBytes === undefined
      ? {}
      : { maxWindowBytes: opts.streamWindowBytes, minWindowBytes: Math.min(TUNNEL_DEFAULTS.minStreamWindowBytes, opts.streamWindowBytes) })
  }
}

const MAX_INT31 = 2 ** 31 - 1
const INSTANCES = { admission: TunnelAdmission, budget: NodeBufferBudget } as const
const RANGES: Record<Exclude<Kind, 'fn' | 'admission' | 'budget'>, [number, number]> = {
  ms: [1, MAX_INT31],
  count: [1, MAX_INT31],
  bytes: [1, MAX_INT31],
  window: [65_535, MAX_INT31],
  frame: [16_384, 16_777_215]
}

function check (what: string, opts: object, spec: Record<string, Kind>): void {
  if (typeof opts !== 'object' || opts === null) throw ferryError('FERRY_ERR_INVALID_ARG', `${what} options must be an object`)
  for (const [name, value] of Object.entries(opts)) {
    const kind = spec[name]
    if (kind === undefined) throw ferryError('FERRY_ERR_INVALID_ARG', `${what}: unknown option "${name}" (known: ${Object.keys(spec).join(', ')})`)
    if (value === undefined) continue
    if (kind === 'fn') {
      if (typeof value !== 'function') throw ferryError('FERRY_ERR_INVALID_ARG', `${what}: option "${name}" must be a function`)
      continue
    }
    if (kind === 'admission' || kind === 'budget') {
      const cls = INSTANCES[kind]
      if (!(value instanceof cls)) throw ferryError('FERRY_ERR_INVALID_ARG', `${what}: option "${name}" must be a ${cls.name}`)
      continue
    }
    const [min, max] = RANGES[kind]
    if (!Number.isInteger(value) || value < min || value > max) {
      throw ferryError('FERRY_ERR_INVALID_ARG', `${what}: option "${name}" is ${String(value)}: expected an integer from ${min} to ${max}`)
    }
  }
}
