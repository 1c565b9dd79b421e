import * as grpc from '@grpc/grpc-js'
import { Counter, Gauge, type Registry } from 'prom-client'
import type { Random } from '../identity/clock'
import type { Logger } from '../telemetry/logger'
import { bearerToken, type Authenticator, type Caller } from './authn'
import { authnRefusal, Refusal } from './ca-service'
import type { ConfigVersion } from './config-feed'
import type { AgentMessage, ConfigSnapshotMessage } from './config-protos'
import { toDocumentMessage, toReportMessage } from './config-wire'

// ferry.config.v1.ConfigService/Stream, the controller's side. Each agent keeps one
// stream open:
//
//   open      authenticate the bearer token (the CA's Authenticator)   else UNAUTHENTICATED
//                                                                     (UNAVAILABLE when it cannot be checked)
//   at once   the version in force, if there is one
//   then      every newer version, as the feed makes it
//   agent     ACK(version, objects it refused itself) or NACK(version, reasons) for each
//            (a NACK: the agent could not use the snapshot at all)
//
// Per stream the controller records what it sent and what the agent answered: a log
// line per answer (a NACK at warn with the agent's reasons), counters, and a gauge of
// streams by state. A stream lives at most maxStreamAgeMs (jittered): the agent then
// reconnects with its current token, so a revoked or expired credential stops working.

export const CONFIG_SERVICE_DEFAULTS = Object.freeze({
  maxStreamAgeMs: 30 * 60_000,
  /** Fraction of maxStreamAgeMs taken off at random, so agents do not reconnect together. */
  ageJitter: 0.2
})

export const CONFIG_SERVICE_METRIC_NAMES = Object.freeze({
  version: 'ferry_controller_config_version',
  streams: 'ferry_controller_config_streams',
  responses: 'ferry_controller_config_responses_total',
  refused: 'ferry_controller_config_streams_refused_total'
})

export type AgentConfigStateName = 'pending' | 'acked' | 'nacked'

export interface AgentConfigState {
  readonly stream: number
  readonly node: string
  readonly principal: string
  readonly peer: string
  readonly connectedAt: number
  /** The last version sent on this stream. */
  readonly sent: number | null
  readonly acked: number | null
  readonly nacked: { readonly version: number, readonly reasons: readonly string[] } | null
  /** acked: the last version sent is ACKed; nacked: it is NACKed; pending: no answer to it yet. */
  readonly state: AgentConfigStateName
}

interface StreamEntry {
  state: { -readonly [K in keyof AgentConfigState]: AgentConfigState[K] }
  readonly call: grpc.ServerDuplexStream<AgentMessage, ConfigSnapshotMessage>
  readonly log: Logger
  ageTimer: NodeJS.Timeout | null
}

export interface ConfigServiceDeps {
  readonly authenticator: Authenticator
  readonly log: Logger
  readonly registry: Registry
  /** Random id of this controller process, sent with every snapshot. */
  readonly instance: string
  readonly maxStreamAgeMs?: number
  readonly random?: Random
  readonly now?: () => number
}

export class ConfigStreamService {
  private readonly streams = new Map<number, StreamEntry>()
  private nextId = 1
  private versionInForce: ConfigVersion | null = null
  private closed = false
  private readonly log: Logger
  private readonly versionGauge: Gauge
  private readonly streamsGauge: Gauge<'state'>
  private readonly responses: Counter<'result'>
  private readonly refused: Counter<'code'>

  /** `serving` false: the controller has no configuration source; streams are refused. */
  constructor (private readonly deps: ConfigServiceDeps, private readonly serving: boolean) {
    this.log = deps.log.child({ service: 'ConfigService' })
    const registers = [deps.registry]
    this.versionGauge = new Gauge({ name: CONFIG_SERVICE_METRIC_NAMES.version, help: 'Version of the configuration the controller serves (0: none yet)', registers })
    this.streamsGauge = new Gauge({ name: CONFIG_SERVICE_METRIC_NAMES.streams, help: 'Open configuration streams, by the state of their last version sent (pending, acked, nacked)', labelNames: ['state'], registers })
    this.responses = new Counter({ name: CONFIG_SERVICE_METRIC_NAMES.responses, help: 'Answers from agents to configuration versions (ack, nack)', labelNames: ['result'], registers })
    this.refused = new Counter({ name: CONFIG_SERVICE_METRIC_NAMES.refused, help: 'Configuration streams refused at open, by Ferry error code', labelNames: ['code'], registers })
    for (const s of ['pending', 'acked', 'nacked']) this.streamsGauge.set({ state: s }, 0)
  }

  handlers (): grpc.UntypedServiceImplementation {
    return { Stream: (call: grpc.ServerDuplexStream<AgentMessage, ConfigSnapshotMessage>) => { this.open(call) } }
  }

  /** A new version from the feed: sent to every open stream. */
  publish (v: ConfigVersion): void {
    this.versionInForce = v
    this.versionGauge.set(v.version)
    for (const entry of this.streams.values()) this.send(entry, v)
    this.updateGauge()
  }

  /** Every open stream and what its agent answered. */
  agents (): AgentConfigState[] {
    return [...this.streams.values()].map((e) => Object.freeze({ ...e.state }))
  }

  /** Ends every stream (UNAVAILABLE: agents reconnect, to this controller's successor). */
  close (): void {
    this.closed = true
    for (const entry of [...this.streams.values()]) this.end(entry, { code: grpc.status.UNAVAILABLE, details: 'the controller is shutting down' })
  }

  private open (call: grpc.ServerDuplexStream<AgentMessage, ConfigSnapshotMessage>): void {
    const peer = call.getPeer()
    const refuse = (r: Refusal, context: Record<string, unknown> = {}): void => {
      this.refused.inc({ code: r.code })
      this.log.warn({ peer, ...context, code: r.code, status: grpc.status[r.status], reason: r.reason }, 'configuration stream refused')
      call.emit('error', { code: r.status, details: `${r.code}: ${r.reason}` })
    }
    if (this.closed) { call.emit('error', { code: grpc.status.UNAVAILABLE, details: 'the controller is shutting down' }); return }
    if (!this.serving) {
      refuse(new Refusal(grpc.status.FAILED_PRECONDITION, 'FERRY_ERR_CONFIG_STREAM', 'this controller serves no configuration (start it with --config-dir or --kubernetes)'))
      return
    }
    const token = bearerToken(call.metadata)
    if (token === undefined) { refuse(new Refusal(grpc.status.UNAUTHENTICATED, 'FERRY_ERR_AUTHN', 'the "authorization" metadata is not "Bearer <token>"')); return }
    this.deps.authenticator.authenticate(token).then((authn) => {
      if (!authn.ok) { refuse(authnRefusal(authn)); return }
      if (call.cancelled || this.closed) { call.emit('error', { code: grpc.status.UNAVAILABLE, details: 'closed' }); return }
      this.accept(call, authn.caller, peer)
    }, (err: unknown) => {
      this.log.error({ peer, err }, 'configuration stream failed')
      call.emit('error', { code: grpc.status.INTERNAL, details: 'the controller could not open the stream' })
    })
  }

  private accept (call: grpc.ServerDuplexStream<AgentMessage, ConfigSnapshotMessage>, caller: Caller, peer: string): void {
    const id = this.nextId++
    const log = this.log.child({ stream: id, node: caller.node, principal: caller.principal, peer })
    const entry: StreamEntry = {
      state: { stream: id, node: caller.node, principal: caller.principal, peer, connectedAt: this.now(), sent: null, acked: null, nacked: null, state: 'pending' },
      call,
      log,
      ageTimer: null
    }
    this.streams.set(id, entry)
    const maxAge = this.deps.maxStreamAgeMs ?? CONFIG_SERVICE_DEFAULTS.maxStreamAgeMs
    entry.ageTimer = setTimeout(() => {
      entry.log.info({ maxAgeMs: maxAge }, 'configuration stream reached its age limit; the agent reconnects')
      this.end(entry, { code: grpc.status.UNAVAILABLE, details: 'stream age limit reached; reconnect' })
    }, Math.round(maxAge * (1 - CONFIG_SERVICE_DEFAULTS.ageJitter * (this.deps.random ?? Math.random)())))
    entry.ageTimer.unref()
    const gone = (why: string): void => {
      if (!this.streams.delete(id)) return
      if (entry.ageTimer !== null) clearTimeout(entry.ageTimer)
      log.info({ why, acked: entry.state.acked, state: entry.state.state }, 'configuration stream closed')
      this.updateGauge()
    }
    call.on('data', (msg: AgentMessage) => { this.answer(entry, msg) })
    call.on('end', () => { gone('agent ended it'); call.end() })
    call.on('cancelled', () => { gone('cancelled') })
    call.on('error', () => { gone('error') })
    call.on('close', () => { gone('closed') })
    log.info({ version: this.versionInForce?.version ?? null }, 'configuration stream opened')
    if (this.versionInForce !== null) this.send(entry, this.versionInForce)
    this.updateGauge()
  }

  private send (entry: StreamEntry, v: ConfigVersion): void {
    entry.state.sent = v.version
    entry.state.state = 'pending'
    entry.call.write({
      version: v.version,
      controller: this.deps.instance,
      origin: v.origin,
      root_namespace: v.rootNamespace,
      documents: v.documents.map(toDocumentMessage),
      refused: v.refused.map(toReportMessage)
    } satisfies ConfigSnapshotMessage)
    entry.log.debug({ version: v.version, documents: v.documents.length }, 'configuration sent')
  }

  private answer (entry: StreamEntry, msg: AgentMessage): void {
    const s = entry.state
    if ('ack' in msg && msg.ack != null) {
      const version = Number(msg.ack.version)
      this.responses.inc({ result: 'ack' })
      s.acked = version
      if (version === s.sent) s.state = 'acked'
      const refused = (msg.ack.refused ?? []).slice(0, 50).map((r) => String(r).slice(0, 1000))
      entry.log.info({ version }, 'configuration acknowledged')
      if (refused.length > 0) entry.log.warn({ version, code: 'FERRY_ERR_CONFIG', refused }, 'the agent refused objects the controller accepted; it keeps their last valid version')
    } else if ('nack' in msg && msg.nack != null) {
      const version = Number(msg.nack.version)
      const reasons = (msg.nack.reasons ?? []).slice(0, 50).map((r) => String(r).slice(0, 1000))
      this.responses.inc({ result: 'nack' })
      s.nacked = Object.freeze({ version, reasons: Object.freeze(reasons) })
      if (version === s.sent) s.state = 'nacked'
      entry.log.warn({ version, code: 'FERRY_ERR_CONFIG_STREAM', reasons }, 'configuration not usable by the agent; it keeps the configuration it has')
    } else {
      entry.log.warn('empty message from the agent ignored')
    }
    this.updateGauge()
  }

  private end (entry: StreamEntry, status: { code: grpc.status, details: string }): void {
    if (entry.ageTimer !== null) clearTimeout(entry.ageTimer)
    // The stream's 'error' listener (accept) forgets it and updates the gauge.
    entry.call.emit('error', status)
  }

  private updateGauge (): void {
    const counts: Record<AgentConfigStateName, number> = { pending: 0, acked: 0, nacked: 0 }
    for (const e of this.streams.values()) counts[e.state.state]++
    for (const [state, n] of Object.entries(counts)) this.streamsGauge.set({ state }, n)
  }

  private now (): number { return (this.deps.now ?? Date.now)() }
}
