import * as grpc from '@grpc/grpc-js'
import { Counter, Gauge, Registry } from 'prom-client'
import { type AgentMessage, type ConfigSnapshotMessage, configProtos } from '../controller/config-protos'
import { documentsDigest, fromReportMessages } from '../controller/config-wire'
import { ferryError, type FerryError } from '../errors'
import { backoffDelay, type BackoffPolicy, RECONNECT_BACKOFF } from '../identity/backoff'
import { controllerCredentials } from '../identity/ca-client'
import type { Random } from '../identity/clock'
import { ConfigAdmission } from '../resources/admission'
import { ConfigMetrics } from '../resources/metrics'
import { logReportChanges, ReportChanges, reportLines } from '../resources/reports'
import type { SavedConfig } from '../resources/saved-config'
import { type ConfigSnapshot, resourceCounts, type SourceDocument } from '../resources/snapshot'
import type { ConfigListener } from '../resources/watcher'
import type { Logger } from '../telemetry/logger'

// The agent's side of the configuration stream (ferry.config.v1.ConfigService/Stream):
// the same interface as ConfigDirectoryWatcher — start({ onSnapshot }), current(),
// close() — so the agent can take its policies from the controller or from a directory.
//
//   - Every snapshot from the controller is admitted again with src/resources, object by
//     object, exactly like a directory (the wire is never trusted): a new ConfigSnapshot
//     (the agent's own generation, +1 per change) and an ACK — listing any object the
//     agent refused itself, whose last valid version it keeps. The controller's own
//     refusals come along and are reported; one whose earlier valid version the agent
//     knows (and the controller no longer does: a controller that lost its saved state)
//     keeps that version at the agent.
//   - A NACK only for a message the agent cannot use at all (no usable version or root
//     namespace, a document without a name or text) or cannot apply; it keeps what it has.
//   - A snapshot whose documents are exactly the ones in force (a reconnect, another
//     controller replica) is ACKed without a new generation.
//   - A saved configuration (--config-cache, written by the agent after each snapshot)
//     is in force at once at start, before the stream has delivered anything, so an
//     agent restarted while the controller is down is ready and enforces its last good
//     policies; deny-all (no-config) is only for an agent that never had any.
//   - When the stream fails or the controller goes away, the last good snapshot keeps
//     serving; the agent reconnects with exponential backoff and jitter, and the
//     controller sends its current version at once, so the agent catches up. After an
//     UNAVAILABLE stream the channel is replaced, so that backoff alone sets the pace:
//     gRPC's own reconnect backoff, grown during a long outage, would otherwise stack on
//     it after the controller's return.
//   - The bearer token is read for every stream (projected tokens rotate), and the
//     controller's certificate must chain to the given roots, as for the CA.

export const CONFIG_STREAM_DEFAULTS = Object.freeze({
  backoff: RECONNECT_BACKOFF,
  /** start() resolves after the first snapshot, or after this long without one. */
  startTimeoutMs: 5000,
  /** HTTP/2 pings on an idle connection find a controller that vanished without a FIN. */
  keepaliveMs: 30_000,
  keepaliveTimeoutMs: 10_000,
  maxReceiveBytes: 16 * 1024 * 1024
})

export const CONFIG_STREAM_METRIC_NAMES = Object.freeze({
  connected: 'ferry_config_stream_connected',
  version: 'ferry_config_stream_version',
  responses: 'ferry_config_stream_responses_total',
  lastResponse: 'ferry_config_stream_last_response_timestamp_seconds',
  connects: 'ferry_config_stream_connects_total'
})

const ROOT_NAMESPACE = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/
/** NACK reasons sent at most (all are logged). */
const MAX_REASONS = 50

export interface ConfigStreamOptions {
  /** host:port of the controller. */
  readonly address: string
  /** PEM roots the controller's serving certificate must chain to. */
  readonly caRootsPem: string
  /** The bearer credential, fetched for every stream. */
  readonly token: () => string | Promise<string>
  readonly serverName?: string
  readonly log: Logger
  /** Where the metrics go (the agent's registry). */
  readonly registry?: Registry
  readonly backoff?: BackoffPolicy
  readonly startTimeoutMs?: number
  readonly random?: Random
  /** The last good configuration saved before this process started (--config-cache). */
  readonly saved?: SavedConfig | null
}

export interface ConfigStreamState {
  readonly connected: boolean
  /** The controller process the last snapshot came from. */
  readonly controller: string | null
  /** The controller's version of the configuration in force (ACKed). */
  readonly version: number | null
  readonly lastAck: { readonly version: number, readonly at: number } | null
  readonly lastNack: { readonly version: number, readonly at: number, readonly reasons: readonly string[] } | null
  readonly lastError: string | null
}

type Call = grpc.ClientDuplexStream<AgentMessage, ConfigSnapshotMessage>

export class ConfigStream {
  readonly metrics: ConfigMetrics
  readonly origin: string
  private client: grpc.Client
  private readonly log: Logger
  private listener: ConfigListener | null = null
  private snapshot: ConfigSnapshot | null = null
  private appliedDigest = ''
  private readonly admission = new ConfigAdmission()
  private readonly changes = new ReportChanges()
  private call: Call | null = null
  private attempts = 0
  private retryTimer: NodeJS.Timeout | null = null
  private closed = false
  private firstHandled: () => void = () => {}
  private status: { -readonly [K in keyof ConfigStreamState]: ConfigStreamState[K] } = { connected: false, controller: null, version: null, lastAck: null, lastNack: null, lastError: null }
  private readonly connectedGauge: Gauge
  private readonly versionGauge: Gauge
  private readonly responses: Counter<'result'>
  private readonly lastResponse: Gauge<'result'>
  private readonly connects: Counter

  constructor (private readonly opts: ConfigStreamOptions) {
    this.log = opts.log
    this.origin = `controller ${opts.address}`
    const registry = opts.registry ?? new Registry()
    this.metrics = new ConfigMetrics(registry)
    const registers = [registry]
    this.connectedGauge = new Gauge({ name: CONFIG_STREAM_METRIC_NAMES.connected, help: '1 while the configuration stream to the controller is open and has delivered a snapshot', registers })
    this.versionGauge = new Gauge({ name: CONFIG_STREAM_METRIC_NAMES.version, help: "The controller's version of the configuration in force (0: none yet)", registers })
    this.responses = new Counter({ name: CONFIG_STREAM_METRIC_NAMES.responses, help: 'Snapshots from the controller answered, by result (ack, nack)', labelNames: ['result'], registers })
    this.lastResponse = new Gauge({ name: CONFIG_STREAM_METRIC_NAMES.lastResponse, help: 'When the agent last answered a snapshot, by result (ack, nack)', labelNames: ['result'], registers })
    this.connects = new Counter({ name: CONFIG_STREAM_METRIC_NAMES.connects, help: 'Configuration streams opened to the controller', registers })
    this.client = this.newClient()
  }

  /**
   * Opens the stream; resolves after the first snapshot was handled (applied or NACKed)
   * or after startTimeoutMs — at once when a saved configuration was put in force.
   */
  async start (listener: ConfigListener): Promise<void> {
    if (this.listener !== null) throw ferryError('FERRY_ERR_INVALID_ARG', `configuration stream to ${this.opts.address} already started`)
    this.listener = listener
    const first = new Promise<void>((resolve) => { this.firstHandled = resolve })
    const saved = this.opts.saved ?? null
    if (saved !== null) this.applySaved(saved)
    this.connect()
    if (this.snapshot !== null) return
    let timer: NodeJS.Timeout | undefined
    const timedOut = await Promise.race([
      first.then(() => false),
      new Promise<boolean>((resolve) => { timer = setTimeout(() => { resolve(true) }, this.opts.startTimeoutMs ?? CONFIG_STREAM_DEFAULTS.startTimeoutMs) })
    ])
    clearTimeout(timer)
    if (timedOut) this.log.warn({ controller: this.opts.address, lastError: this.status.lastError }, 'no configuration from the controller yet; going on without, it applies when it comes')
  }

  private newClient (): grpc.Client {
    const opts = this.opts
    const backoff = opts.backoff ?? CONFIG_STREAM_DEFAULTS.backoff
    return new (configProtos().ConfigClient)(opts.address, controllerCredentials(opts.caRootsPem, opts.token), {
      'grpc.max_receive_message_length': CONFIG_STREAM_DEFAULTS.maxReceiveBytes,
      'grpc.keepalive_time_ms': CONFIG_STREAM_DEFAULTS.keepaliveMs,
      'grpc.keepalive_timeout_ms': CONFIG_STREAM_DEFAULTS.keepaliveTimeoutMs,
      'grpc.initial_reconnect_backoff_ms': backoff.initialMs,
      'grpc.max_reconnect_backoff_ms': backoff.maxMs,
      ...(opts.serverName === undefined ? {} : { 'grpc.ssl_target_name_override': opts.serverName, 'grpc.default_authority': opts.serverName })
    })
  }

  /** The last good snapshot, or null before the first. */
  current (): ConfigSnapshot | null { return this.snapshot }

  state (): ConfigStreamState { return Object.freeze({ ...this.status }) }

  close (): void {
    this.closed = true
    if (this.retryTimer !== null) clearTimeout(this.retryTimer)
    this.retryTimer = null
    this.call?.cancel()
    this.call = null
    this.client.close()
    this.connectedGauge.set(0)
  }

  private connect (): void {
    if (this.closed) return
    this.connects.inc()
    const call = (this.client as unknown as { Stream: () => Call }).Stream()
    this.call = call
    let done = false
    const down = (err: grpc.ServiceError | null): void => {
      if (done) return
      done = true
      if (this.call === call) this.call = null
      this.disconnected(err)
    }
    call.on('data', (msg: ConfigSnapshotMessage) => { this.onSnapshotMessage(call, msg) })
    call.on('error', (err: grpc.ServiceError) => { down(err) })
    call.on('end', () => { down(null) })
  }

  private disconnected (err: grpc.ServiceError | null): void {
    const wasConnected = this.status.connected
    this.status.connected = false
    this.connectedGauge.set(0)
    if (this.closed) return
    const error = streamError(this.opts.address, err)
    // A stream that delivered a snapshot was healthy: start the backoff over.
    if (wasConnected) this.attempts = 0
    this.attempts++
    const delay = backoffDelay(this.attempts, this.opts.backoff ?? CONFIG_STREAM_DEFAULTS.backoff, this.opts.random ?? Math.random)
    const fields = { code: error.code, err: error.message, attempt: this.attempts, retryInMs: delay, generation: this.snapshot?.generation ?? 0 }
    if (wasConnected || error.message !== this.status.lastError) this.log.warn(fields, 'configuration stream down; the last good configuration keeps serving')
    else this.log.debug(fields, 'configuration stream still down')
    this.status.lastError = error.message
    if (err?.code === grpc.status.UNAVAILABLE) {
      this.client.close()
      this.client = this.newClient()
    }
    this.retryTimer = setTimeout(() => { this.retryTimer = null; this.connect() }, delay)
    this.retryTimer.unref()
  }

  private onSnapshotMessage (call: Call, msg: ConfigSnapshotMessage): void {
    if (this.closed || this.call !== call) return
    if (!this.status.connected) {
      this.status.connected = true
      this.status.lastError = null
      this.connectedGauge.set(1)
      this.log.info({ controller: this.opts.address, instance: msg.controller }, 'configuration stream connected')
    }
    const version = Number(msg.version)
    const answer = this.handle(msg, version)
    const at = Date.now()
    this.responses.inc({ result: answer.ack ? 'ack' : 'nack' })
    this.lastResponse.set({ result: answer.ack ? 'ack' : 'nack' }, at / 1000)
    if (answer.ack) {
      this.status.version = version
      this.status.controller = msg.controller
      this.status.lastAck = Object.freeze({ version, at })
      this.versionGauge.set(version)
      call.write({ ack: { version, refused: answer.refused } })
    } else {
      this.status.lastNack = Object.freeze({ version, at, reasons: Object.freeze(answer.reasons) })
      call.write({ nack: { version, reasons: answer.reasons.slice(0, MAX_REASONS) } })
    }
    this.firstHandled()
  }

  /** Admits and applies one snapshot; never throws. */
  private handle (msg: ConfigSnapshotMessage, version: number): { ack: true, refused: string[] } | { ack: false, reasons: string[] } {
    const reject = (reasons: string[]): { ack: false, reasons: string[] } => {
      this.metrics.rejectedChange()
      this.log.warn({ controller: this.opts.address, version, code: 'FERRY_ERR_CONFIG_STREAM', generation: this.snapshot?.generation ?? 0, issues: reasons },
        'snapshot from the controller not usable; the configuration in force keeps serving')
      return { ack: false, reasons }
    }
    if (!Number.isSafeInteger(version) || version < 1) return reject([`version ${String(msg.version)} is not a positive integer`])
    const rootNamespace = String(msg.root_namespace ?? '')
    if (!ROOT_NAMESPACE.test(rootNamespace)) return reject([`root_namespace ${JSON.stringify(rootNamespace)} is not a namespace name`])
    const documents: SourceDocument[] = []
    for (const [i, d] of (Array.isArray(msg.documents) ? msg.documents : []).entries()) {
      if (typeof d?.name !== 'string' || d.name === '' || typeof d.text !== 'string') return reject([`documents[${i}]: a document needs a name and a text`])
      const line = Number(d.line ?? 0)
      documents.push({ path: d.name, text: d.text, line: Number.isSafeInteger(line) && line >= 1 ? line : 1 })
    }
    const upstream = fromReportMessages(msg.refused)
    const digest = documentsDigest(documents, upstream)
    if (digest === this.appliedDigest && this.snapshot !== null && this.snapshot.rootNamespace === rootNamespace) {
      this.metrics.applied(this.snapshot.generation, this.refusedCount(this.snapshot) > 0)
      this.log.info({ controller: this.opts.address, version, generation: this.snapshot.generation }, 'configuration from the controller unchanged')
      return { ack: true, refused: this.ownRefusals(this.snapshot) }
    }
    const snapshot = this.admission.admit(documents, { origin: `${this.origin} version ${version}`, generation: (this.snapshot?.generation ?? 0) + 1, rootNamespace, upstream })
    try {
      this.listener?.onSnapshot(snapshot)
    } catch (err) {
      this.log.error({ err, version }, 'applying the configuration failed; the last good configuration keeps serving')
      return reject([`the agent could not apply it: ${(err as Error).message}`])
    }
    this.appliedDigest = digest
    this.inForce(snapshot, { controller: this.opts.address, version, documents: documents.length })
    return { ack: true, refused: this.ownRefusals(snapshot) }
  }

  /** The saved configuration, in force before the stream has delivered anything. */
  private applySaved (saved: SavedConfig): void {
    const origin = `saved configuration of ${saved.origin} (${saved.savedAt})`
    const snapshot = this.admission.admit(saved.documents, { origin, generation: 1, rootNamespace: saved.rootNamespace, upstream: saved.upstreamReports })
    try {
      this.listener?.onSnapshot(snapshot)
    } catch (err) {
      this.log.error({ err }, 'applying the saved configuration failed; waiting for the controller')
      return
    }
    this.appliedDigest = documentsDigest(saved.documents, saved.upstreamReports)
    this.inForce(snapshot, { saved: saved.savedAt, from: saved.origin })
    this.log.info({ saved: saved.savedAt, from: saved.origin, generation: snapshot.generation }, 'saved configuration in force until the controller sends one')
  }

  private inForce (snapshot: ConfigSnapshot, context: Record<string, unknown>): void {
    this.snapshot = snapshot
    const changes = this.changes.next(snapshot.objects)
    logReportChanges(this.log, changes, { ...context, generation: snapshot.generation })
    this.metrics.objects.observe(snapshot.objects, changes.changed)
    if (changes.changed.some((r) => r.state === 'refused')) this.metrics.rejectedChange()
    this.metrics.applied(snapshot.generation, this.refusedCount(snapshot) > 0)
    this.log.info({
      ...context, generation: snapshot.generation,
      ...resourceCounts(snapshot),
      degraded: snapshot.objects.filter((o) => o.state === 'degraded').length, refused: this.refusedCount(snapshot)
    }, 'configuration applied')
  }

  private refusedCount (snapshot: ConfigSnapshot): number {
    return snapshot.objects.filter((o) => o.state === 'refused').length
  }

  /** What this agent refused itself (not the controller's refusals), one line per issue. */
  private ownRefusals (snapshot: ConfigSnapshot): string[] {
    return snapshot.objects.filter((o) => o.state === 'refused' && o.reportedBy === undefined).flatMap(reportLines).slice(0, MAX_REASONS)
  }
}

const REFUSALS = new Set([grpc.status.UNAUTHENTICATED, grpc.status.PERMISSION_DENIED, grpc.status.FAILED_PRECONDITION])

function streamError (address: string, err: grpc.ServiceError | null): FerryError {
  if (err === null) return ferryError('FERRY_ERR_CONFIG_STREAM', `configuration stream at ${address}: the controller ended it`)
  const status = grpc.status[err.code] ?? String(err.code)
  const what = REFUSALS.has(err.code) ? 'refused' : 'failed'
  return ferryError('FERRY_ERR_CONFIG_STREAM', `configuration stream at ${address} ${what}: ${status}: ${err.details}`, { cause: err })
}
