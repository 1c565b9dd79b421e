import type { Pod } from '../discovery/model'
import type { ConnTelemetry } from '../telemetry/conn-telemetry'
import { finish } from './account'
import { type InboundAuthorizer, resetEnds } from './authorize'
import type { Conn } from './conn'
import { relay, type RelayEnd } from './relay'
import type { SpliceHandle } from './splice'

// The end of a relayed connection, in one place. Every path hands its two connected ends
// here (outbound direct and tunnel, plaintext inbound, a tunnel stream, same-node):
//   relay     bytes both ways until both ends close (relay.ts: backpressure, half-close,
//             a reset passed on as a reset)
//   recheck   an inbound record is tracked for re-authorization (authorize.ts `track`):
//             a policy swap that now denies it ends it `denied` and resets both ends
//   settle    bytes a splice passed app to app (same-node) are added to every record, once
//   account   every record ends once (account.ts `finish`): `denied` by a recheck, else
//             `ok` or `reset` with the relay's first error code, whichever comes first
//   cut       whoever holds an end may cut the connection short (`resetRelayed`: the
//             end of a drain, a failing worker), the same way: splice settled, ends reset
// A connection is one record, or two on the same-node path (the source's outbound record
// and the destination's inbound one, which end together).

export interface Relayed {
  readonly telemetry: ConnTelemetry
  /** The connection's records, accounted in this order at the relay's end. */
  readonly records: readonly Conn[]
  /** Re-authorize this inbound record on every policy swap; absent: outbound, or no policies. */
  readonly recheck?: {
    readonly authz: InboundAuthorizer
    readonly record: Conn
    readonly pod: Pod
    /** The source's namespace when it is a pod of this node (authorize.ts `authorize`). */
    readonly ipNamespace: string | null
  }
  /** A splice of the two apps' sockets (same-node), or null. */
  readonly splice?: SpliceHandle | null
}

/** How to cut each relayed connection short, by either of its ends (resetRelayed). */
const cutters = new WeakMap<RelayEnd, () => void>()

/**
 * Cuts short the relayed connection that `end` is one end of, as a denial does: the
 * splice is settled first (the apps' sockets leave the kernel's shortcut, so each app
 * reads the reset as a reset, and the bytes it passed are counted), then both ends are
 * reset; the relay then accounts its records (`reset`). False if `end` is not relayed
 * (yet, or any more): the caller resets it itself.
 */
export function resetRelayed (end: RelayEnd): boolean {
  const cut = cutters.get(end)
  if (cut === undefined) return false
  cut()
  return true
}

/** Relays `downstream` (the source's end) and `upstream` until both close, and accounts every record once. */
export function relayAndFinish (downstream: RelayEnd, upstream: RelayEnd, r: Relayed): void {
  const { telemetry, records, recheck } = r
  for (const c of records) {
    c.downstream = downstream
    c.upstream = upstream
  }
  const splice = r.splice ?? null
  const settleSplice = (): void => {
    if (splice === null) return
    // Later calls return zeros: the bytes are added once.
    const { fromSource, fromDestination } = splice.end()
    for (const c of records) { c.splicedReceived += fromSource; c.splicedSent += fromDestination }
  }
  const untrack = recheck?.authz.track(recheck.record, recheck.pod, recheck.ipNamespace, () => {
    settleSplice()
    // The denied record ends first and lends its decision to the others.
    finish(recheck.record, telemetry, 'denied', null)
    for (const c of records) {
      if (c === recheck.record) continue
      c.authz = recheck.record.authz
      finish(c, telemetry, 'denied', null)
    }
    resetEnds(downstream, upstream)
  })
  const cut = (): void => {
    settleSplice()
    resetEnds(downstream, upstream)
  }
  cutters.set(downstream, cut)
  cutters.set(upstream, cut)
  relay(downstream, upstream, (code) => {
    cutters.delete(downstream)
    cutters.delete(upstream)
    untrack?.()
    settleSplice()
    for (const c of records) finish(c, telemetry, code === null ? 'ok' : 'reset', code)
  })
}
