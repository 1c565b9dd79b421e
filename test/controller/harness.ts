import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import pino from 'pino'
import { Controller, type ControllerDeps } from '../../src/controller/controller'
import { createLabNodeTokens, writeLabNodeTokens } from '../../src/controller/lab-node-tokens'
import { parseControllerOptions } from '../../src/controller/options'
import { CaClient } from '../../src/identity/ca-client'
import type { Logger } from '../../src/telemetry/logger'
import { listText, podObj, type PodSpecLite } from '../discovery/fixture'

// A real controller on 127.0.0.1 (port 0 unless told), over a temporary data directory,
// a lab tokens file and a cluster file, with its log lines captured for assertions.
// Shared by the controller and identity tests.

export interface LogLine { level: number, msg: string, [k: string]: unknown }

export function captureLog (): { log: Logger, lines: LogLine[] } {
  const lines: LogLine[] = []
  const sink = new Writable({
    write (chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString('utf8').split('\n')) if (l !== '') lines.push(JSON.parse(l))
      cb()
    }
  })
  return { log: pino({ level: 'info' }, sink), lines }
}

export function tmpDir (t: { teardown: (fn: () => void) => void }, prefix = 'ferry-ca-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  return dir
}

/** Pods of the default fixture: web and api on n1, db on n2. */
export const DEFAULT_PODS: PodSpecLite[] = [
  { name: 'web', namespace: 'app', node: 'n1', serviceAccountName: 'web' },
  { name: 'api', namespace: 'app', node: 'n1', serviceAccountName: 'api' },
  { name: 'db', namespace: 'data', node: 'n2', serviceAccountName: 'db' }
]

export interface CaHarness {
  readonly dir: string
  readonly dataDir: string
  readonly clusterFile: string
  readonly tokensFile: string
  readonly tokenOf: ReadonlyMap<string, string>
  readonly lines: LogLine[]
  readonly log: Logger
  controller: Controller
  /** A CA client authenticating as `node` (or with a given token). */
  client: (node: string, opts?: { token?: string, reconnect?: { initial: number, max: number } }) => CaClient
  /** Rewrites the cluster file atomically, as the lab does. */
  writePods: (pods: PodSpecLite[]) => void
  stop: () => Promise<void>
  /** Starts a controller again on the same port and data directory. */
  restart: () => Promise<void>
}

export async function startCa (t: { teardown: (fn: () => void | Promise<void>) => void }, opts: { pods?: PodSpecLite[], certTtl?: string, dir?: string, nodes?: string[], configDir?: string, deps?: Omit<ControllerDeps, 'log'> } = {}): Promise<CaHarness> {
  const dir = opts.dir ?? tmpDir(t)
  const dataDir = join(dir, 'ca')
  const clusterFile = join(dir, 'cluster.json')
  const tokensFile = join(dir, 'node-tokens.json')
  const { document, tokenOf } = createLabNodeTokens(opts.nodes ?? ['n1', 'n2'])
  await writeLabNodeTokens(tokensFile, document)
  const writePods = (pods: PodSpecLite[]): void => {
    writeFileSync(`${clusterFile}.tmp`, listText(pods.map(podObj)))
    renameSync(`${clusterFile}.tmp`, clusterFile)
  }
  writePods(opts.pods ?? DEFAULT_PODS)
  const { log, lines } = captureLog()
  const argv = (port: number): string[] => ['--data-dir', dataDir, '--listen', `127.0.0.1:${port}`, '--trust-domain', 'cluster.local',
    '--lab-nodes', tokensFile, '--cluster-file', clusterFile, '--cert-ttl', opts.certTtl ?? '1h',
    ...(opts.configDir === undefined ? [] : ['--config-dir', opts.configDir])]
  const clients: CaClient[] = []
  let running = true
  const h: CaHarness = {
    dir,
    dataDir,
    clusterFile,
    tokensFile,
    tokenOf,
    lines,
    log,
    controller: await Controller.start(parseControllerOptions(argv(0)), { ...opts.deps, log }),
    client (node, o = {}) {
      const token = o.token ?? tokenOf.get(node) ?? 'no-such-node-token-000000'
      const c = new CaClient({ address: h.controller.address, caRootsPem: h.controller.rootCertPem, token: () => token, callTimeoutMs: 3000, ...(o.reconnect === undefined ? {} : { reconnectBackoffMs: o.reconnect }) })
      clients.push(c)
      return c
    },
    writePods,
    async stop () {
      if (!running) return
      running = false
      await h.controller.close()
    },
    async restart () {
      await h.stop()
      h.controller = await Controller.start(parseControllerOptions(argv(h.controller.port)), { ...opts.deps, log })
      running = true
    }
  }
  t.teardown(async () => {
    for (const c of clients) c.close()
    await h.stop()
  })
  return h
}
