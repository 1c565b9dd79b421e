import { readFile } from 'node:fs/promises'
import { basename, dirname } from 'node:path'
import { ferryError } from '../errors'
import type { Logger } from '../telemetry/logger'
import { ChangeTrigger, fileFingerprint } from '../util/change-trigger'
import { ListWatchServer } from './api-server'
import { syncList } from './api-server-sync'

// `ferry lab api-server` (hidden; `ferry lab up --kubernetes-api` starts it in the
// underlay namespace): the list + watch server fed from the lab's cluster file. Every
// rewrite of the file becomes creates, replaces and deletes, each with its watch event.
// Its resourceVersions start at the start time in microseconds, so a restarted server's
// are all newer than its predecessor's and a watch resumed from one of those gets
// 410 Gone and re-lists — what an agent sees after an etcd compaction.

export interface LabApiServerOptions {
  readonly clusterFile: string
  readonly host: string
  readonly port: number
  readonly token: string
  readonly log: Logger
  /** The first resourceVersion; default: now in microseconds. */
  readonly initialResourceVersion?: number
}

export interface RunningLabApiServer {
  readonly url: string
  readonly server: ListWatchServer
  close (): Promise<void>
}

export async function startLabApiServer (opts: LabApiServerOptions): Promise<RunningLabApiServer> {
  const { log } = opts
  const server = new ListWatchServer({
    token: opts.token,
    initialResourceVersion: opts.initialResourceVersion ?? Date.now() * 1000,
    keepRequests: false,
    onRequest: (r) => {
      const watch = r.query.watch === 'true'
      log.info({ verb: watch ? 'watch' : 'list', path: r.path, fieldSelector: r.query.fieldSelector, resourceVersion: r.query.resourceVersion, authorized: r.authorization === `Bearer ${opts.token}` }, 'request')
    }
  })
  let lastText = ''
  const reload = async (): Promise<void> => {
    trigger.seen = await fileFingerprint(opts.clusterFile)
    let text: string
    try {
      text = await readFile(opts.clusterFile, 'utf8')
    } catch (err) {
      log.error({ err: (err as Error).message }, 'cannot read the cluster file; serving the last objects')
      return
    }
    if (text === lastText) return
    let list: { items?: unknown[] }
    try {
      list = JSON.parse(text) as { items?: unknown[] }
    } catch (err) {
      log.error({ err: (err as Error).message }, 'the cluster file is not JSON; serving the last objects')
      return
    }
    lastText = text
    const report = syncList(server, list)
    log.info({ ...report, resourceVersion: server.resourceVersion }, 'objects synced from the cluster file')
  }
  const trigger = new ChangeTrigger({
    dir: dirname(opts.clusterFile),
    name: basename(opts.clusterFile),
    fingerprint: async () => await fileFingerprint(opts.clusterFile),
    reload,
    log,
    what: 'cluster file'
  })
  await reload()
  if (lastText === '') throw ferryError('FERRY_ERR_LAB', `lab api-server: no objects to serve from ${opts.clusterFile}`)
  const url = await server.start(opts.host, opts.port).catch((err: NodeJS.ErrnoException) => {
    throw ferryError('FERRY_ERR_LISTEN', `lab api-server: cannot listen on ${opts.host}:${opts.port}: ${err.message}`, { cause: err, errno: err.code })
  })
  trigger.start()
  log.info({ url, resourceVersion: server.resourceVersion }, 'lab api-server listening')
  return {
    url,
    server,
    close: async () => {
      trigger.close()
      await server.close()
    }
  }
}
