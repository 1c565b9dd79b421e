import type { Registry } from 'prom-client'
import { MESSAGE_LABELS, type MessageLabel, labelObject } from './istio-labels'
import { registerSeriesMetric } from './istio-request-metrics'
import { type LiveWorkloads, type RetirableSeries, SeriesRetirement } from './series-retirement'

// Istio's gRPC message counters, counted per label set in plain numbers as the request
// metrics are (istio-request-metrics.ts says why) and handed to prom-client when scraped:
//   istio_request_messages_total   gRPC messages sent by the client
//   istio_response_messages_total  gRPC messages sent by the server
// Labels: Istio's request labels without response_code (always 200 on a gRPC call that
// sent messages; Istio leaves it out of these two). Counted when the call ends.

export const MESSAGE_METRIC_NAMES = Object.freeze({
  request: 'istio_request_messages_total',
  response: 'istio_response_messages_total'
})

class MessageSeries implements RetirableSeries {
  gone?: RetirableSeries['gone']
  request = 0
  response = 0
  constructor (readonly labels: Record<MessageLabel, string>) {}
}

export class IstioMessageMetrics {
  private readonly series = new Map<string, MessageSeries>()
  private readonly retirement = new SeriesRetirement(this.series)

  constructor (registry: Registry) {
    registerSeriesMetric(registry, {
      name: MESSAGE_METRIC_NAMES.request,
      help: 'gRPC messages sent by clients (Istio\'s standard metric)',
      type: 'counter',
      // The first of the two read at a scrape: series retired since the scrape before go first.
      values: () => { this.retirement.scrape(); return [...this.series.values()].map((s) => ({ value: s.request, labels: s.labels })) }
    })
    registerSeriesMetric(registry, {
      name: MESSAGE_METRIC_NAMES.response,
      help: 'gRPC messages sent by servers (Istio\'s standard metric)',
      type: 'counter',
      values: () => [...this.series.values()].map((s) => ({ value: s.response, labels: s.labels }))
    })
  }

  /** A new cluster snapshot: series of workloads no longer in it are exported once more, then dropped (series-retirement.ts). */
  retireGoneWorkloads (live: LiveWorkloads): void { this.retirement.mark(live) }

  /** One gRPC call with these MESSAGE_LABELS values (in order; none holds a NUL). */
  observe (values: readonly string[], requestMessages: number, responseMessages: number): void {
    const key = values.join('\0')
    let s = this.series.get(key)
    if (s === undefined) {
      s = new MessageSeries(labelObject(MESSAGE_LABELS, values))
      this.series.set(key, s)
    }
    s.request += requestMessages
    s.response += responseMessages
  }
}
