import type { Readable, Writable } from 'node:stream'

// A routed request's body, held while the request may still be sent again (a retry, a
// mirror copy): every chunk is kept until more than `limit` bytes arrived (64 KiB, as
// Envoy's default per-request retry buffer); past that the body is no longer held and the
// request can no longer be repeated. One sink at a time receives it (the attempt in
// flight): the held chunks first, then the rest as it arrives, with backpressure from
// that sink. With no sink, the client is paused once `limit` bytes wait.

export const RETRY_BODY_LIMIT = 64 * 1024

export class HeldBody {
  private chunks: Buffer[] | null = []
  private bytes = 0
  private complete = false
  private sink: Writable | null = null
  private readonly completed: Array<() => void> = []

  /** `onChunk`: every chunk once, as it arrives (accounting). */
  constructor (private readonly source: Readable, private readonly limit: number, onChunk: (chunk: Buffer) => void) {
    source.on('data', (chunk: Buffer) => {
      onChunk(chunk)
      if (this.chunks !== null) {
        this.bytes += chunk.length
        if (this.bytes > this.limit && this.sink !== null) this.chunks = null
        else this.chunks.push(chunk)
      }
      const sink = this.sink
      if (sink === null) {
        if (this.bytes > this.limit) source.pause()
        return
      }
      if (!sink.write(chunk)) {
        source.pause()
        sink.once('drain', () => { if (this.sink === sink) source.resume() })
      }
    })
    source.on('end', () => {
      this.complete = true
      this.sink?.end()
      for (const cb of this.completed.splice(0)) cb()
    })
  }

  /** Whether the request can be sent again: every chunk so far is held (the whole body, once complete). */
  get held (): boolean { return this.chunks !== null }

  /** The whole body, when it has all arrived and is held; null otherwise. */
  whole (): Buffer[] | null { return this.complete ? this.chunks : null }

  /** `cb` once the whole body has arrived (at once if it has). */
  onComplete (cb: () => void): void {
    if (this.complete) cb()
    else this.completed.push(cb)
  }

  /** Sends the body to `sink` (the held chunks, then the rest); the previous sink gets nothing more. Only while `held`, or for the first sink. */
  attach (sink: Writable): void {
    this.sink = sink
    const held = this.chunks
    if (held !== null) for (const c of held) sink.write(c)
    if (this.bytes > this.limit) this.chunks = null
    if (this.complete) sink.end()
    else this.source.resume()
  }

  /** The sink's attempt ended: nothing more goes to it. */
  detach (sink: Writable): void {
    if (this.sink === sink) this.sink = null
  }
}
