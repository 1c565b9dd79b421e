import { performance } from 'node:perf_hooks'
import { Socket } from 'node:net'
import type { RelayEnd } from '../proxy/relay'
import type { RequestTelemetry } from '../telemetry/request-record'
import type { RequestTracer } from '../telemetry/request-tracing'
import type { DeclaredVersion, HttpDownstream, HttpVersion, UpstreamTarget } from './context'
import { peekVersion } from './declared'
import { NO_REQUEST_TELEMETRY, NO_TRACING } from './defaults'
import { type HttpLimits, resolveHttpLimits } from './options'
import { DEFAULT_CLUSTER_DOMAIN } from '../telemetry/cluster-names'
import type { Clock } from './record'
import { type HttpRefusals, NO_REFUSALS } from './refusals'
import { H1Server } from './server-h1'
import { H2Server } from './server-h2'
import { UpstreamPools } from './upstream-pool'

// The HTTP engine of one worker: takes downstream connections (any RelayEnd: an accepted
// socket, a tunnel stream) and handles their requests one by one — pick an endpoint,
// forward over a pooled upstream connection, stream both ways, account. HTTP/1.1
// downstream goes upstream as HTTP/1.1, HTTP/2 as HTTP/2 (server-h1.ts, server-h2.ts),
// except on a declared port whose client speaks the other version: the upstream follows
// the port (serveDeclared; forward-h1-to-h2.ts, forward-h2-to-h1.ts).
// One engine per worker; its pools are shared by every connection it serves (keys keep
// identities apart: context.ts).

export interface HttpEngineOptions {
  readonly telemetry?: RequestTelemetry
  readonly tracer?: RequestTracer
  readonly limits?: Partial<HttpLimits>
  readonly refusals?: HttpRefusals
  readonly clock?: Clock
  /** The Services' DNS domain, in spans' destination service (name.namespace.svc.DOMAIN); default cluster.local. */
  readonly clusterDomain?: string
}

export interface HttpEngineDeps {
  readonly telemetry: RequestTelemetry
  readonly tracer: RequestTracer
  readonly limits: HttpLimits
  readonly refusals: HttpRefusals
  readonly clock: Clock
  readonly pools: UpstreamPools
  readonly clusterDomain: string
}

const MONOTONIC: Clock = () => performance.now()

export class HttpEngine {
  readonly deps: HttpEngineDeps
  private readonly h1: H1Server
  private readonly h2: H2Server

  constructor (o: HttpEngineOptions = {}) {
    const limits = resolveHttpLimits(o.limits)
    this.deps = Object.freeze({
      telemetry: o.telemetry ?? NO_REQUEST_TELEMETRY,
      tracer: o.tracer ?? NO_TRACING,
      limits,
      refusals: o.refusals ?? NO_REFUSALS,
      clock: o.clock ?? MONOTONIC,
      pools: new UpstreamPools(limits.upstreamIdleTimeoutMs),
      clusterDomain: o.clusterDomain ?? DEFAULT_CLUSTER_DOMAIN
    })
    this.h1 = new H1Server(this.deps)
    this.h2 = new H2Server(this.deps)
  }

  /**
   * Serves `end`'s HTTP requests in `version` until it closes. `first`: an upstream
   * connection already made (protocol detection) to that target, pooled first.
   * The caller learns of the end from `end`'s own 'close'.
   */
  serve (end: RelayEnd, version: HttpVersion, downstream: HttpDownstream, first?: { readonly target: UpstreamTarget, readonly end: RelayEnd }): void {
    let ds = downstream
    // Every TCP end of the engine writes without Nagle, as the relay's do (relay.ts): a
    // response's headers and body are two writes, and Nagle would hold the second until
    // the peer's delayed ACK (~40 ms a request). Node's servers set it only on sockets
    // they accept themselves.
    noDelay(end)
    if (first !== undefined) {
      noDelay(first.end)
      this.deps.pools.seed(first.target, version, first.end)
      // Unused when the client goes (its requests refused, or none sent): closed with it.
      const pools = this.deps.pools
      end.once('close', () => { pools.unseed(first.target, first.end) })
      ds = new FirstPick(downstream, first.target)
    }
    if (version === 'http2') this.h2.serve(end, ds)
    else this.h1.serve(end, ds)
  }

  /**
   * Serves a declared L7 port's connection: the upstream speaks `declared`. On http1 and
   * http2 ports the client's first bytes say which version it speaks (declared.ts), and
   * its requests are translated when that is not the port's; grpc is HTTP/2 only (an
   * HTTP/1.1 client is refused by the HTTP/2 server, as before).
   */
  serveDeclared (end: RelayEnd, declared: DeclaredVersion, downstream: HttpDownstream): void {
    if (declared === 'grpc') { this.serve(end, 'http2', downstream); return }
    noDelay(end)
    peekVersion(end, this.deps.limits.headerTimeoutMs, (r) => {
      if (r === null) { this.deps.refusals.refused('header_timeout'); return }
      if (r.version === 'http2') this.h2.serve(r.end, downstream, declared === 'http1', r.resume)
      else this.h1.serve(r.end, downstream, declared === 'http2')
    })
  }

  close (): void {
    this.deps.pools.close()
  }
}

/** A downstream whose first request goes to the target already connected (detection). */
class FirstPick implements HttpDownstream {
  readonly reporter: HttpDownstream['reporter']
  readonly record: HttpDownstream['record']
  readonly authorizer: HttpDownstream['authorizer']
  readonly normalizePath: HttpDownstream['normalizePath']
  readonly route: HttpDownstream['route']
  readonly rateLimit: HttpDownstream['rateLimit']
  private first: UpstreamTarget | null
  constructor (private readonly inner: HttpDownstream, first: UpstreamTarget) {
    this.reporter = inner.reporter
    this.record = inner.record
    this.authorizer = inner.authorizer
    this.normalizePath = inner.normalizePath
    this.route = inner.route
    this.rateLimit = inner.rateLimit
    this.first = first
  }

  pick (): UpstreamTarget | null {
    const f = this.first
    if (f === null) return this.inner.pick()
    this.first = null
    return f
  }
}

function noDelay (end: RelayEnd): void {
  if (end instanceof Socket) end.setNoDelay(true)
}
