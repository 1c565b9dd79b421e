import { closeSync } from 'node:fs'
import { Socket } from 'node:net'
import { checkAddress, checkFamily, checkPort, type Family, type Netns } from './netns'

// A TCP connection made from inside a network namespace, as a plain net.Socket.
//
// Node 20 wraps an unconnected TCP fd with `new net.Socket({ fd })` (libuv guesses
// TCP from SO_TYPE and the family) and `.connect()` then connects that very handle.
// The constructor starts reading at once; that is harmless only because connect()
// follows synchronously (an IP address needs no lookup), before the event loop
// polls the still-unconnected fd. So: IP addresses only, connect in the same tick.

export interface ConnectInNetnsOptions {
  host: string
  port: number
  family: Family
  /** Destroys the socket with an ETIMEDOUT error if not connected by then. */
  timeoutMs?: number
  allowHalfOpen?: boolean
}

/**
 * Like net.connect(): returns at once; emits 'connect', or 'error' (ECONNREFUSED,
 * ETIMEDOUT, or the failure to create the socket) — it never throws for a
 * connection's failure, only for invalid arguments.
 */
export function connectInNetns (ns: Netns, opts: ConnectInNetnsOptions): Socket {
  checkFamily(opts.family)
  checkAddress(opts.host, opts.family)
  checkPort(opts.port, false)
  let fd: number
  try {
    fd = ns.socket(opts.family)
  } catch (err) {
    const failed = new Socket()
    process.nextTick(() => failed.destroy(err as Error))
    return failed
  }
  let socket: Socket
  try {
    socket = new Socket({ fd, allowHalfOpen: opts.allowHalfOpen === true })
  } catch (err) {
    closeSync(fd)
    throw err
  }
  socket.connect({ host: opts.host, port: opts.port })
  if (opts.timeoutMs !== undefined) armConnectTimeout(socket, opts)
  return socket
}

function armConnectTimeout (socket: Socket, opts: ConnectInNetnsOptions): void {
  const timer = setTimeout(() => {
    const err = Object.assign(new Error(`connect ETIMEDOUT ${opts.host}:${opts.port}`), {
      code: 'ETIMEDOUT', syscall: 'connect', address: opts.host, port: opts.port
    })
    socket.destroy(err)
  }, opts.timeoutMs)
  const clear = (): void => { clearTimeout(timer) }
  socket.once('connect', clear)
  socket.once('close', clear)
}
