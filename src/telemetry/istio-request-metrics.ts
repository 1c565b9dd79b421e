import type { Metric, Registry } from 'prom-client'
import { REQUEST_LABELS, type RequestLabel, labelObject } from './istio-labels'
import { type LiveWorkloads, type RetirableSeries, SeriesRetirement } from './series-retirement'

// Istio's four request metrics, counted per label set in plain numbers and handed to
// prom-client only when scraped:
//   istio_requests_total                 counter
//   istio_request_duration_milliseconds  histogram, Envoy's default buckets (ms)
//   istio_request_bytes                  histogram of request body sizes
//   istio_response_bytes                 histogram of response body sizes
// A prom-client `observe(labels, v)` hashes and validates the whole label object (25
// labels) on every call; three histograms and a counter per request would cost more
// than forwarding a small request. Here a request costs one Map lookup by the joined
// label values and three bucket searches; each metric is a prom-client-shaped object
// whose get() reads the counts (cumulative buckets, _sum, _count), so the registry's
// text output and the per-worker sum (getMetricsAsJSON + AggregatorRegistry.aggregate:
// counters added, histogram series merged bucket by bucket) treat them as their own.

/**
 * Envoy's default histogram buckets (source/common/stats/histogram_impl.cc,
 * HistogramSettingsImpl::defaultBuckets), which Istio's request duration uses.
 */
export const DURATION_BUCKETS_MS: readonly number[] = Object.freeze([0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000])

/** Buckets of the body-size histograms: powers of ten from 1 B to 1 GB. */
export const BYTES_BUCKETS: readonly number[] = Object.freeze([1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000, 1000000000])

export const REQUEST_METRIC_NAMES = Object.freeze({
  requests: 'istio_requests_total',
  duration: 'istio_request_duration_milliseconds',
  requestBytes: 'istio_request_bytes',
  responseBytes: 'istio_response_bytes'
})

type Labels = Record<RequestLabel, string>

/** One histogram's counts for one label set: per bucket (not cumulative; last = +Inf), sum. */
class Distribution {
  readonly counts: Float64Array
  sum = 0
  constructor (buckets: number) { this.counts = new Float64Array(buckets + 1) }

  observe (bounds: readonly number[], v: number): void {
    let i = 0
    // le: a value equal to a bound is in that bucket.
    while (i < bounds.length && v > bounds[i]!) i++
    this.counts[i]!++
    this.sum += v
  }
}

class RequestSeries implements RetirableSeries {
  gone?: RetirableSeries['gone']
  requests = 0
  readonly duration = new Distribution(DURATION_BUCKETS_MS.length)
  readonly requestBytes = new Distribution(BYTES_BUCKETS.length)
  readonly responseBytes = new Distribution(BYTES_BUCKETS.length)
  constructor (readonly labels: Labels) {}
}

export interface MetricValue { value: number, labels: Record<string, string | number>, metricName?: string }

export class IstioRequestMetrics {
  private readonly series = new Map<string, RequestSeries>()
  private readonly retirement = new SeriesRetirement(this.series)

  constructor (registry: Registry) {
    const all = (): Iterable<RequestSeries> => this.series.values()
    registerSeriesMetric(registry, {
      name: REQUEST_METRIC_NAMES.requests,
      help: 'Requests handled by the proxy (Istio\'s standard metric)',
      type: 'counter',
      // The first of the four read at a scrape: series retired since the scrape before go first.
      values: () => { this.retirement.scrape(); return [...all()].map((s) => ({ value: s.requests, labels: s.labels })) }
    })
    registerSeriesMetric(registry, histogram(REQUEST_METRIC_NAMES.duration, 'Duration of requests in milliseconds, from the request\'s first byte to the response\'s end (Istio\'s standard metric)', DURATION_BUCKETS_MS, all, (s) => s.duration))
    registerSeriesMetric(registry, histogram(REQUEST_METRIC_NAMES.requestBytes, 'Request body sizes in bytes (Istio\'s standard metric)', BYTES_BUCKETS, all, (s) => s.requestBytes))
    registerSeriesMetric(registry, histogram(REQUEST_METRIC_NAMES.responseBytes, 'Response body sizes in bytes (Istio\'s standard metric)', BYTES_BUCKETS, all, (s) => s.responseBytes))
  }

  /** A new cluster snapshot: series of workloads no longer in it are exported once more, then dropped (series-retirement.ts). */
  retireGoneWorkloads (live: LiveWorkloads): void { this.retirement.mark(live) }

  /** One request with these REQUEST_LABELS values (in order; none holds a NUL). */
  observe (values: readonly string[], durationMs: number, requestBytes: number, responseBytes: number): void {
    const key = values.join('\0')
    let s = this.series.get(key)
    if (s === undefined) {
      s = new RequestSeries(labelObject(REQUEST_LABELS, values))
      this.series.set(key, s)
    }
    s.requests++
    s.duration.observe(DURATION_BUCKETS_MS, durationMs)
    s.requestBytes.observe(BYTES_BUCKETS, requestBytes)
    s.responseBytes.observe(BYTES_BUCKETS, responseBytes)
  }
}

export interface SeriesMetric {
  readonly name: string
  readonly help: string
  readonly type: 'counter' | 'histogram'
  values (): MetricValue[]
}

function histogram (name: string, help: string, bounds: readonly number[], all: () => Iterable<RequestSeries>, pick: (s: RequestSeries) => Distribution): SeriesMetric {
  const les = [...bounds.map(String), '+Inf']
  return {
    name,
    help,
    type: 'histogram',
    values: () => {
      const out: MetricValue[] = []
      for (const s of all()) {
        const d = pick(s)
        let cumulative = 0
        for (let i = 0; i < les.length; i++) {
          cumulative += d.counts[i]!
          out.push({ value: cumulative, labels: { ...s.labels, le: les[i]! }, metricName: `${name}_bucket` })
        }
        out.push({ value: d.sum, labels: s.labels, metricName: `${name}_sum` })
        out.push({ value: cumulative, labels: s.labels, metricName: `${name}_count` })
      }
      return out
    }
  }
}

/**
 * Registers `m` as prom-client does its own metrics: a registry needs of a metric only
 * its name, help, type, aggregator and get() (the registries AggregatorRegistry.aggregate
 * builds are made of such objects), and reset() for resetMetrics().
 */
export function registerSeriesMetric (registry: Registry, m: SeriesMetric): void {
  const metric = {
    name: m.name,
    help: m.help,
    type: m.type,
    aggregator: 'sum',
    get: async () => ({ name: m.name, help: m.help, type: m.type, aggregator: 'sum', values: m.values() }),
    reset: () => {}
  }
  registry.registerMetric(metric as unknown as Metric)
}
