import type { Registry } from 'prom-client'
import { createRequestAccessLog, type RequestAccessLog } from './access-log'
import { CONNECTION_LABELS, type IstioLabeler } from './istio-labels'
import { IstioMessageMetrics } from './istio-message-metrics'
import { IstioRequestMetrics } from './istio-request-metrics'
import type { LiveWorkloads } from './series-retirement'
import type { Logger } from './logger'
import type { HttpRequestRecord, RequestTelemetry } from './request-record'

// RequestTelemetry for the proxy's HTTP layer: each ended request is counted in Istio's
// request metrics (istio-request-metrics.ts, Istio's labels from istio-labels.ts), a gRPC
// call's messages in Istio's message counters (istio-message-metrics.ts), and
// each request written as one access-log line (access-log.ts createRequestAccessLog). One per worker,
// on the worker's registry: the agent's /metrics sums the workers.

export interface IstioRequestTelemetryOptions {
  readonly registry: Registry
  /** Istio's label values (pods, cluster name): the same labeler as the worker's TCP metrics. */
  readonly labeler: IstioLabeler
  /** Where request lines go: the worker's logger (the connection lines' output); null: no lines. */
  readonly log: Logger | null
}

export class IstioRequestTelemetry implements RequestTelemetry {
  private readonly metrics: IstioRequestMetrics
  private readonly messages: IstioMessageMetrics
  private readonly labeler: IstioLabeler
  private readonly accessLog: RequestAccessLog | null
  /** Requests whose telemetry failed (never expected: counted where a test can see it, never thrown). */
  failures = 0

  constructor (o: IstioRequestTelemetryOptions) {
    this.metrics = new IstioRequestMetrics(o.registry)
    this.messages = new IstioMessageMetrics(o.registry)
    this.labeler = o.labeler
    this.accessLog = o.log === null ? null : createRequestAccessLog(o.log)
  }

  /** A new cluster snapshot: the request and message series of workloads that left are retired (series-retirement.ts). */
  retireGoneWorkloads (live: LiveWorkloads): void {
    this.metrics.retireGoneWorkloads(live)
    this.messages.retireGoneWorkloads(live)
  }

  requestEnded (r: HttpRequestRecord): void {
    try {
      const destination = this.labeler.requestDestination(r.conn, r.upstream?.address ?? null)
      const values = this.labeler.connectionValues(r.conn, r.reporter, r.protocol, r.responseFlags, destination)
      // REQUEST_LABELS = CONNECTION_LABELS + response_code, grpc_response_status (Istio
      // writes "0" when no response was sent, and an empty grpc_response_status for HTTP).
      values.push(String(r.responseCode), r.grpcStatus === null ? '' : String(r.grpcStatus))
      this.metrics.observe(values, r.durationMs, r.requestBytes, r.responseBytes)
      if (r.requestMessages !== undefined) {
        // MESSAGE_LABELS: REQUEST_LABELS without response_code.
        const grpc = values.slice(0, CONNECTION_LABELS.length)
        grpc.push(values[values.length - 1]!)
        this.messages.observe(grpc, r.requestMessages, r.responseMessages ?? 0)
      }
      this.accessLog?.(r, destination)
    } catch {
      this.failures++
    }
  }
}

