// What a mixed soak does and how often (src/lab/soak/run.ts runs it): how long, the
// load's kinds and rates, the event periods and the report's window. Two shapes share
// the code: the long run (`npm run soak`, one report row a minute) and the short one the
// test suite runs (the same events, closer together). Plans are frozen.

export interface LoadKindPlan {
  /** The report's name for it. */
  readonly name: string
  readonly mode: 'keepalive' | 'newconn' | 'bulk'
  /** Service name and path in the shop namespace (port 8080). */
  readonly service: string
  readonly path: string
  /** Concurrent workers; each has at most one request in flight. */
  readonly workers: number
  /** Each worker starts a request at most this often. */
  readonly intervalMs: number
  /** bulk: bytes sent and echoed back per request. */
  readonly bytes?: number
}

export interface SoakPlan {
  /** How long the load and the events run. */
  readonly durationMs: number
  /** One report row per window. */
  readonly windowMs: number
  /** An AuthorizationPolicy change this often. */
  readonly policyEveryMs: number
  /** A pod created, then deleted half a period later, this often. */
  readonly podEveryMs: number
  /** The lab's --cert-ttl: agents renew at half of it, so certificates rotate every certTtlMs / 2. */
  readonly certTtlMs: number
  /** How often the agents' certificate metrics are read (below the rotation period, so every rotation is seen). */
  readonly certPollMs: number
  /** A request with no complete answer in this long fails. */
  readonly requestTimeoutMs: number
  readonly kinds: readonly LoadKindPlan[]
}

const MIB = 1 << 20

/**
 * The load: cross-node keep-alive requests through the whole shop chain (the client on
 * node2 → web on node1 → cart on either node → payments on node2 → redis on node1, each
 * hop of the chain a new connection), new connections to cart (either node), and 10 MiB
 * echoed both ways by a peer on node1. About 25 requests/s plus 2 MiB/s each way: a load a
 * shared 2-core machine carries beside the agents without starving them.
 */
const KINDS: readonly LoadKindPlan[] = Object.freeze([
  Object.freeze({ name: 'keep-alive', mode: 'keepalive', service: 'web', path: '/checkout?user=soak&amount=1', workers: 2, intervalMs: 200 }),
  Object.freeze({ name: 'new connection', mode: 'newconn', service: 'cart', path: '/', workers: 2, intervalMs: 200 }),
  Object.freeze({ name: 'bulk 10 MiB', mode: 'bulk', service: 'soak-bulk', path: '/echo', workers: 1, intervalMs: 5000, bytes: 10 * MIB })
] as const)

/** `npm run soak`: policy every 30 s, a pod every 10 s, certificates rotating every 60 s (--cert-ttl 2m), a row a minute. */
export function longSoakPlan (minutes: number): SoakPlan {
  return Object.freeze({
    durationMs: minutes * 60_000,
    windowMs: 60_000,
    policyEveryMs: 30_000,
    podEveryMs: 10_000,
    certTtlMs: 120_000,
    certPollMs: 10_000,
    requestTimeoutMs: 30_000,
    kinds: KINDS
  })
}

/**
 * The suite's 54 s (its file's budget is 90 s with the lab's up and down): policy every
 * 10 s, a pod every 5 s, certificates rotating every 15 s (--cert-ttl 30s), a row every 18 s.
 */
export function shortSoakPlan (): SoakPlan {
  return Object.freeze({
    durationMs: 54_000,
    windowMs: 18_000,
    policyEveryMs: 10_000,
    podEveryMs: 5000,
    certTtlMs: 30_000,
    certPollMs: 3000,
    requestTimeoutMs: 30_000,
    kinds: KINDS
  })
}
