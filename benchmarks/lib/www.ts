import { copyFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { execOk, REPO } from './exec'

// The bench pods' web root (nginx.conf, copied from benchmarks/lab/, serves it; shared by concurrent runs):
// nginx.conf, a 1 KiB body and a sparse 1 GiB file. Every runner that brings up a bench
// lab with nginx pods writes it first.

export const WWW = '/tmp/ferry-bench-www'

export async function prepareWww (): Promise<void> {
  for (const d of ['tmp', 'run', 'files']) mkdirSync(join(WWW, d), { recursive: true })
  copyFileSync(join(REPO, 'benchmarks', 'lab', 'nginx.conf'), join(WWW, 'nginx.conf'))
  writeFileSync(join(WWW, '1k'), 'x'.repeat(1023) + '\n')
  if (!existsSync(join(WWW, 'files', '1g'))) await execOk('truncate', ['-s', '1G', join(WWW, 'files', '1g')], { timeoutMs: 5000 })
}
