// What happened during a soak besides the load, each with when (ms since the soak
// started) and whether it did what it should: a policy change the agents took up, a pod
// created or deleted, a certificate rotated. The report counts them per window; a
// failed event fails the soak as a failed request does.

export type SoakEventKind = 'policy' | 'pod created' | 'pod deleted' | 'rotation'

export interface SoakEvent {
  readonly kind: SoakEventKind
  /** ms since the soak started. */
  readonly at: number
  readonly ok: boolean
  /** What it was (and, failed, why). */
  readonly detail: string
}

export class EventLog {
  private readonly list: SoakEvent[] = []
  constructor (readonly startedAt: number, private readonly now: () => number = Date.now) {}

  /** Milliseconds since the soak started. */
  elapsed (): number { return this.now() - this.startedAt }

  record (kind: SoakEventKind, ok: boolean, detail: string): void {
    this.list.push(Object.freeze({ kind, at: this.elapsed(), ok, detail }))
  }

  all (): readonly SoakEvent[] { return this.list }

  /** Events in [from, to) ms since the start. */
  between (from: number, to: number): readonly SoakEvent[] {
    return this.list.filter((e) => e.at >= from && e.at < to)
  }
}
