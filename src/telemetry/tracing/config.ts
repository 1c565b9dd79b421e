import { ferryError } from '../../errors'

// The agent's tracing settings: where spans go (OTLP over gRPC or HTTP/protobuf) and
// which share of new traces is sampled. From the agent's flags or OpenTelemetry's
// standard environment variables (the flags win), validated once, frozen. Without an
// endpoint tracing is off and the proxy only adds `x-request-id`.

export type OtlpProtocol = 'grpc' | 'http/protobuf'

export interface TracingOptions {
  /**
   * Where spans are sent. gRPC: the collector's URL (http://host:4317). HTTP/protobuf:
   * the full URL of the traces resource (http://host:4318/v1/traces); a base endpoint
   * (from --otlp-endpoint or OTEL_EXPORTER_OTLP_ENDPOINT) gets `/v1/traces` appended,
   * as OpenTelemetry's specification says.
   */
  readonly endpoint: string
  readonly protocol: OtlpProtocol
  /** Percentage (0-100) of new traces sampled; a request's own decision always wins. */
  readonly samplingPercent: number
}

/** Istio's default (meshConfig.defaultConfig.tracing.sampling). */
export const DEFAULT_SAMPLING_PERCENT = 1

/** OpenTelemetry's standard variables the agent reads (https://opentelemetry.io/docs/specs/otel/protocol/exporter/). */
export const OTEL_ENV = Object.freeze({
  endpoint: 'OTEL_EXPORTER_OTLP_ENDPOINT',
  tracesEndpoint: 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT',
  protocol: 'OTEL_EXPORTER_OTLP_PROTOCOL',
  tracesProtocol: 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL',
  samplerArg: 'OTEL_TRACES_SAMPLER_ARG'
})

export const OTLP_PROTOCOLS: readonly OtlpProtocol[] = Object.freeze(['grpc', 'http/protobuf'])

export interface TracingFlags {
  readonly endpoint?: string
  readonly protocol?: string
  readonly sampling?: string
}

/**
 * Tracing settings from flags and environment; null when no endpoint is given by either
 * (tracing off). `--trace-sampling` without an endpoint is an error: it would do nothing.
 * Errors are FERRY_ERR_INVALID_ARG and name the flag or variable at fault.
 */
export function parseTracingOptions (flags: TracingFlags, env: Readonly<Record<string, string | undefined>>, who = 'ferry agent'): TracingOptions | null {
  const given = (v: string | undefined): string | undefined => v === undefined || v.trim() === '' ? undefined : v.trim()
  const protocol = protocolOf(flags.protocol, '--otlp-protocol', who) ??
    protocolOf(given(env[OTEL_ENV.tracesProtocol]), `$${OTEL_ENV.tracesProtocol}`, who) ??
    protocolOf(given(env[OTEL_ENV.protocol]), `$${OTEL_ENV.protocol}`, who)
  const sampling = samplingOf(flags.sampling, '--trace-sampling', who) ??
    samplingOf(given(env[OTEL_ENV.samplerArg]), `$${OTEL_ENV.samplerArg} (a ratio 0-1)`, who, true)
  let endpoint: { url: URL, full: boolean } | null = null
  if (flags.endpoint !== undefined) endpoint = { url: urlOf(flags.endpoint, '--otlp-endpoint', who), full: false }
  else if (given(env[OTEL_ENV.tracesEndpoint]) !== undefined) endpoint = { url: urlOf(given(env[OTEL_ENV.tracesEndpoint]) as string, `$${OTEL_ENV.tracesEndpoint}`, who), full: true }
  else if (given(env[OTEL_ENV.endpoint]) !== undefined) endpoint = { url: urlOf(given(env[OTEL_ENV.endpoint]) as string, `$${OTEL_ENV.endpoint}`, who), full: false }
  if (endpoint === null) {
    if (flags.sampling !== undefined || flags.protocol !== undefined) {
      throw ferryError('FERRY_ERR_INVALID_ARG', `${who}: --trace-sampling and --otlp-protocol need an endpoint (--otlp-endpoint or $${OTEL_ENV.endpoint})`)
    }
    return null
  }
  const p = protocol ?? 'grpc'
  return Object.freeze({ endpoint: endpointFor(endpoint.url, endpoint.full, p), protocol: p, samplingPercent: sampling ?? DEFAULT_SAMPLING_PERCENT })
}

/** The URL the exporter posts to: HTTP/protobuf's base endpoints get the signal's path, gRPC's are used as they are. */
function endpointFor (url: URL, full: boolean, protocol: OtlpProtocol): string {
  if (protocol === 'grpc' || full) return url.href
  return url.href.replace(/\/?$/, '/v1/traces')
}

function protocolOf (value: string | undefined, name: string, who: string): OtlpProtocol | undefined {
  if (value === undefined) return undefined
  if (!(OTLP_PROTOCOLS as readonly string[]).includes(value)) throw invalid(who, name, value, `one of ${OTLP_PROTOCOLS.join(', ')}`)
  return value as OtlpProtocol
}

/** A percentage 0-100 (the flag), or OpenTelemetry's ratio 0-1 (OTEL_TRACES_SAMPLER_ARG), as a percentage. */
function samplingOf (value: string | undefined, name: string, who: string, ratio = false): number | undefined {
  if (value === undefined) return undefined
  const n = /^\d+(\.\d+)?$/.test(value) ? Number(value) : NaN
  const max = ratio ? 1 : 100
  if (!(n >= 0 && n <= max)) throw invalid(who, name, value, ratio ? 'a number from 0 to 1' : 'a percentage from 0 to 100 (e.g. 1, 0.5, 100)')
  return ratio ? n * 100 : n
}

function urlOf (value: string, name: string, who: string): URL {
  let url: URL
  try {
    url = new URL(value)
  } catch {
    throw invalid(who, name, value, 'an http:// or https:// URL, e.g. http://collector:4317')
  }
  if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.hostname === '' || url.username !== '' || url.password !== '') {
    throw invalid(who, name, value, 'an http:// or https:// URL without credentials, e.g. http://collector:4317')
  }
  return url
}

function invalid (who: string, name: string, value: string, expected: string): Error {
  return ferryError('FERRY_ERR_INVALID_ARG', `${who}: ${name} "${value}" is invalid: expected ${expected}`)
}
