import type { Pod } from '../discovery/model'
import type { HttpEngine } from '../http/engine'
import type { RequestRateLimit } from '../limits/types'
import type { NormalizePath } from '../http/context'
import type { L7Table } from '../l7/table'
import type { Router } from '../routing/router'

// What a handler needs to handle HTTP requests one by one where L7 applies (src/l7/ says
// where): the current L7 table (replaced with every cluster snapshot), the worker's HTTP
// engine, and the destination's path normalization. Absent: every connection is L4.

export interface L7Deps {
  /** The table of the snapshot in force (read per connection). */
  table (): L7Table
  readonly engine: HttpEngine
  /** Destination: paths normalized before authorization and forwarding; null: as sent. */
  readonly normalizePath: NormalizePath | null
  /** A detect port's connection: HTTP (l7) or stayed L4, by reason; counted. */
  detected (outcome: 'http1' | 'http2' | 'server_first' | 'not_http'): void
  /** Source: the worker's router (routes, per-request balancing, limits); absent: the Service's connection balancer picks. */
  readonly router?: Router
  /** Destination: the pod's node-wide local rate limit (src/limits/pod-rate-limits.ts); absent or null: none. */
  readonly rateLimitOf?: (pod: Pod) => RequestRateLimit | null
}
