import type { HeaderBag } from '../request-tracing'

// Reading and writing the trace context a request carries: W3C Trace Context
// (`traceparent`, `tracestate`; https://www.w3.org/TR/trace-context/) and B3, in both of
// its forms (https://github.com/openzipkin/b3-propagation): the multi-header form
// (X-B3-TraceId, X-B3-SpanId, X-B3-ParentSpanId, X-B3-Sampled, X-B3-Flags) and the single
// `b3` header. Pure functions over lower-case header names, as Node gives them.

/** A sampling decision: true, false, or null when the caller deferred it (B3 without a decision). */
export type Sampled = boolean | null

/** The context of the span that sent the request, or only its sampling decision. */
export interface IncomingContext {
  /** 32 lower-case hex digits (a 64-bit B3 id is left-padded with zeros); null: a decision without ids (`b3: 0`). */
  readonly traceId: string | null
  /** 16 lower-case hex digits; null with traceId. */
  readonly spanId: string | null
  readonly sampled: Sampled
  /** B3 debug (X-B3-Flags: 1, or `b3: …-d`): sample, whatever the percentage. */
  readonly debug: boolean
  /** W3C tracestate, passed on unchanged; null when absent or the context is not W3C's. */
  readonly traceState: string | null
  readonly source: 'w3c' | 'b3-single' | 'b3-multi'
}

/** Which B3 forms the request carried (each is rewritten to match what is forwarded). */
export interface B3Presence {
  readonly single: boolean
  readonly multi: boolean
}

export const HEADERS = Object.freeze({
  traceparent: 'traceparent',
  tracestate: 'tracestate',
  b3: 'b3',
  traceId: 'x-b3-traceid',
  spanId: 'x-b3-spanid',
  parentSpanId: 'x-b3-parentspanid',
  sampled: 'x-b3-sampled',
  flags: 'x-b3-flags',
  requestId: 'x-request-id'
})

const MULTI = [HEADERS.traceId, HEADERS.spanId, HEADERS.parentSpanId, HEADERS.sampled, HEADERS.flags] as const
const ZERO_TRACE = '0'.repeat(32)
const ZERO_SPAN = '0'.repeat(16)
const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/
const HEX_TRACE = /^(?:[0-9a-f]{16}|[0-9a-f]{32})$/
const HEX_SPAN = /^[0-9a-f]{16}$/

/** A header's single value: the first of a repeated header (Node joins most, but not all). */
export function headerValue (headers: HeaderBag, name: string): string | undefined {
  const v = headers[name]
  if (v === undefined) return undefined
  return typeof v === 'string' ? v : v[0]
}

/** The W3C context, when `traceparent` is valid (version 00, or a later one read as 00 says). */
export function readW3C (headers: HeaderBag): IncomingContext | null {
  const raw = headerValue(headers, HEADERS.traceparent)
  if (raw === undefined) return null
  const m = TRACEPARENT.exec(raw.trim().toLowerCase())
  if (m === null) return null
  const [, version, traceId, spanId, flags, rest] = m as unknown as [string, string, string, string, string, string | undefined]
  // Version ff is invalid; version 00 has nothing after the flags; later versions may.
  if (version === 'ff' || (version === '00' && rest !== undefined)) return null
  if (traceId === ZERO_TRACE || spanId === ZERO_SPAN) return null
  const state = headerValue(headers, HEADERS.tracestate)
  return {
    traceId,
    spanId,
    sampled: (parseInt(flags, 16) & 1) === 1,
    debug: false,
    traceState: state === undefined || state.trim() === '' ? null : state,
    source: 'w3c'
  }
}

/** The single `b3` header: `{TraceId}-{SpanId}[-{SamplingState}[-{ParentSpanId}]]`, or a bare decision (`0`, `1`, `d`). */
export function readB3Single (headers: HeaderBag): IncomingContext | null {
  const raw = headerValue(headers, HEADERS.b3)
  if (raw === undefined) return null
  const parts = raw.trim().toLowerCase().split('-')
  if (parts.length === 1) {
    const d = samplingState(parts[0] as string)
    return d === undefined || d.sampled === null ? null : { traceId: null, spanId: null, ...d, traceState: null, source: 'b3-single' }
  }
  if (parts.length > 4) return null
  const [traceId, spanId, state, parent] = parts as [string, string, string | undefined, string | undefined]
  if (!HEX_TRACE.test(traceId) || !HEX_SPAN.test(spanId)) return null
  if (parent !== undefined && !HEX_SPAN.test(parent)) return null
  const d = state === undefined ? { sampled: null, debug: false } : samplingState(state)
  if (d === undefined) return null
  return validIds(traceId.padStart(32, '0'), spanId, d, 'b3-single')
}

/** The multi-header B3 form; X-B3-Sampled or X-B3-Flags alone carry a decision without ids. */
export function readB3Multi (headers: HeaderBag): IncomingContext | null {
  const traceId = headerValue(headers, HEADERS.traceId)?.trim().toLowerCase()
  const spanId = headerValue(headers, HEADERS.spanId)?.trim().toLowerCase()
  const flags = headerValue(headers, HEADERS.flags)?.trim()
  const sampledRaw = headerValue(headers, HEADERS.sampled)?.trim().toLowerCase()
  const debug = flags === '1'
  let sampled: Sampled = null
  if (debug) sampled = true
  else if (sampledRaw === '1' || sampledRaw === 'true') sampled = true
  else if (sampledRaw === '0' || sampledRaw === 'false') sampled = false
  else if (sampledRaw !== undefined) return null
  if (traceId === undefined && spanId === undefined) {
    return sampled === null ? null : { traceId: null, spanId: null, sampled, debug, traceState: null, source: 'b3-multi' }
  }
  if (traceId === undefined || spanId === undefined || !HEX_TRACE.test(traceId) || !HEX_SPAN.test(spanId)) return null
  return validIds(traceId.padStart(32, '0'), spanId, { sampled, debug }, 'b3-multi')
}

/** Which B3 forms are present at all (valid or not: a form the request carried is rewritten). */
export function b3Presence (headers: HeaderBag): B3Presence {
  return {
    single: headers[HEADERS.b3] !== undefined,
    multi: MULTI.some((h) => headers[h] !== undefined)
  }
}

/** The incoming context; when several are valid, W3C wins, then single B3, then multi-header B3. */
export function readIncoming (headers: HeaderBag): IncomingContext | null {
  return readW3C(headers) ?? readB3Single(headers) ?? readB3Multi(headers)
}

/** What the proxy forwards: the span the next hop must name as its parent. */
export interface OutgoingContext {
  readonly traceId: string
  /** The forwarded parent: the proxy's span when sampled, else the incoming span passed on. */
  readonly spanId: string
  /** The parent of `spanId`, when known (B3's ParentSpanId). */
  readonly parentSpanId: string | null
  readonly sampled: boolean
  readonly debug: boolean
  readonly traceState: string | null
}

export function formatTraceparent (c: OutgoingContext): string {
  return `00-${c.traceId}-${c.spanId}-${c.sampled ? '01' : '00'}`
}

export function formatB3Single (c: OutgoingContext): string {
  const state = c.debug ? 'd' : c.sampled ? '1' : '0'
  return `${c.traceId}-${c.spanId}-${state}${c.parentSpanId === null ? '' : `-${c.parentSpanId}`}`
}

/**
 * The trace headers to set on the forwarded request, and those to remove: traceparent
 * always (the proxy speaks W3C), tracestate when there is one, and each B3 form the
 * request carried, rewritten to the same context. B3 headers with nothing true to say
 * (a parent id that is not known, debug flags that no longer apply) are removed.
 */
export function outgoingHeaders (c: OutgoingContext, b3: B3Presence, headers: HeaderBag): { forward: Record<string, string>, remove: string[] } {
  const forward: Record<string, string> = { [HEADERS.traceparent]: formatTraceparent(c) }
  const remove: string[] = []
  if (c.traceState !== null) forward[HEADERS.tracestate] = c.traceState
  else if (headers[HEADERS.tracestate] !== undefined) remove.push(HEADERS.tracestate)
  if (b3.single) forward[HEADERS.b3] = formatB3Single(c)
  if (b3.multi) {
    forward[HEADERS.traceId] = c.traceId
    forward[HEADERS.spanId] = c.spanId
    // Debug implies an accept decision: B3 says not to send X-B3-Sampled with it.
    if (c.debug) forward[HEADERS.flags] = '1'
    else {
      forward[HEADERS.sampled] = c.sampled ? '1' : '0'
      if (headers[HEADERS.flags] !== undefined) remove.push(HEADERS.flags)
    }
    if (c.debug && headers[HEADERS.sampled] !== undefined) remove.push(HEADERS.sampled)
    if (c.parentSpanId !== null) forward[HEADERS.parentSpanId] = c.parentSpanId
    else if (headers[HEADERS.parentSpanId] !== undefined) remove.push(HEADERS.parentSpanId)
  }
  return { forward, remove }
}

function samplingState (s: string): { sampled: Sampled, debug: boolean } | undefined {
  switch (s) {
    case '1': return { sampled: true, debug: false }
    case '0': return { sampled: false, debug: false }
    case 'd': return { sampled: true, debug: true }
    default: return undefined
  }
}

function validIds (traceId: string, spanId: string, d: { sampled: Sampled, debug: boolean }, source: IncomingContext['source']): IncomingContext | null {
  if (traceId === ZERO_TRACE || spanId === ZERO_SPAN) return null
  return { traceId, spanId, sampled: d.sampled, debug: d.debug, traceState: null, source }
}
