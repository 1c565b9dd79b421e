import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http'
import type { RoutedDownstream } from './routed-io'

// A routed request's HTTP/1.1 client (forward-routed.ts): the response as Node's
// ServerResponse writes it (its own framing: chunked when no length was given).

export class H1Downstream implements RoutedDownstream {
  readonly body: IncomingMessage | null
  private continued = false

  constructor (req: IncomingMessage, private readonly res: ServerResponse, hasBody: boolean) {
    this.body = hasBody ? req : null
    if (!hasBody) req.resume()
  }

  get started (): boolean { return this.res.headersSent }
  get gone (): boolean { return this.res.destroyed }

  respond (status: number, headers: OutgoingHttpHeaders, endStream: boolean): void {
    this.res.writeHead(status, headers)
    if (endStream) this.res.end()
  }

  write (chunk: Buffer): boolean {
    if (this.res.destroyed) return true
    return this.res.write(chunk)
  }

  onDrain (cb: () => void): void { this.res.once('drain', cb) }

  end (trailers: OutgoingHttpHeaders | null): void {
    if (this.res.destroyed || this.res.writableEnded) return
    if (trailers !== null) this.res.addTrailers(trailers)
    this.res.end()
  }

  reset (): void { this.res.destroy() }

  continue (): void {
    if (this.continued || this.res.headersSent) return
    this.continued = true
    this.res.writeContinue()
  }

  /** gRPC needs HTTP/2: an HTTP/1.1 client always gets the HTTP status. */
  answer (status: number, headers: OutgoingHttpHeaders | null, body: string, _grpcStatus: number): void {
    const res = this.res
    if (res.headersSent || res.destroyed) return
    const h: OutgoingHttpHeaders = headers ?? {}
    h['content-type'] = 'text/plain'
    h['content-length'] = Buffer.byteLength(body)
    res.writeHead(status, h)
    res.end(body)
  }
}
