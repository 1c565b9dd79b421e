import type { Pod } from '../discovery/model'
import type { ConnTelemetry } from '../telemetry/conn-telemetry'
import type { Connector } from './connect'
import type { HandlerTimings } from './defaults'
import type { L7Deps } from './l7-deps'
import type { Mesh } from './mesh'
import type { Routes } from './route-table'

// What a pod listener's handler (outbound 15001, inbound 15006) is built from.

export interface PodListenerDeps extends HandlerTimings {
  /** The pod whose listener this is. */
  readonly pod: Pod
  readonly routes: Routes
  /** Creates sockets inside the pod's netns. */
  readonly connector: Connector
  readonly telemetry: ConnTelemetry
  /** The node's mesh: local pods, identities, tunnel, inbound mode, policies. Absent: a plain proxy (every upstream direct, plaintext accepted). */
  readonly mesh?: Mesh
  /** The inbound listener's own bound addresses (127.0.0.1:15006, [::1]:15006): a connection to them is refused, never relayed to the proxy itself. */
  readonly ownAddresses?: ReadonlyArray<{ readonly address: string, readonly port: number }>
  /** Where L7 applies, requests are handled one by one (l7-source.ts, l7-destination.ts); absent: all L4. */
  readonly l7?: L7Deps
}
