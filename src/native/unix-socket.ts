import { isAbsolute } from 'node:path'
import { ferryError } from '../errors'
import { native } from './binding'
import type { NativeFdWatch, NativePeerCredentials } from './native'

// Unix-domain sockets whose fds Ferry keeps: Node's pipe servers hide their fd (so it
// could not be handed to another process) and Node has neither SOCK_SEQPACKET nor
// SO_PEERCRED. Non-blocking throughout; watchReadable() tells when to accept or read,
// from libuv's loop. A listening stream socket can still be served by Node:
// net.Server.listen({ fd }).

export type UnixSocketType = 'stream' | 'seqpacket'

export interface UnixListenOptions {
  path: string
  type: UnixSocketType
  /** The socket file's mode, set before listen() (e.g. 0o600: only its owner connects). */
  mode: number
  backlog?: number
}

export type PeerCredentials = NativePeerCredentials

/** What unixListen/unixConnect accept: sun_path holds 107 bytes and a NUL. */
export const UNIX_PATH_MAX_BYTES = 107
const DEFAULT_BACKLOG = 16

/** An absolute file path (no trailing slash) that fits a unix socket address. */
export function isSocketFilePath (path: unknown): path is string {
  return typeof path === 'string' && isAbsolute(path) && !path.endsWith('/') && !path.includes('\0') && Buffer.byteLength(path) <= UNIX_PATH_MAX_BYTES
}

/** A listening socket bound at `path` (which must not exist: remove a stale one first). */
export function unixListen (o: UnixListenOptions): number {
  checkPath(o.path)
  const backlog = o.backlog ?? DEFAULT_BACKLOG
  if (!Number.isInteger(backlog) || backlog < 1) throw ferryError('FERRY_ERR_INVALID_ARG', `backlog must be a positive integer, got ${String(backlog)}`)
  if (!Number.isInteger(o.mode) || o.mode < 0 || o.mode > 0o777) throw ferryError('FERRY_ERR_INVALID_ARG', `mode must be a file mode 0-0o777, got ${String(o.mode)}`)
  return native().unixListen(o.path, seqpacket(o.type), backlog, o.mode)
}

/** A connected socket. Throws FERRY_ERR_NATIVE with errno ENOENT (no such file), ECONNREFUSED (nobody listens), EAGAIN (backlog full)… */
export function unixConnect (path: string, type: UnixSocketType): number {
  checkPath(path)
  return native().unixConnect(path, seqpacket(type))
}

/** The next waiting connection, or null when none waits. */
export function unixAccept (listenFd: number): number | null {
  checkFd(listenFd)
  const fd = native().unixAccept(listenFd)
  return fd < 0 ? null : fd
}

/** Who connected (SO_PEERCRED: recorded at connect(), so a later setuid does not change it). */
export function peerCredentials (fd: number): PeerCredentials {
  checkFd(fd)
  return native().peerCredentials(fd)
}

export interface FdWatch { close: () => void }

/**
 * Calls `onReadable` whenever `fd` is readable or hung up, until close(). It is
 * level-triggered: read until the fd would block. Close the watch before the fd.
 */
export function watchReadable (fd: number, onReadable: () => void): FdWatch {
  checkFd(fd)
  const w: NativeFdWatch = new (native().FdWatch)(fd, onReadable)
  return { close: () => { w.close() } }
}

export function checkFd (fd: unknown): asserts fd is number {
  if (typeof fd !== 'number' || !Number.isInteger(fd) || fd < 0) throw ferryError('FERRY_ERR_INVALID_ARG', `not an fd: ${String(fd)}`)
}

function checkPath (path: unknown): asserts path is string {
  if (typeof path !== 'string' || path === '' || path.includes('\0') || Buffer.byteLength(path) > UNIX_PATH_MAX_BYTES) {
    throw ferryError('FERRY_ERR_INVALID_ARG', `a unix socket path must be 1 to ${UNIX_PATH_MAX_BYTES} bytes without NUL, got ${JSON.stringify(path)}`)
  }
}

function seqpacket (type: UnixSocketType): boolean {
  if (type !== 'stream' && type !== 'seqpacket') throw ferryError('FERRY_ERR_INVALID_ARG', `unix socket type must be "stream" or "seqpacket", got ${String(type)}`)
  return type === 'seqpacket'
}
