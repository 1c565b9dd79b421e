import { randomBytes } from 'node:crypto'
import { closeSync, fchmodSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs'
import { basename, dirname, join } from 'node:path'

// Replacing a file so that a reader sees the old content or the new one, never a part
// of either: write a temporary file in the same directory (so the rename stays on one
// filesystem), fsync it, rename it over the target. A reader that opened the old file
// keeps reading the old inode. The temporary name starts with "." and ends with ".tmp",
// so directory scanners that pick files by extension (a CNI runtime's *.conflist)
// never take it for a real file.

export function writeFileAtomic (path: string, data: string | Uint8Array, mode = 0o644): void {
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(4).toString('hex')}.tmp`)
  const fd = openSync(tmp, 'wx', mode)
  try {
    fchmodSync(fd, mode) // exactly `mode`, whatever the umask
    const bytes = typeof data === 'string' ? Buffer.from(data) : data
    let done = 0
    while (done < bytes.length) done += writeSync(fd, bytes, done, bytes.length - done)
    fsyncSync(fd)
  } catch (err) {
    closeSync(fd)
    rmSync(tmp, { force: true })
    throw err
  }
  closeSync(fd)
  try {
    renameSync(tmp, path)
  } catch (err) {
    rmSync(tmp, { force: true })
    throw err
  }
}
