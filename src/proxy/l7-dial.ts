import type { Socket } from 'node:net'
import type { SocketAddr } from '../telemetry/connection-record'
import { errorCodeOf } from './conn'
import type { Connector } from './connect'

// One upstream socket for the HTTP engine's pools (src/http/upstream-pool.ts), through a
// Connector (a pod's netns), as connect.ts does for a relayed connection: bounded by
// timeoutMs, half-open capable; failures reject with an error whose `code` says why.

export async function dialSocket (connector: Connector, target: SocketAddr, timeoutMs: number): Promise<Socket> {
  return await new Promise<Socket>((resolve, reject) => {
    let s: Socket
    try {
      s = connector({ host: target.address, port: target.port, family: target.family, timeoutMs })
    } catch (err) {
      reject(withCode(err))
      return
    }
    s.allowHalfOpen = true
    const timer = setTimeout(() => { s.destroy(); reject(Object.assign(new Error('connect timeout'), { code: 'ETIMEDOUT' })) }, timeoutMs)
    s.once('connect', () => {
      clearTimeout(timer)
      // Requests are written as headers then body: without TCP_NODELAY the body waits
      // for the pod's delayed ACK.
      s.setNoDelay(true)
      s.off('error', onError)
      s.on('error', () => {})
      resolve(s)
    })
    const onError = (err: Error): void => {
      clearTimeout(timer)
      s.destroy()
      reject(withCode(err))
    }
    s.once('error', onError)
  })
}

function withCode (err: unknown): Error {
  const e = err instanceof Error ? err : new Error(String(err))
  if ((e as { code?: unknown }).code === undefined) Object.assign(e, { code: errorCodeOf(err) })
  return e
}
