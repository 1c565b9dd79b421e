import type { OutgoingHttpHeaders } from 'node:http'
import type { HeaderEdits } from '../routing/model'

// A route's header modifiers (Gateway API's RequestHeaderModifier /
// ResponseHeaderModifier, Istio's headers.request / headers.response) on a header object
// with lower-case names: each HeaderEdits in order, and within one: set (replaces any
// value), add (appends to an existing value, comma-joined as RFC 9110 §5.3 allows),
// remove.

export function applyHeaderEdits (h: OutgoingHttpHeaders, edits: readonly HeaderEdits[]): void {
  for (const e of edits) {
    for (const [name, value] of e.set) h[name] = value
    for (const [name, value] of e.add) {
      const had = h[name]
      h[name] = had === undefined ? value : Array.isArray(had) ? [...had, value] : `${String(had)},${value}`
    }
    for (const name of e.remove) delete h[name]
  }
}
