import { connect, createServer, type Server, type Socket } from 'node:net'
import { Conn } from '../../src/proxy/conn'
import type { RelayEnd } from '../../src/proxy/relay'
import type { HttpRequestRecord, RequestTelemetry } from '../../src/telemetry/request-record'
import type { HttpDownstream, HttpVersion, RequestAuthorizer, UpstreamTarget } from '../../src/http/context'
import { HttpEngine, type HttpEngineOptions } from '../../src/http/engine'
import type { RequestRateLimit } from '../../src/limits/types'
import type { RouteResult, RoutedRequestView } from '../../src/routing/model'
import type { ConnectionRecord } from '../../src/telemetry/connection-record'

// The engine on loopback: a plain listener hands each accepted socket to the engine
// (as the proxy hands a pod's socket or a tunnel stream), the endpoints are real servers
// on 127.0.0.1, and dial() connects plainly. Records are collected.

export interface Teardown { teardown: (fn: () => void | Promise<void>) => void }

export interface EngineFixture {
  port: number
  readonly engine: HttpEngine
  readonly records: HttpRequestRecord[]
  /** Endpoints picked in turn (round robin); change it to change the next picks. */
  endpoints: number[]
}

export interface FixtureOptions extends HttpEngineOptions {
  readonly version: HttpVersion
  readonly endpoints: number[]
  readonly authorizer?: RequestAuthorizer | null
  readonly normalizePath?: HttpDownstream['normalizePath']
  readonly reporter?: 'source' | 'destination'
  /** Served as a declared port (engine.serveDeclared): the client may speak the other version. */
  readonly declared?: boolean
  /** Replaces dial (e.g. to fail it). */
  readonly dial?: (port: number) => Promise<RelayEnd>
  /** The service's routing (HttpDownstream.route), given each connection's record; absent: none. */
  readonly route?: (view: RoutedRequestView, record: ConnectionRecord) => RouteResult
  /** The destination's local rate limit (HttpDownstream.rateLimit). */
  readonly rateLimit?: RequestRateLimit | null
}

export function dialLoopback (port: number): Promise<RelayEnd> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port, allowHalfOpen: true })
    s.once('connect', () => { s.off('error', reject); resolve(s) })
    s.once('error', reject)
  })
}

export async function startEngine (t: Teardown, o: FixtureOptions): Promise<EngineFixture> {
  const records: HttpRequestRecord[] = []
  const telemetry: RequestTelemetry = o.telemetry ?? { requestEnded (r) { records.push(r) } }
  const engine = new HttpEngine({ ...o, telemetry })
  const fx: EngineFixture = { port: 0, engine, records, endpoints: o.endpoints }
  let next = 0
  const targets = new Map<number, UpstreamTarget>()
  const clock = (): number => Date.now()
  const server: Server = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (socket: Socket) => {
    socket.on('error', () => {})
    const record = new Conn('outbound', socket, clock)
    const ds: HttpDownstream = {
      reporter: o.reporter ?? 'source',
      record,
      authorizer: o.authorizer ?? null,
      normalizePath: o.normalizePath ?? null,
      route: o.route === undefined ? null : (view) => o.route!(view, record),
      rateLimit: o.rateLimit ?? null,
      pick () {
        if (fx.endpoints.length === 0) return null
        const port = fx.endpoints[next++ % fx.endpoints.length]
        let target = targets.get(port)
        if (target === undefined) {
          target = {
            key: `test|127.0.0.1:${port}`,
            address: { address: '127.0.0.1', port, family: 4 },
            record,
            local: null,
            dial: async () => await (o.dial ?? dialLoopback)(port)
          }
          targets.set(port, target)
        }
        return target
      }
    }
    if (o.declared === true) engine.serveDeclared(socket, o.version, ds)
    else engine.serve(socket, o.version, ds)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  fx.port = (server.address() as { port: number }).port
  t.teardown(async () => {
    engine.close()
    await new Promise<void>((resolve) => { server.close(() => { resolve() }) })
  })
  return fx
}
