import { mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { isAbsolute, join, resolve } from 'node:path'
import { ferryError } from '../../errors'
import { LAB_CNI_NETWORK, LAB_CNI_PRIMARY, type LabPlan, type PlanNodeCni } from '../topology'

// Each node's CNI network configuration list, the file a container runtime reads from
// /etc/cni/net.d (CNI spec 1.0.0, section 1). Its first plugin is the lab's own primary
// (type ferry-lab-primary: the lab itself made the pod's veth, addresses and routes, and
// computes that plugin's result instead of executing it); the plugins after it are
// chained and executed from the node's bin dir, where the lab links their executables.
// The runtime re-reads the file for every pod, so a plugin entry inserted into it later
// (as an installer does on a node) takes effect for the next pod.

export const CNI_VERSION = '1.0.0'

export interface PluginConf {
  readonly type: string
  readonly [key: string]: unknown
}

export interface Conflist {
  readonly cniVersion: string
  readonly name: string
  readonly plugins: readonly PluginConf[]
}

export function conflistFor (cni: PlanNodeCni): Conflist {
  return {
    cniVersion: CNI_VERSION,
    name: LAB_CNI_NETWORK,
    plugins: [{ type: LAB_CNI_PRIMARY }, ...cni.plugins.map((p) => ({ ...p.config, type: p.type }))]
  }
}

/** Writes every node's conflist and links the chained plugins' executables into its bin dir. */
export function writeNodeCniConfig (plan: LabPlan): void {
  for (const node of plan.nodes) {
    const cni = node.cni
    mkdirSync(cni.confDir, { recursive: true })
    mkdirSync(cni.binDir, { recursive: true })
    mkdirSync(cni.resultsDir, { recursive: true })
    for (const p of cni.plugins) {
      const link = join(cni.binDir, p.type)
      rmSync(link, { force: true })
      symlinkSync(isAbsolute(p.path) ? p.path : resolve(p.path), link)
    }
    writeFileSync(cni.conflist, JSON.stringify(conflistFor(cni), null, 2) + '\n', { mode: 0o644 })
  }
}

/** The node's conflist as it is on disk now; its first plugin must be the lab's primary. */
export function readConflist (cni: PlanNodeCni): Conflist {
  let c: Conflist
  try {
    c = JSON.parse(readFileSync(cni.conflist, 'utf8')) as Conflist
  } catch (e) {
    throw ferryError('FERRY_ERR_LAB_CNI', `cannot read the network configuration ${cni.conflist}: ${(e as Error).message}`, { cause: e })
  }
  const problem = conflistProblem(c)
  if (problem !== null) throw ferryError('FERRY_ERR_LAB_CNI', `${cni.conflist}: ${problem}`)
  return c
}

function conflistProblem (c: Conflist): string | null {
  if (c === null || typeof c !== 'object') return 'not a JSON object'
  if (typeof c.cniVersion !== 'string' || typeof c.name !== 'string') return 'needs cniVersion and name'
  if (!Array.isArray(c.plugins) || c.plugins.length === 0) return 'needs a plugins list'
  if (c.plugins[0]?.type !== LAB_CNI_PRIMARY) return `its first plugin must be the lab's primary (type ${LAB_CNI_PRIMARY})`
  for (const [i, p] of c.plugins.entries()) {
    if (typeof p?.type !== 'string' || p.type === '' || p.type.includes('/')) return `plugins[${i}].type must be a file name`
  }
  return null
}
