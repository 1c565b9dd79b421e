import { access, appendFile, constants, mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { ferryError } from '../../errors'
import { LAB_PATH } from '../container-env'
import { runRaw } from '../run'
import { containerId, netnsPath, POD_IFNAME, type LabPlan, type PlanNode, type PlanNodeCni, type PlanPod } from '../topology'
import { readConflist, type Conflist, type PluginConf } from './conflist'
import { primaryResult, type CniResult } from './primary'

// The container runtime's side of CNI (spec 1.0.0, sections 2, 3 and 5), for one pod's
// attachment (sandbox id, eth0): ADD runs the node's conflist in order, DEL in reverse.
// Each chained plugin is executed as `<binDir>/<type>` with
//   CNI_COMMAND, CNI_CONTAINERID (the sandbox id), CNI_NETNS (/var/run/netns/<name>),
//   CNI_IFNAME=eth0, CNI_ARGS (IgnoreUnknown=1;K8S_POD_NAMESPACE=…;K8S_POD_NAME=…;
//   K8S_POD_INFRA_CONTAINER_ID=…;K8S_POD_UID=…, as containerd sets them), CNI_PATH and PATH
// and on stdin its conflist entry with the list's cniVersion and name, without
// `capabilities`, plus `runtimeConfig` with the capability arguments it declared among
// those the lab provides (as containerd: io.kubernetes.cri.pod-annotations, cgroupPath)
// and `prevResult`: the previous plugin's result on ADD (the lab's primary result for
// the first chained plugin), the cached final ADD result on DEL. A plugin fails with a
// non-zero exit and, on stdout, the spec's error object ({code, msg, details}); stderr
// is kept for the log. The final ADD result is cached per attachment for DEL.

export const PLUGIN_TIMEOUT_MS = 15_000

/** Capability arguments the lab provides, by the name a plugin declares in `capabilities`. */
export const POD_ANNOTATIONS_CAPABILITY = 'io.kubernetes.cri.pod-annotations'
export const CGROUP_PATH_CAPABILITY = 'cgroupPath'

export interface Attachment {
  /** The pod's sandbox id (CNI_CONTAINERID). */
  readonly containerId: string
  readonly netns: string
  readonly ifname: string
  readonly args: string
  readonly capabilityArgs: Readonly<Record<string, unknown>>
}

export function attachmentFor (plan: LabPlan, pod: PlanPod, annotations: Readonly<Record<string, string>>): Attachment {
  const id = containerId(pod.uid, '')
  return {
    containerId: id,
    netns: netnsPath(plan.paths, pod.netns),
    ifname: POD_IFNAME,
    args: `IgnoreUnknown=1;K8S_POD_NAMESPACE=${pod.namespace};K8S_POD_NAME=${pod.name};K8S_POD_INFRA_CONTAINER_ID=${id};K8S_POD_UID=${pod.uid}`,
    capabilityArgs: {
      [POD_ANNOTATIONS_CAPABILITY]: { ...annotations },
      // The pod's cgroup, relative to the cgroup2 mount, as a cgroupfs-driver runtime passes it.
      [CGROUP_PATH_CAPABILITY]: pod.cgroup.startsWith(plan.paths.cgroup2) ? pod.cgroup.slice(plan.paths.cgroup2.length) : pod.cgroup
    }
  }
}

export function pluginEnv (command: 'ADD' | 'DEL', att: Attachment, binDir: string): NodeJS.ProcessEnv {
  return {
    CNI_COMMAND: command,
    CNI_CONTAINERID: att.containerId,
    CNI_NETNS: att.netns,
    CNI_IFNAME: att.ifname,
    CNI_ARGS: att.args,
    CNI_PATH: binDir,
    PATH: LAB_PATH
  }
}

/** What a plugin reads on stdin (spec section 3, "Deriving request configuration"). */
export function pluginRequest (list: Conflist, plugin: PluginConf, att: Attachment, prevResult: CniResult | null): Record<string, unknown> {
  const { capabilities, ...rest } = plugin as PluginConf & { capabilities?: Record<string, unknown> }
  const runtimeConfig: Record<string, unknown> = {}
  for (const [name, wanted] of Object.entries(capabilities ?? {})) {
    if (wanted === true && Object.hasOwn(att.capabilityArgs, name)) runtimeConfig[name] = att.capabilityArgs[name]
  }
  return {
    ...rest,
    cniVersion: list.cniVersion,
    name: list.name,
    ...(Object.keys(runtimeConfig).length > 0 ? { runtimeConfig } : {}),
    ...(prevResult === null ? {} : { prevResult })
  }
}

/** One pod's ADD through the whole list; the final result is cached and returned. Throws FERRY_ERR_LAB_CNI. */
export async function addNetwork (plan: LabPlan, node: PlanNode, pod: PlanPod, att: Attachment): Promise<CniResult> {
  const list = readConflist(node.cni)
  let result = primaryResult(plan, pod)
  for (const plugin of list.plugins.slice(1)) {
    result = await invoke('ADD', node.cni, list, plugin, att, result, pod) as CniResult
  }
  const cache = cachePath(node.cni, list.name, att)
  await mkdir(dirname(cache), { recursive: true })
  await writeFile(cache, JSON.stringify(result) + '\n', { mode: 0o644 })
  return result
}

/** One pod's DEL, in reverse order, every plugin given the cached ADD result (or the primary's when none is cached). Throws on the first failure. */
export async function delNetwork (plan: LabPlan, node: PlanNode, pod: PlanPod, att: Attachment): Promise<void> {
  const list = readConflist(node.cni)
  const cache = cachePath(node.cni, list.name, att)
  let prev: CniResult
  try {
    prev = JSON.parse(await readFile(cache, 'utf8')) as CniResult
  } catch {
    prev = primaryResult(plan, pod)
  }
  for (const plugin of list.plugins.slice(1).reverse()) await invoke('DEL', node.cni, list, plugin, att, prev, pod)
  await rm(cache, { force: true })
}

/** True once the pod's ADD succeeded (its result is cached): the pod's sandbox network is ready. */
export function cachePath (cni: PlanNodeCni, network: string, att: Pick<Attachment, 'containerId' | 'ifname'>): string {
  return join(cni.resultsDir, `${network}-${att.containerId}-${att.ifname}.json`)
}

async function invoke (command: 'ADD' | 'DEL', cni: PlanNodeCni, list: Conflist, plugin: PluginConf, att: Attachment, prev: CniResult, pod: PlanPod): Promise<unknown> {
  const exe = join(cni.binDir, plugin.type)
  const started = Date.now()
  const record = async (outcome: Record<string, unknown>): Promise<void> => {
    const line = { time: new Date().toISOString(), command, pod: `${pod.namespace}/${pod.name}`, containerId: att.containerId, plugin: plugin.type, ms: Date.now() - started, ...outcome }
    await appendFile(cni.log, JSON.stringify(line) + '\n').catch(() => {})
  }
  const fail = async (code: number | null, msg: string, details: string, stderr = ''): Promise<never> => {
    await record({ result: 'error', code, msg, details, ...(stderr === '' ? {} : { stderr: stderr.slice(0, 2000) }) })
    const codePart = code === null ? '' : `[code ${code}] `
    throw ferryError('FERRY_ERR_LAB_CNI', `CNI ${command} of pod ${pod.namespace}/${pod.name}: plugin ${plugin.type} failed: ${codePart}${msg}${details === '' ? '' : `: ${details}`}`)
  }
  try {
    await access(exe, constants.X_OK)
  } catch {
    return await fail(null, `no executable ${exe}`, '')
  }
  const input = JSON.stringify(pluginRequest(list, plugin, att, prev))
  let r
  try {
    r = await runRaw(exe, [], { input, env: pluginEnv(command, att, cni.binDir), timeoutMs: PLUGIN_TIMEOUT_MS })
  } catch (e) {
    return await fail(null, `cannot run ${exe}`, (e as Error).message)
  }
  if (r.code !== 0) {
    const err = parseError(r.stdout)
    if (err !== null) return await fail(err.code, err.msg, err.details, r.stderr)
    return await fail(null, r.code === null ? `killed after ${PLUGIN_TIMEOUT_MS} ms` : `exit ${r.code}`, (r.stderr.trim() || r.stdout.trim()).slice(0, 500), r.stderr)
  }
  if (command === 'DEL') {
    await record({ result: 'ok' })
    return null
  }
  let result: unknown
  try {
    result = JSON.parse(r.stdout)
  } catch {
    return await fail(null, 'its result is not JSON', r.stdout.slice(0, 300), r.stderr)
  }
  if (result === null || typeof result !== 'object' || Array.isArray(result)) return await fail(null, 'its result is not a JSON object', r.stdout.slice(0, 300), r.stderr)
  await record({ result: 'ok' })
  return result
}

function parseError (stdout: string): { code: number | null, msg: string, details: string } | null {
  try {
    const e = JSON.parse(stdout) as { code?: unknown, msg?: unknown, details?: unknown }
    if (e === null || typeof e !== 'object' || (e.msg === undefined && e.code === undefined)) return null
    return { code: typeof e.code === 'number' ? e.code : null, msg: String(e.msg ?? ''), details: typeof e.details === 'string' ? e.details : '' }
  } catch {
    return null
  }
}
