import t from 'tap'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pino from 'pino'
import { Registry } from 'prom-client'
import { openConfigSource } from '../../src/agent/config-source'
import { ConfigStream } from '../../src/agent/config-stream'
import { isFerryError } from '../../src/errors'
import { ConfigDirectoryWatcher } from '../../src/resources/watcher'

// src/agent/config-source.ts: which policy source the agent's options choose. The
// stream itself is tested against a real controller in test/controller/config-stream*.

const log = pino({ level: 'silent' })

t.test('a directory, the controller, or nothing; conflicting or incomplete choices refused', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-config-source-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  writeFileSync(join(dir, 'root.pem'), '-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n')
  const identity = { caAddress: '127.0.0.1:1', caRoot: join(dir, 'root.pem'), caTokenFile: join(dir, 'token') }

  t.equal(await openConfigSource({ configDir: null, fromController: false, identity }, { log, registry: new Registry() }), null)

  const fromDir = await openConfigSource({ configDir: dir, fromController: false, identity: null }, { log, registry: new Registry() })
  t.ok(fromDir?.source instanceof ConfigDirectoryWatcher)
  t.equal(fromDir?.origin, dir)
  fromDir?.source.close()

  const fromController = await openConfigSource({ configDir: null, fromController: true, identity }, { log, registry: new Registry() })
  t.ok(fromController?.source instanceof ConfigStream)
  t.equal(fromController?.origin, 'controller 127.0.0.1:1')
  fromController?.source.close()

  const refused = async (p: Promise<unknown>, code: 'FERRY_ERR_INVALID_ARG' | 'FERRY_ERR_CONFIG', message: RegExp): Promise<void> => {
    const err = await p.then(() => null, (e: unknown) => e)
    t.ok(isFerryError(err, code), code)
    t.match((err as Error).message, message)
  }
  await refused(openConfigSource({ configDir: dir, fromController: true, identity }, { log, registry: new Registry() }), 'FERRY_ERR_INVALID_ARG', /exclude each other/)
  await refused(openConfigSource({ configDir: null, fromController: true, identity: null }, { log, registry: new Registry() }), 'FERRY_ERR_INVALID_ARG', /needs the --ca-\* options/)
  await refused(openConfigSource({ configDir: null, fromController: true, identity: { ...identity, caRoot: join(dir, 'missing.pem') } }, { log, registry: new Registry() }), 'FERRY_ERR_CONFIG', /cannot read the CA root/)
})
