import { lstatSync, mkdirSync, rmSync } from 'node:fs'
import { dirname } from 'node:path'
import type { FerryError } from '../errors'

// The file of a unix socket a Ferry process is about to listen on: its directory exists
// (made 0700 when missing), a socket left there by an earlier process is removed (a
// listener that died, or one whose sockets were taken over and that no longer listens
// there), and anything else at the path is refused rather than removed.

/** `refuse(message)` makes the error for something in the way (each caller's own code and option name). */
export function prepareSocketFile (path: string, refuse: (message: string) => FerryError): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 })
  let isSocket: boolean
  try {
    isSocket = lstatSync(path).isSocket()
  } catch {
    return
  }
  if (!isSocket) throw refuse(`${path}: something that is not a socket is in the way`)
  rmSync(path)
}
