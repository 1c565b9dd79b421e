import { fstatSync, closeSync } from 'node:fs'
import { isIP } from 'node:net'
import { ferryError } from '../errors'
import { native } from './binding'

// A network namespace held open by fd, with the few socket operations that have
// to happen inside it. The sockets are created by the addon and returned as fds.

export type Family = 4 | 6

export interface NetnsListenOptions {
  family: Family
  address: string
  port: number
  backlog?: number
  reusePort?: boolean
}

const DEFAULT_BACKLOG = 511 // Node's own default for net.Server

export class Netns {
  readonly path: string
  /** What bpf_get_netns_cookie() returns for this namespace. */
  readonly cookie: bigint
  /** The namespace's inode number (what a netns bpf_link reports). */
  readonly inode: number
  #fd: number

  constructor (path: string, fd: number) {
    this.path = path
    this.#fd = fd
    this.cookie = native().netnsCookie(fd)
    this.inode = fstatSync(fd).ino
  }

  get fd (): number { return this.#fd }

  /**
   * A listening TCP socket inside this namespace (SO_REUSEADDR; IPV6_V6ONLY for v6); returns
   * its fd. Throws FERRY_ERR_LISTEN (errno: EADDRINUSE, …), or FERRY_ERR_NETNS when the
   * namespace cannot be entered.
   */
  listen (opts: NetnsListenOptions): number {
    checkFamily(opts.family)
    checkAddress(opts.address, opts.family)
    checkPort(opts.port, true)
    const backlog = opts.backlog ?? DEFAULT_BACKLOG
    if (!Number.isInteger(backlog) || backlog < 1) throw ferryError('FERRY_ERR_INVALID_ARG', `backlog must be a positive integer, got ${String(backlog)}`)
    return native().netnsListen(this.live(), opts.family, opts.address, opts.port, backlog, opts.reusePort === true)
  }

  /** An unconnected, non-blocking, close-on-exec TCP socket inside this namespace; returns its fd. */
  socket (family: Family): number {
    checkFamily(family)
    return native().netnsSocket(this.live(), family)
  }

  close (): void {
    if (this.#fd >= 0) closeSync(this.#fd)
    this.#fd = -1
  }

  private live (): number {
    if (this.#fd < 0) throw ferryError('FERRY_ERR_NETNS', `network namespace ${this.path} is closed`)
    return this.#fd
  }
}

/** Opens a network namespace file (/var/run/netns/NAME, /proc/PID/ns/net). */
export function openNetns (path: string): Netns {
  if (typeof path !== 'string' || path === '') throw ferryError('FERRY_ERR_INVALID_ARG', 'netns path must be a non-empty string')
  const fd = native().netnsOpen(path)
  try {
    return new Netns(path, fd)
  } catch (err) {
    closeSync(fd)
    throw err
  }
}

/** The netns cookie of any socket fd (SO_NETNS_COOKIE). */
export function socketNetnsCookie (fd: number): bigint {
  if (!Number.isInteger(fd) || fd < 0) throw ferryError('FERRY_ERR_INVALID_ARG', `not an fd: ${String(fd)}`)
  return native().socketNetnsCookie(fd)
}

export function checkFamily (family: unknown): asserts family is Family {
  if (family !== 4 && family !== 6) throw ferryError('FERRY_ERR_INVALID_ARG', `family must be 4 or 6, got ${String(family)}`)
}

export function checkAddress (address: unknown, family: Family): void {
  if (typeof address !== 'string' || isIP(address) !== family) {
    throw ferryError('FERRY_ERR_INVALID_ARG', `not an IPv${family} address: ${String(address)}`)
  }
}

export function checkPort (port: unknown, allowZero: boolean): asserts port is number {
  if (typeof port !== 'number' || !Number.isInteger(port) || port < (allowZero ? 0 : 1) || port > 65535) {
    throw ferryError('FERRY_ERR_INVALID_ARG', `not a port: ${String(port)}`)
  }
}
