import type { IncomingHttpHeaders } from 'node:http'
import type { RoutedRequestView } from '../routing/model'
import { HeadersRequestView } from './request-view'

// What routing sees of a request (src/routing/model.ts RoutedRequestView): authorization's
// view over Node's parsed headers, plus the raw query and whether it is gRPC.

export class RoutedView extends HeadersRequestView implements RoutedRequestView {
  constructor (method: string, path: string, host: string, headers: IncomingHttpHeaders, readonly query: string, readonly grpc: boolean) {
    super(method, path, host, headers)
  }
}

/** The raw query of a request target: after '?', '' when none. */
export function queryOf (target: string): string {
  const q = target.indexOf('?')
  return q < 0 ? '' : target.slice(q + 1)
}
