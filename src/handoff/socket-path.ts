import { mkdirSync, statSync } from 'node:fs'
import { dirname } from 'node:path'
import { ferryError } from '../errors'
import { isSocketFilePath, UNIX_PATH_MAX_BYTES, type PeerCredentials } from '../native'
import { prepareSocketFile } from '../util/socket-file'

// Where a handoff socket may live, and who may be at its other end. Only root (or the
// agent's own uid) reaches it: the directory is the agent's and writable by nobody
// else, the socket file is 0600, and each side checks the other's SO_PEERCRED — a
// process that could reach the file anyway (a mount shared by mistake) is refused
// before any fd moves.

export const HANDOFF_SOCKET_MODE = 0o600

/** The path, checked: absolute and short enough for sun_path. */
export function checkSocketPath (path: unknown, what = 'handoff socket'): string {
  if (!isSocketFilePath(path)) {
    throw ferryError('FERRY_ERR_INVALID_ARG', `${what} ${JSON.stringify(path)}: expected an absolute file path of at most ${UNIX_PATH_MAX_BYTES} bytes`)
  }
  return path
}

/**
 * Ready to bind: the directory exists (made 0700 when missing) and is owned by root or
 * us and writable by nobody else; a socket left at the path by an earlier agent is
 * removed (callers take over from it first); anything else there is refused.
 */
export function prepareSocketPath (path: string): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 })
  const st = statSync(dirname(path))
  const euid = process.geteuid?.() ?? 0
  if (!st.isDirectory() || (st.uid !== 0 && st.uid !== euid) || (st.mode & 0o022) !== 0) {
    throw ferryError('FERRY_ERR_HANDOFF', `handoff socket ${path}: its directory must be owned by root or uid ${euid} and writable by nobody else (it is uid ${st.uid}, mode ${(st.mode & 0o777).toString(8)})`)
  }
  prepareSocketFile(path, (message) => ferryError('FERRY_ERR_HANDOFF', `handoff socket ${message}`))
}

/** Root, or the uid we run as: the only peers that may give or take our listeners. */
export function peerAllowed (peer: PeerCredentials): boolean {
  return peer.uid === 0 || peer.uid === (process.geteuid?.() ?? 0)
}
