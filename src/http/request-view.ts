import type { IncomingHttpHeaders } from 'node:http'
import type { RequestView } from '../policy/request-view'

// The RequestView authorization matches (src/policy/request-view.ts), over the headers
// Node parsed: no copy, a header read only when a policy asks for it.

export class HeadersRequestView implements RequestView {
  constructor (readonly method: string, readonly path: string, readonly host: string, private readonly headers: IncomingHttpHeaders) {}

  header (name: string): string | undefined {
    const v = this.headers[name]
    if (v === undefined) return undefined
    return typeof v === 'string' ? v : v.join(',')
  }
}

/** The path without its query string. */
export function pathOnly (target: string): string {
  const q = target.indexOf('?')
  return q < 0 ? target : target.slice(0, q)
}
