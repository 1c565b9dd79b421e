import t from 'tap'
import { chmodSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import pino from 'pino'
import { CA_FILES, loadOrCreateRoot } from '../../src/controller/ca-store'
import { isFerryError } from '../../src/errors'
import { tmpDir } from './harness'

// The CA data directory: made once, reused after, and never silently "repaired".

const log = pino({ level: 'silent' })
const opts = { trustDomain: 'cluster.local', now: Date.now(), log }

t.test('first start creates the root; the second reads the same one back', async (t) => {
  const dir = join(tmpDir(t), 'ca')
  const a = await loadOrCreateRoot(dir, opts)
  t.equal(a.created, true)
  const b = await loadOrCreateRoot(dir, opts)
  t.equal(b.created, false)
  t.equal(b.root.certPem, a.root.certPem)
  t.equal(readFileSync(join(dir, CA_FILES.cert), 'utf8'), a.root.certPem)
  t.match(a.root.cert.subject, /CN=Ferry root CA cluster.local/)
})

t.test('a key without its certificate (or the reverse) is an error naming both files', async (t) => {
  const dir = join(tmpDir(t), 'ca')
  await loadOrCreateRoot(dir, opts)
  rmSync(join(dir, CA_FILES.cert))
  await t.rejects(loadOrCreateRoot(dir, opts), { code: 'FERRY_ERR_CA_STORE', message: /root-key.pem exists but .*root-cert.pem does not/ })
})

t.test('a key that does not belong to the certificate is refused', async (t) => {
  const base = tmpDir(t)
  const one = join(base, 'one')
  const two = join(base, 'two')
  await loadOrCreateRoot(one, opts)
  await loadOrCreateRoot(two, opts)
  writeFileSync(join(one, CA_FILES.cert), readFileSync(join(two, CA_FILES.cert)))
  await t.rejects(loadOrCreateRoot(one, opts), { code: 'FERRY_ERR_CA_STORE', message: /does not belong to the root certificate/ })
})

t.test('a root key readable by others is refused', async (t) => {
  const dir = join(tmpDir(t), 'ca')
  await loadOrCreateRoot(dir, opts)
  chmodSync(join(dir, CA_FILES.key), 0o644)
  await t.rejects(loadOrCreateRoot(dir, opts), { code: 'FERRY_ERR_CA_STORE', message: /readable by others \(mode 644\)/ })
})

t.test('garbage in the files is a FERRY_ERR_CA_STORE, not a crash', async (t) => {
  const dir = join(tmpDir(t), 'ca')
  await loadOrCreateRoot(dir, opts)
  writeFileSync(join(dir, CA_FILES.cert), 'not pem')
  const err = await loadOrCreateRoot(dir, opts).catch((e: unknown) => e)
  t.ok(isFerryError(err, 'FERRY_ERR_CA_STORE'), String(err))
})
