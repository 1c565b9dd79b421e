import { parentPort, workerData } from 'node:worker_threads'
import { connectInNetns, Netns } from '../native'
import { createLogger } from '../telemetry/logger'
import type { TracingOptions } from '../telemetry/tracing/config'
import { createSpanBatcher } from '../telemetry/tracing/span-batcher'
import { requestTracerFor } from '../telemetry/tracing'
import { DataPlane, type DataPlaneOptions } from './data-plane'
import { dataPathCapture, type DataPathMapFds } from './data-path-capture'
import type { FromWorker, NetnsRef, ToWorker } from './protocol'
import { wireError } from './wire-error'

// The entry of a data-path worker thread (src/agent/workers.ts starts it). It builds its
// own logger (lines carry `worker`), its view of the capture maps and a DataPlane, then
// serves the main thread's publications and requests. An exception nothing caught ends
// the worker: its connections are reset (never closed as if complete), and the main
// thread starts a new one.

/** The data plane's settings that cross the thread boundary, and the thread's own. */
export type ThreadInit = Pick<DataPlaneOptions, 'id' | 'node' | 'sockmap' | 'connectTimeoutMs' | 'peerTunnelPort' | 'trustDomain' | 'tunnel' | 'requireConfig' | 'clusterName' | 'clusterDomain' | 'pathNormalization' | 'httpLimits' | 'limits'> & {
  readonly logLevel: string
  readonly logDestination: number | string
  readonly logName: string
  readonly maps: DataPathMapFds
  readonly live: SharedArrayBuffer
  /** The agent's tracing settings; null: off (NO_TRACING). */
  readonly tracing: TracingOptions | null
}

function main (): void {
  const port = parentPort
  if (port === null) throw new Error('src/worker/thread.ts runs as a worker thread')
  const init = workerData as ThreadInit
  const log = createLogger({ name: init.logName, level: init.logLevel, destination: init.logDestination }).child({ worker: init.id })
  // Spans leave in batches for the agent's one exporter, on the main thread.
  const spans = createSpanBatcher({ post: (b) => { port.postMessage({ type: 'spans', ...b } satisfies FromWorker) } })
  const plane = new DataPlane({
    id: init.id,
    node: init.node,
    log,
    platform: {
      // The main thread's fd, borrowed for as long as the pod is served (never closed here).
      netns: (ref: NetnsRef) => new Netns(ref.path, ref.fd),
      connectInNetns: (ns, o) => connectInNetns(ns as Netns, { host: o.host, port: o.port, family: o.family, allowHalfOpen: true }),
      capture: dataPathCapture(init.maps)
    },
    sockmap: init.sockmap,
    ...(init.connectTimeoutMs === undefined ? {} : { connectTimeoutMs: init.connectTimeoutMs }),
    peerTunnelPort: init.peerTunnelPort,
    trustDomain: init.trustDomain,
    tunnel: init.tunnel,
    requireConfig: init.requireConfig,
    ...(init.clusterName === undefined ? {} : { clusterName: init.clusterName }),
    ...(init.clusterDomain === undefined ? {} : { clusterDomain: init.clusterDomain }),
    ...(init.pathNormalization === undefined ? {} : { pathNormalization: init.pathNormalization }),
    ...(init.httpLimits === undefined ? {} : { httpLimits: init.httpLimits }),
    ...(init.limits === undefined ? {} : { limits: init.limits }),
    thread: true,
    live: new Int32Array(init.live),
    tracer: requestTracerFor(init.tracing, init.node, spans.sink)
  })
  process.on('uncaughtException', (err) => {
    log.fatal({ err, code: 'FERRY_ERR_WORKER', connections: plane.connections() }, 'worker failed: resetting its connections; the main thread starts a new worker')
    plane.resetAll()
    log.flush()
    process.exit(1)
  })
  port.on('message', (m: ToWorker) => {
    if (m.type === 'publish') {
      plane.publish(m.publication)
      return
    }
    plane.request(m.request).then(
      (reply) => {
        if (m.request.kind === 'close') spans.flush()
        port.postMessage({ type: 'reply', id: m.id, reply } satisfies FromWorker)
      },
      (err: unknown) => { port.postMessage({ type: 'reply', id: m.id, error: wireError(err) } satisfies FromWorker) }
    )
  })
  port.postMessage({ type: 'ready' } satisfies FromWorker)
}

main()
