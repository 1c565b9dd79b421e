import { FerryError } from '../errors'
import type { WireError } from './protocol'

// Errors cross the thread boundary as plain data and become FerryErrors again, with
// their code (FERRY_ERR_WORKER when they had none) and errno.

export function wireError (err: unknown): WireError {
  const e = err as { message?: unknown, code?: unknown, errno?: unknown }
  return {
    message: typeof e?.message === 'string' ? e.message : String(err),
    ...(typeof e?.code === 'string' ? { code: e.code } : {}),
    ...(typeof e?.errno === 'string' ? { errno: e.errno } : {})
  }
}

export function fromWire (w: WireError): FerryError {
  const ferry = w.code?.startsWith('FERRY_ERR_') === true
  // Node's system errors carry the errno name as their code (EADDRINUSE).
  const errno = w.errno ?? (!ferry && w.code !== undefined && /^E[A-Z]+$/.test(w.code) ? w.code : undefined)
  return new FerryError(ferry ? w.code as string : 'FERRY_ERR_WORKER', w.message, errno === undefined ? {} : { errno })
}
