import { randomUUID } from 'node:crypto'
import type { HeaderBag, RequestSpan, RequestTracer } from '../request-tracing'
import { headerValue, HEADERS } from './trace-context'

// Tracing off: no span, no trace headers touched (an application's own trace context
// passes through unchanged); only `x-request-id` is added when the request has none,
// as Envoy does, so access lines and the application can correlate a request.

const NOTHING: readonly string[] = Object.freeze([])
const NO_FORWARD: Readonly<Record<string, string>> = Object.freeze({})

/** The request's `x-request-id`, or a new UUID v4 and the header that adds it. */
export function requestIdOf (headers: HeaderBag, newId: () => string = randomUUID): { id: string, added: boolean } {
  const v = headerValue(headers, HEADERS.requestId)
  if (v !== undefined && v !== '') return { id: v, added: false }
  return { id: newId(), added: true }
}

export const NO_TRACING: RequestTracer = Object.freeze({
  start (headers: HeaderBag): RequestSpan {
    const r = requestIdOf(headers)
    return {
      traceId: null,
      requestId: r.id,
      forward: r.added ? { [HEADERS.requestId]: r.id } : NO_FORWARD,
      remove: NOTHING,
      end () {}
    }
  }
})
