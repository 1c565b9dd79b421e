import t from 'tap'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { createLabNodeTokens, writeLabNodeTokens } from '../../src/controller/lab-node-tokens'
import { CaClient } from '../../src/identity/ca-client'
import { createCsr } from '../../src/identity/csr'
import { generateWorkloadKey } from '../../src/identity/keys'
import { spiffeIdOf } from '../../src/identity/spiffe-id'
import { listText, podObj } from '../discovery/fixture'
import { FERRY, ferry } from '../helpers/cli'
import { tmpDir } from './harness'
import { waitFor } from '../helpers/wait'

// `ferry controller` as a user runs it (the built CLI): it listens, signs for a node's
// pods, and stops cleanly on SIGTERM.

t.test('help and bad options', async (t) => {
  const help = await ferry(['controller', '--help'])
  t.equal(help.code, 0)
  t.match(help.stdout, /usage: ferry controller --data-dir DIR --lab-nodes FILE --cluster-file FILE/)
  const bad = await ferry(['controller', '--data-dir', '/tmp/x', '--lab-nodes', 'x', '--cluster-file', 'y', '--cert-ttl', 'forever'])
  t.equal(bad.code, 1)
  t.match(bad.stderr, /^ferry: FERRY_ERR_INVALID_ARG: ferry controller: --cert-ttl "forever" is invalid/)
  t.match((await ferry(['--help'])).stdout, /controller\s+run the certificate authority/)
})

t.test('serves certificates until SIGTERM, then exits 0', async (t) => {
  const dir = tmpDir(t)
  const { document, tokenOf } = createLabNodeTokens(['n1'])
  await writeLabNodeTokens(join(dir, 'tokens.json'), document)
  writeFileSync(join(dir, 'cluster.json'), listText([podObj({ name: 'web', namespace: 'app', node: 'n1', serviceAccountName: 'web' })]))
  const child = spawn(process.execPath, [FERRY, 'controller', '--data-dir', join(dir, 'ca'), '--listen', '127.0.0.1:0',
    '--lab-nodes', join(dir, 'tokens.json'), '--cluster-file', join(dir, 'cluster.json'), '--cert-ttl', '10m'], { stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL') })
  let out = ''
  child.stdout.on('data', (d: Buffer) => { out += d.toString() })
  const listening: { address: string, rootCert: string } = await waitFor(() => out.split('\n').filter((l) => l.includes('"controller listening"')).map((l) => JSON.parse(l))[0],
    { timeoutMs: 10_000, intervalMs: 50, what: 'the controller to start' }).catch((err: Error) => { throw new Error(`${err.message}:\n${out}`) })
  t.match(listening.address, /^127\.0\.0\.1:\d+$/)
  const client = new CaClient({ address: listening.address, caRootsPem: readFileSync(listening.rootCert, 'utf8'), token: () => tokenOf.get('n1') as string })
  t.teardown(() => { client.close() })
  const chain = await client.createCertificate(await createCsr(await generateWorkloadKey(), spiffeIdOf('cluster.local', 'app', 'web')), 60)
  t.equal(chain.length, 2)
  child.kill('SIGTERM')
  const [code] = await once(child, 'exit')
  t.equal(code, 0)
  t.match(out, /"msg":"stopping"/)
})
