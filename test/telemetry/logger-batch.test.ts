import t from 'tap'
import { spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { LOG_FLUSH_MS, LOG_MAX_PENDING_BYTES, createLogger } from '../../src/telemetry/logger'
import { REPO } from '../helpers/cli'
import { waitFor } from '../helpers/wait'

// Log lines are batched by the destination (src/telemetry/logger.ts): a real logger
// writing to a real file. Lines must arrive whole and in order within the flush
// interval, a full batch at once, and every pending line on exit.

const dir = mkdtempSync(join(tmpdir(), 'ferry-logbatch-'))
t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
const lines = (file: string): any[] => { try { return readFileSync(file, 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l)) } catch { return [] } }

t.test('lines are held, then written together and in order within the flush interval', async (t) => {
  const file = join(dir, 'a.log')
  const log = createLogger({ name: 't', level: 'info', destination: file })
  for (let n = 0; n < 3; n++) log.info({ n }, 'line')
  t.same(lines(file), [], 'nothing written at once: the lines wait for a batch')
  const t0 = Date.now()
  await waitFor(() => lines(file).length === 3, { what: 'the batch', timeoutMs: 5000, intervalMs: 10 })
  t.ok(Date.now() - t0 < LOG_FLUSH_MS * 10, 'written within the flush interval (with slack for a busy machine)')
  t.same(lines(file).map((l) => l.n), [0, 1, 2], 'whole and in order')
})

t.test('a full batch is written without waiting for the interval', async (t) => {
  const file = join(dir, 'b.log')
  const log = createLogger({ name: 't', level: 'info', destination: file })
  const big = 'x'.repeat(2048)
  for (let n = 0; n < 12; n++) log.info({ n, big }, 'line')
  await waitFor(() => lines(file).length >= 8, { what: 'the full batch', timeoutMs: LOG_FLUSH_MS * 0.8, intervalMs: 5 })
  t.pass('written before the interval passed')
})

t.test('a process that exits writes every pending line', async (t) => {
  // The built logger (the suite runs after the build, as the CLI tests do), on a file
  // descriptor as the agent's stdout is.
  const file = join(dir, 'c.log')
  const built = join(__dirname, '../../dist/src/telemetry/logger.js')
  const src = `const { createLogger } = require(${JSON.stringify(built)}); const fd = require('node:fs').openSync(${JSON.stringify(file)}, 'a'); const l = createLogger({ name: 't', level: 'info', destination: fd }); for (let n = 0; n < 5; n++) l.info({ n }, 'line'); process.exit(0)`
  const r = spawnSync(process.execPath, ['-e', src], { encoding: 'utf8' })
  t.equal(r.status, 0, r.stderr)
  t.same(lines(file).map((l) => l.n), [0, 1, 2, 3, 4], 'all five lines, though the process never waited')
})

t.test('a stdout nobody reads: lines beyond the bound are dropped and counted, memory stays bounded', async (t) => {
  // Guards the destination's maxLength (LOG_MAX_PENDING_BYTES): without it the ~64 MB of
  // lines written here would all wait in the heap for a reader that never comes.
  const LINES = 250_000
  const child = spawn(process.execPath, ['--expose-gc', join(REPO, 'test/fixtures/log-flood.js'), join(REPO, 'dist'), String(LINES)], { stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => { child.kill('SIGKILL') })
  // stdout is a pipe this test never reads from: it fills, and the child's writes wait.
  let stderr = ''
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
  const report = await waitFor(() => { const l = stderr.split('\n').find((x) => x.startsWith('{')); return l === undefined ? null : JSON.parse(l) }, { what: `the child's report (${stderr})`, timeoutMs: 60_000 })
  t.comment(JSON.stringify(report))
  t.ok(report.dropped > LINES / 2, `most lines were dropped (${report.dropped as number} of ${LINES})`)
  t.equal(report.metric, report.dropped, 'and counted in ferry_log_lines_dropped_total{reason="output_full"}')
  t.ok(report.heapGrowth < LOG_MAX_PENDING_BYTES * 4, `the heap grew by ${((report.heapGrowth as number) / 2 ** 20).toFixed(1)} MiB, not by the ~64 MB written`)
})
