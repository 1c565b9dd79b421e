import { ferryError } from '../errors'
import { native } from './binding'
import { checkAddress, checkFamily, checkPort, type Family } from './netns'

// Listening sockets with the kernel options Node cannot set, in this process's own
// network namespace: a BPF socket filter (SO_ATTACH_BPF), TCP_DEFER_ACCEPT and
// SO_REUSEPORT, all in place before listen(). The addon returns the fd; Node serves it with
// net.Server.listen({ fd, backlog }).

export interface TcpListenOptions {
  family: Family
  address: string
  port: number
  backlog: number
  /** IPv6 only: accept IPv4 clients too (v4-mapped; IPV6_V6ONLY off). Default false. */
  dualStack?: boolean
  /**
   * TCP_DEFER_ACCEPT: a connection is handed to accept() only once data has arrived, or
   * after about this long without (the kernel rounds it up to its SYN-ACK retransmission
   * schedule). 0: off.
   */
  deferAcceptSeconds?: number
  /** A loaded socket filter program (BPF_PROG_TYPE_SOCKET_FILTER), by fd. */
  filterProgFd?: number
  /** SO_REUSEPORT: several listeners (one per data-path worker) may bind the same address. Default false. */
  reusePort?: boolean
}

/** The listener's fd. Throws FERRY_ERR_LISTEN (errno: EADDRINUSE, …), or FERRY_ERR_BPF_ATTACH when the filter is refused. */
/** Replaces the socket filter of a listening socket made elsewhere (one handed over). Throws FERRY_ERR_BPF_ATTACH. */
export function attachSocketFilter (fd: number, progFd: number): void {
  if (!Number.isInteger(fd) || fd < 0 || !Number.isInteger(progFd) || progFd < 0) throw ferryError('FERRY_ERR_INVALID_ARG', `attachSocketFilter: bad fd ${String(fd)} or program ${String(progFd)}`)
  native().attachSocketFilter(fd, progFd)
}

export function tcpListen (o: TcpListenOptions): number {
  checkFamily(o.family)
  checkAddress(o.address, o.family)
  checkPort(o.port, true)
  const int = (name: string, v: unknown, min: number): number => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > 0x7fffffff) throw ferryError('FERRY_ERR_INVALID_ARG', `${name} must be an integer ≥ ${min}, got ${String(v)}`)
    return v
  }
  const backlog = int('backlog', o.backlog, 1)
  const defer = int('deferAcceptSeconds', o.deferAcceptSeconds ?? 0, 0)
  const prog = o.filterProgFd === undefined ? -1 : int('filterProgFd', o.filterProgFd, 0)
  return native().tcpListen(o.family, o.address, o.port, backlog, o.dualStack === true, defer, prog, o.reusePort === true)
}

/** The local port a socket is bound to (getsockname). */
export function socketPort (fd: number): number {
  if (!Number.isInteger(fd) || fd < 0) throw ferryError('FERRY_ERR_INVALID_ARG', `not an fd: ${String(fd)}`)
  return native().socketPort(fd)
}
