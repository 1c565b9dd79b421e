import type { GatewayRouting } from './compile-gateway'
import type { IstioRouting } from './compile-istio'
import { compileMatch, type MatchInput, type Matcher } from './match'
import type { LentRetry } from './model'

// Gateway API's GRPCRoute has no retry field, and on a Service port where a Gateway API
// route is attached VirtualServices do not apply (routing-table.ts). One exception, narrow
// on purpose — a VirtualService naming that Service still lends its **retry policy** to
// the requests a GRPCRoute rule routes:
//
//   who    a VirtualService in the Service's namespace lends to every caller; one in
//          another namespace lends to callers in its own namespace only, and is tried
//          before the Service's own (as GAMMA's consumer routes are). No other lends.
//   which  the VirtualService's (rule, match) entries for the Service port, in the order
//          they are tried when it routes (oldest VirtualService first). The first whose
//          match holds for the gRPC request (uri is /pkg.Service/Method; headers, port,
//          sourceLabels… as always) decides: its `retries` (attempts, perTryTimeout,
//          retryOn with gRPC statuses) apply. A rule without `retries`, or with
//          `attempts: 0`, means no retry: Istio's implicit default is not lent, and a
//          later rule never stands in for the one that matched (a rule that keeps, say,
//          writes from being retried stays in force). No match holds: no retry.
//   what   the retry policy only. The GRPCRoute's matches, backends and filters route the
//          request; the VirtualService's destinations, rewrites, headers, faults, mirrors
//          and timeouts stay overridden.
//   when   the GRPCRoute rule has no retry policy of its own (GRPCRoute rules have none).
//          HTTPRoutes have their own `retry` field: nothing is lent to their rules.
// Every retry is still taken from the backend's node-wide retry budget.

interface Lender {
  /** The VirtualService's namespace. */
  readonly namespace: string
  readonly lent: LentRetry
}

/** The retry policies lent on one Service port, selected per request. */
export class PortLentRetries {
  private readonly byCaller = new Map<string, { readonly entries: readonly LentRetry[], readonly matchers: readonly Matcher[] }>()

  constructor (private readonly serviceNamespace: string, private readonly lenders: readonly Lender[]) {}

  /** The entries tried for a caller in `namespace`, in order. */
  entriesFor (namespace: string): readonly LentRetry[] {
    return this.compiled(namespace).entries
  }

  /** The entry that decides a request's retry policy (its `retry` may be null: no retry); null: no entry's match holds. */
  select (input: MatchInput): LentRetry | null {
    const c = this.compiled(input.caller.namespace)
    for (let i = 0; i < c.matchers.length; i++) if (c.matchers[i](input)) return c.entries[i]
    return null
  }

  private compiled (namespace: string): { readonly entries: readonly LentRetry[], readonly matchers: readonly Matcher[] } {
    let c = this.byCaller.get(namespace)
    if (c === undefined) {
      const own = namespace === this.serviceNamespace ? [] : this.lenders.filter((l) => l.namespace === namespace)
      const entries = Object.freeze([...own, ...this.lenders.filter((l) => l.namespace === this.serviceNamespace)].map((l) => l.lent))
      c = Object.freeze({ entries, matchers: Object.freeze(entries.map((e) => compileMatch(e.match))) })
      this.byCaller.set(namespace, c)
    }
    return c
  }
}

export interface LentRetries {
  /** By "namespace/name:port": the Service ports with a GRPCRoute and a VirtualService rule that sets `retries`. */
  readonly ports: ReadonlyMap<string, PortLentRetries>
  /** "namespace/name" of the VirtualServices that lend a retry policy somewhere. */
  readonly lenders: ReadonlySet<string>
}

export function lendRetries (gateway: GatewayRouting, istio: IstioRouting): LentRetries {
  const ports = new Map<string, PortLentRetries>()
  const lenders = new Set<string>()
  for (const [key, routes] of gateway.ports) {
    const all = [...(routes.producer === null ? [] : [routes.producer]), ...routes.consumers.values()]
    if (!all.some((r) => r.entries.some((e) => e.rule.source.kind === 'GRPCRoute'))) continue
    const entries = istio.retries.get(key) ?? []
    if (!entries.some((e) => e.lent.retry !== null)) continue
    const serviceNamespace = key.slice(0, key.indexOf('/'))
    ports.set(key, new PortLentRetries(serviceNamespace, entries))
    for (const e of entries) if (e.lent.retry !== null) lenders.add(e.lent.ref)
  }
  return { ports, lenders }
}
