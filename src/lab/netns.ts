import { existsSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { ferryError } from '../errors'
import { run, runRaw } from './run'

// Network namespaces and links, through iproute2. A namespace is a name under
// /var/run/netns (a bind mount of the namespace); deleting it drops the name, and the
// namespace with its interfaces goes once no process or socket holds it.

export async function addNetns (name: string): Promise<void> {
  await run('ip', ['netns', 'add', name])
}

/** Deletes the named namespace if it exists. */
export async function deleteNetns (netnsDir: string, name: string): Promise<void> {
  if (!existsSync(join(netnsDir, name))) return
  await run('ip', ['netns', 'delete', name])
}

/**
 * Deletes link `name` of namespace `netns` if both are there. A veth's deletion takes its
 * peer with it at once, where the links of a deleted namespace go only when the kernel's
 * cleanup gets to them: until then their names are taken.
 */
export async function deleteLinkIfPresent (netnsDir: string, netns: string, name: string): Promise<void> {
  if (!existsSync(join(netnsDir, netns))) return
  const r = await runRaw('ip', ['-n', netns, 'link', 'del', name])
  if (r.code !== 0 && !/Cannot find device/.test(r.stderr)) throw ferryError('FERRY_ERR_LAB', `\`ip -n ${netns} link del ${name}\` failed (exit ${String(r.code)}): ${r.stderr.trim()}`)
}

export function listNetns (netnsDir: string): string[] {
  try {
    return readdirSync(netnsDir)
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return []
    throw e
  }
}

/** Runs `ip` commands (one per line, without the leading `ip`) inside a namespace, in one process. */
export async function ipBatch (netns: string, lines: readonly string[]): Promise<void> {
  if (lines.length === 0) return
  await run('ip', ['-n', netns, '-batch', '-'], { input: lines.join('\n') + '\n' })
}

/**
 * Creates a veth pair with each end directly in its namespace: the pair never exists in
 * the host's own namespace, not even for a moment.
 */
export async function addVethPair (a: { netns: string, name: string }, b: { netns: string, name: string }): Promise<void> {
  await run('ip', ['link', 'add', a.name, 'netns', a.netns, 'type', 'veth', 'peer', 'name', b.name, 'netns', b.netns])
}

/** Sets sysctls of a namespace (net.* keys are per namespace). */
export async function setSysctls (netnsPath: string, settings: Readonly<Record<string, string | number>>): Promise<void> {
  const args = Object.entries(settings).map(([k, v]) => `${k}=${v}`)
  if (args.length === 0) return
  await run('nsenter', [`--net=${netnsPath}`, '--', 'sysctl', '-q', '-w', ...args])
}
