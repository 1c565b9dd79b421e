import { randomUUID } from 'node:crypto'
import type { HttpRequestRecord, RequestTelemetry } from '../telemetry/request-record'
import type { HeaderBag, RequestSpan, RequestSpanEnd, RequestSpanStart, RequestTracer } from '../telemetry/request-tracing'

// The engine's telemetry and tracing until real ones are plugged in: request metrics and
// access lines come from src/telemetry's RequestTelemetry, spans from its RequestTracer.
// NO_REQUEST_TELEMETRY drops records; NO_TRACING starts no span but still gives every
// request an `x-request-id` (kept when the client sent one, added when it did not), as
// every mesh proxy does.

export const NO_REQUEST_TELEMETRY: RequestTelemetry = Object.freeze({
  requestEnded (_r: HttpRequestRecord): void {}
})

const NO_REMOVE: readonly string[] = Object.freeze([])
const NO_FORWARD: Readonly<Record<string, string>> = Object.freeze({})

class UntracedSpan implements RequestSpan {
  readonly traceId = null
  readonly remove = NO_REMOVE
  constructor (readonly requestId: string, readonly forward: Readonly<Record<string, string>>) {}
  end (_result: RequestSpanEnd): void {}
}

export const NO_TRACING: RequestTracer = Object.freeze({
  start (headers: HeaderBag, _attrs: RequestSpanStart): RequestSpan {
    const given = headers['x-request-id']
    if (typeof given === 'string' && given !== '') return new UntracedSpan(given, NO_FORWARD)
    const id = randomUUID()
    return new UntracedSpan(id, { 'x-request-id': id })
  }
})
