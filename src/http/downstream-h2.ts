import { constants, type OutgoingHttpHeaders, type ServerHttp2Stream } from 'node:http2'
import type { RoutedDownstream } from './routed-io'

// A routed request's HTTP/2 client (forward-routed.ts): the response on its stream,
// trailers sent when the upstream gave some (gRPC's grpc-status), a trailers-only
// response kept trailers-only.

const { NGHTTP2_INTERNAL_ERROR, HTTP2_HEADER_STATUS } = constants

export class H2Downstream implements RoutedDownstream {
  private trailers: OutgoingHttpHeaders | null = null

  constructor (private readonly stream: ServerHttp2Stream, readonly body: ServerHttp2Stream | null, private readonly grpc: boolean) {}

  get started (): boolean { return this.stream.headersSent }
  get gone (): boolean { return this.stream.closed || this.stream.destroyed }

  respond (status: number, headers: OutgoingHttpHeaders, endStream: boolean): void {
    if (this.gone) return
    headers[HTTP2_HEADER_STATUS] = status
    if (endStream) {
      this.stream.respond(headers, { endStream: true })
      return
    }
    this.stream.respond(headers, { waitForTrailers: true })
    this.stream.once('wantTrailers', () => { this.stream.sendTrailers(this.trailers ?? {}) })
  }

  write (chunk: Buffer): boolean {
    if (this.gone) return true
    return this.stream.write(chunk)
  }

  onDrain (cb: () => void): void { this.stream.once('drain', cb) }

  end (trailers: OutgoingHttpHeaders | null): void {
    if (this.gone || this.stream.writableEnded) return
    this.trailers = trailers
    this.stream.end()
  }

  reset (): void {
    if (!this.stream.closed) this.stream.close(NGHTTP2_INTERNAL_ERROR)
  }

  continue (): void {}

  answer (status: number, headers: OutgoingHttpHeaders | null, body: string, grpcStatus: number): void {
    const stream = this.stream
    if (this.gone || stream.headersSent) return
    if (this.grpc) {
      const h: OutgoingHttpHeaders = headers ?? {}
      h[HTTP2_HEADER_STATUS] = 200
      h['content-type'] = 'application/grpc'
      h['grpc-status'] = String(grpcStatus)
      h['grpc-message'] = body
      stream.respond(h, { endStream: true })
      return
    }
    const h: OutgoingHttpHeaders = headers ?? {}
    h[HTTP2_HEADER_STATUS] = status
    h['content-type'] = 'text/plain'
    h['content-length'] = Buffer.byteLength(body)
    stream.respond(h)
    stream.end(body)
  }
}
