import { ferryError } from '../errors'
import { native } from './binding'
import { checkFd } from './unix-socket'

// Passing fds to another process over a connected unix socket (SCM_RIGHTS). The
// receiver's fds refer to the same open files — for a listening socket, the same
// kernel socket and its accept queue — and are close-on-exec. A message carries at
// most SCM_MAX_FD fds: send more in several messages. On SOCK_SEQPACKET (what the
// agent's handoff uses) a message and its fds arrive together or not at all.

/** The kernel's limit of fds in one message (include/net/scm.h). */
export const SCM_MAX_FD = 253
/** recvFds' default largest message. */
export const MAX_MESSAGE_BYTES = 64 * 1024

export interface ReceivedFds {
  /** Empty (and no fds) once the peer has closed. */
  payload: Buffer
  /** Ours to close or adopt. */
  fds: number[]
}

/** Sends one message with `fds` (borrowed: still the caller's to close); returns the bytes sent. Never blocks: EAGAIN throws. */
export function sendFds (socketFd: number, payload: Buffer, fds: readonly number[]): number {
  checkFd(socketFd)
  if (!Buffer.isBuffer(payload) || payload.length === 0) throw ferryError('FERRY_ERR_INVALID_ARG', 'the payload must be a non-empty Buffer (an empty message reads as the end of the stream)')
  if (fds.length > SCM_MAX_FD) throw ferryError('FERRY_ERR_INVALID_ARG', `at most ${SCM_MAX_FD} fds per message, got ${fds.length}: send them in batches`)
  for (const fd of fds) checkFd(fd)
  return native().sendFds(socketFd, payload, [...fds])
}

/**
 * One message, or null when none waits. A message with more than `maxFds` fds or more
 * than `maxBytes` bytes is refused whole: the fds that arrived are closed and
 * FERRY_ERR_NATIVE (errno EMSGSIZE) is thrown.
 */
export function recvFds (socketFd: number, maxFds: number, maxBytes: number = MAX_MESSAGE_BYTES): ReceivedFds | null {
  checkFd(socketFd)
  if (!Number.isInteger(maxFds) || maxFds < 0 || maxFds > SCM_MAX_FD) throw ferryError('FERRY_ERR_INVALID_ARG', `maxFds must be 0-${SCM_MAX_FD}, got ${String(maxFds)}`)
  if (!Number.isInteger(maxBytes) || maxBytes < 1 || maxBytes > 16 * MAX_MESSAGE_BYTES) throw ferryError('FERRY_ERR_INVALID_ARG', `maxBytes must be 1-${16 * MAX_MESSAGE_BYTES}, got ${String(maxBytes)}`)
  return native().recvFds(socketFd, maxBytes, maxFds)
}

/** A close-on-exec duplicate of `fd` (the same open file), the caller's to close. */
export function dupFd (fd: number): number {
  checkFd(fd)
  return native().dupFd(fd)
}
