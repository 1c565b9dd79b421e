import { isAbsolute } from 'node:path'
import { PATHS } from '../config/env'
import { parseCommandOptions } from '../config/cli-args'
import { entrySettings } from '../cni/entry'
import { type CniInstallOptions, installCni, PLUGIN_BINARY, uninstallCni } from '../cni/install'
import { ferryError } from '../errors'

// `ferry cni install|uninstall`: argument parsing and output only; the work is in
// src/cni/install.ts. The DaemonSet's init container runs `install` from Ferry's image
// with the host's directories mounted; `uninstall` cleans a node by hand.

export const CNI_USAGE = `usage: ferry cni install [--bin-dir ${PATHS.cniBinDir}] [--conf-dir ${PATHS.cniConfDir}] [--plugin PATH]
                         [--socket ${PATHS.cniSocket}] [--state-file ${PATHS.cniStateFile}]
                         [--timeout 30s] [--log-file PATH]
       ferry cni uninstall [--bin-dir ${PATHS.cniBinDir}] [--conf-dir ${PATHS.cniConfDir}]
                           [--state-file ${PATHS.cniStateFile}]

install    copies the ferry-cni plugin into --bin-dir, then inserts Ferry's entry after
           the primary plugin of the node's CNI configuration (the first *.conf,
           *.conflist or *.json of --conf-dir; a lone .conf becomes a .conflist). Run it
           again: it changes nothing that is already right. With no configuration yet,
           the agent (--cni-conf-dir) inserts the entry when the primary CNI writes one.
uninstall  removes Ferry's entry from every configuration of --conf-dir, then the
           plugin, then the state file. Meshed pods then start without the mesh.

  --plugin      the plugin binary to copy (default: ${PLUGIN_BINARY})
  --socket      the agent's socket, as the plugin on the host reaches it
  --state-file  the file the agent keeps and the plugin decides from
  --timeout     how long a meshed pod's CNI ADD waits for the agent
  --log-file    where the plugin logs one JSON line per call (default: no log)

See docs/install.md, "Pod start: the ferry-cni plugin".
`

export async function cniCommand (argv: string[]): Promise<number> {
  const [sub, ...rest] = argv
  if (sub === undefined || sub === '-h' || sub === '--help' || rest.includes('-h') || rest.includes('--help')) {
    process.stdout.write(CNI_USAGE)
    return sub === undefined ? 2 : 0
  }
  if (sub === 'install') return install(rest)
  if (sub === 'uninstall') return uninstall(rest)
  throw ferryError('FERRY_ERR_INVALID_ARG', `ferry cni: unknown subcommand "${sub}" (install, uninstall)\n\n${CNI_USAGE}`)
}

/** `ferry cni install`'s options, checked and frozen (the manifests' tests parse the init container's args with it). */
export function parseCniInstallOptions (argv: string[]): CniInstallOptions {
  const v = parseCommandOptions('cni install', argv, {
    'bin-dir': { type: 'string' },
    'conf-dir': { type: 'string' },
    plugin: { type: 'string' },
    socket: { type: 'string' },
    'state-file': { type: 'string' },
    timeout: { type: 'string' },
    'log-file': { type: 'string' }
  })
  const entry = entrySettings({ socket: v.socket, stateFile: v['state-file'], timeout: v.timeout, logFile: v['log-file'] }, (name) => `--${name}`, 'cni install')
  for (const o of ['bin-dir', 'conf-dir', 'plugin'] as const) {
    const value = v[o]
    if (value !== undefined && !isAbsolute(value)) throw ferryError('FERRY_ERR_INVALID_ARG', `ferry cni install: --${o} "${value}" is invalid: expected an absolute path`)
  }
  return Object.freeze({ binDir: v['bin-dir'] ?? PATHS.cniBinDir, confDir: v['conf-dir'] ?? PATHS.cniConfDir, entry, ...(v.plugin === undefined ? {} : { plugin: v.plugin }) })
}

function install (argv: string[]): number {
  const options = parseCniInstallOptions(argv)
  const confDir = options.confDir
  const r = installCni(options)
  const out = [`ferry cni: plugin installed as ${r.binary}`]
  const c = r.conf
  if (c.action === 'converted') out.push(`ferry cni: ${c.from} converted to ${c.file}, with Ferry's entry after the primary plugin`)
  else if (c.action === 'inserted' || c.action === 'replaced') out.push(`ferry cni: Ferry's entry ${c.action} in ${c.file}`)
  else if (c.file !== null) out.push(`ferry cni: ${c.file} already has Ferry's entry`)
  else out.push(`ferry cni: no CNI configuration in ${confDir} yet; the agent inserts Ferry's entry when the primary CNI writes one`)
  process.stdout.write(`${out.join('\n')}\n`)
  return 0
}

function uninstall (argv: string[]): number {
  const v = parseCommandOptions('cni uninstall', argv, {
    'bin-dir': { type: 'string' },
    'conf-dir': { type: 'string' },
    'state-file': { type: 'string' }
  })
  const r = uninstallCni({ binDir: v['bin-dir'] ?? PATHS.cniBinDir, confDir: v['conf-dir'] ?? PATHS.cniConfDir, stateFile: v['state-file'] ?? PATHS.cniStateFile })
  const out = [
    ...r.confs.map((f) => `ferry cni: Ferry's entry removed from ${f}`),
    `ferry cni: plugin ${r.binaryRemoved ? 'removed' : 'was not installed'}`,
    `ferry cni: state file ${r.stateFileRemoved ? 'removed' : 'was not there'}`
  ]
  process.stdout.write(`${out.join('\n')}\n`)
  for (const err of r.errors) process.stderr.write(`ferry cni: ${err.message}\n`)
  return r.errors.length === 0 ? 0 : 1
}
