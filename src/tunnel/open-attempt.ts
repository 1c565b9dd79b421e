import type { OutgoingHttpHeaders } from 'node:http2'
import type { Svid } from '../identity/svid'
import type { TunnelError } from './refusal'
import type { TunnelStream } from './tunnel-stream'

// One open() in flight: what it asks for, its deadline, and how it settles (once). It may
// wait in a connecting session's queue and be retried on another session when the first
// refused it before answering (REFUSED_STREAM, GOAWAY): nothing has been sent on it yet,
// so a retry cannot duplicate data. Up to MAX_RETRIES times, within its deadline, and
// only on a session made after the refusal: when a peer node rotates its certificate it
// drains every session of the key at once (a hundred of them at 10,000 streams), and a
// sibling whose GOAWAY is still on its way would refuse it again.

export const MAX_RETRIES = 3

export interface OpenTarget {
  /** Pool key: source identity, destination identity, destination node. */
  readonly key: string
  readonly svid: Svid
  readonly expected: string
  readonly node: { readonly address: string, readonly port: number }
  /** "ip:port" of the node, IPv6 bracketed. */
  readonly remote: string
  readonly authority: string
  readonly headers: OutgoingHttpHeaders
}

export class OpenAttempt {
  retries = 0
  /** Sessions made before this count are not tried (set at a retry: the pool's session count then). */
  minSessionSeq = 0
  settled = false
  /** Set when a stream has been requested for it (so a timeout can cancel it). */
  cancel: (() => void) | null = null
  private readonly timer: NodeJS.Timeout

  constructor (readonly target: OpenTarget, timeoutMs: number, onTimeout: (a: OpenAttempt) => void,
    private readonly resolve: (s: TunnelStream) => void, private readonly reject: (e: TunnelError) => void) {
    this.timer = setTimeout(() => { onTimeout(this) }, timeoutMs)
  }

  succeed (stream: TunnelStream): void {
    if (this.settled) return
    this.settle()
    this.resolve(stream)
  }

  fail (err: TunnelError): void {
    if (this.settled) return
    this.settle()
    const cancel = this.cancel
    this.cancel = null
    if (cancel !== null) cancel()
    this.reject(err)
  }

  private settle (): void {
    this.settled = true
    clearTimeout(this.timer)
  }
}
