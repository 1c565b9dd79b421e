import type { Logger } from '../telemetry/logger'
import type { L7Table } from './table'

// Invalid ferry.dev/l7 values, logged once each: every snapshot's table lists the ones
// it met, and a value already reported is not reported again while it stays (a value
// that goes away and comes back is reported again). One per agent, on the main thread:
// the workers build their own tables and say nothing.

export class L7Warnings {
  private reported: ReadonlySet<string> = new Set()

  constructor (private readonly log: Logger) {}

  /** Logs the table's warnings that the previous table did not have; returns them. */
  report (table: L7Table): readonly string[] {
    const fresh = table.warnings.filter((w) => !this.reported.has(w))
    for (const w of fresh) this.log.warn({ code: 'FERRY_ERR_CONFIG', generation: table.generation }, w)
    this.reported = new Set(table.warnings)
    return fresh
  }
}
