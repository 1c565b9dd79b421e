import { closeSync, fstatSync, openSync, readSync } from 'node:fs'

/** How much of a log's end an error message quotes. */
const TAIL_BYTES = 2048
const TAIL_LINES = 10

/** The last lines of a log, formatted to append to an error message ('' when empty or unreadable). */
export function tailOf (path: string, lines = TAIL_LINES): string {
  let text: string
  try {
    const fd = openSync(path, 'r')
    try {
      const size = fstatSync(fd).size
      const len = Math.min(size, TAIL_BYTES)
      const buf = Buffer.alloc(len)
      readSync(fd, buf, 0, len, size - len)
      text = buf.toString('utf8')
    } finally {
      closeSync(fd)
    }
  } catch {
    return ''
  }
  const last = text.split('\n').filter((l) => l.trim() !== '').slice(-lines)
  return last.length === 0 ? '' : `\n    | ${last.join('\n    | ')}`
}
