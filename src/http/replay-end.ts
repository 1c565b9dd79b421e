import { Duplex } from 'node:stream'
import type { RelayEnd } from '../proxy/relay'

// A connection whose first bytes were already read (protocol detection), as a RelayEnd
// that reads them again: `prefix` first, then whatever the connection receives; writes,
// ends and resets go to the connection. Node's HTTP servers read a plain socket natively,
// past any bytes put back on it, so a detected connection is handed to them wrapped.
// Byte counts are the connection's own.

export class ReplayEnd extends Duplex implements RelayEnd {
  constructor (private readonly inner: RelayEnd, prefix: Buffer) {
    super({ allowHalfOpen: true })
    if (prefix.length > 0) this.push(prefix)
    inner.on('data', (chunk: Buffer) => { if (!this.push(chunk)) inner.pause() })
    inner.on('end', () => { this.push(null) })
    inner.on('error', (err) => { this.destroy(err) })
    inner.on('close', () => { if (!this.destroyed) this.destroy() })
  }

  get bytesRead (): number { return this.inner.bytesRead }
  get bytesWritten (): number { return this.inner.bytesWritten }

  override _read (): void { this.inner.resume() }

  override _write (chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.inner.write(chunk)) cb()
    else this.inner.once('drain', () => { cb() })
  }

  override _final (cb: (err?: Error | null) => void): void {
    this.inner.end()
    cb()
  }

  override _destroy (err: Error | null, cb: (err?: Error | null) => void): void {
    if (!this.inner.destroyed) this.inner.destroy()
    cb(err)
  }

  resetAndDestroy (): this {
    if (!this.inner.destroyed) this.inner.resetAndDestroy()
    this.destroy()
    return this
  }
}
