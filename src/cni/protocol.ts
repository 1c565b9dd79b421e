import { isAbsolute } from 'node:path'
import { canonicalIP } from '../discovery/ip'
import { ferryError } from '../errors'

// The contract between the ferry-cni plugin (native/cni/main.c) and the agent's CNI
// server (src/cni/server.ts): one HTTP/1.1 POST of a JSON object over the agent's unix
// socket, `Connection: close`, one JSON object back.
//
//   POST /v1/cni/add    enroll the pod, then answer 200 {"result": "enrolled" | "not-meshed"}
//   POST /v1/cni/del    forget what the pod's ADD said; 200 {"result": "forgotten"}
//   POST /v1/cni/check  200 {"result": "enrolled" | "not-meshed"} when the agent has it so
//   any other answer    4xx/5xx {"error": "<why>", "code": "FERRY_ERR_…"}; the plugin fails
//                       ADD and CHECK with it (DEL never fails)
//
// The body, from CNI_* and the network configuration:
//   {"containerId", "netns", "ifname", "namespace", "name", "uid", "infraContainerId",
//    "ips": ["10.244.1.5/24", "fd00::5/64"], "timeoutMs"}
// `ips` are prevResult's addresses of the pod's own interfaces; `timeoutMs` is how long
// the plugin waits for the answer, so the agent answers with its reason before then.

export const CNI_ROUTES = Object.freeze({ '/v1/cni/add': 'add', '/v1/cni/del': 'del', '/v1/cni/check': 'check' } as const)
export type CniCommand = (typeof CNI_ROUTES)[keyof typeof CNI_ROUTES]

/** A request body is a few hundred bytes; anything near this is not one. */
export const MAX_REQUEST_BYTES = 16 * 1024
/** The plugin's default and largest timeouts (native/cni/ferry_cni.h). */
export const PLUGIN_TIMEOUT = Object.freeze({ defaultMs: 30_000, maxMs: 300_000 })

export interface CniPodRequest {
  readonly command: CniCommand
  readonly containerId: string
  /** CNI_NETNS: the pod sandbox's network namespace file ('' on a DEL without one). */
  readonly netns: string
  readonly ifname: string
  readonly namespace: string
  readonly name: string
  /** K8S_POD_UID; null when the runtime did not pass it. */
  readonly uid: string | null
  readonly infraContainerId: string
  /** Canonical pod IPs from prevResult, without prefix length, in order, no duplicates. */
  readonly podIPs: readonly string[]
  readonly timeoutMs: number
}

// Kubernetes' own limits: a namespace is a DNS label, a pod name a DNS subdomain.
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/
const UID = /^[0-9A-Za-z-]{1,128}$/
// CNI: "alphanumeric, then alphanumerics, underscore, dot or hyphen".
const CONTAINER_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,255}$/
const IFNAME = /^[^\s/:]{1,15}$/

/** Validates a request body; throws FERRY_ERR_CNI naming the field. */
export function parsePodRequest (command: CniCommand, body: unknown): CniPodRequest {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw bad('the body must be a JSON object')
  const b = body as Record<string, unknown>
  const str = (key: string): string => {
    const v = b[key] ?? ''
    if (typeof v !== 'string') throw bad(`"${key}" must be a string`)
    return v
  }
  const namespace = str('namespace')
  const name = str('name')
  if (!DNS_LABEL.test(namespace)) throw bad(`"namespace" "${namespace.slice(0, 64)}" is not a Kubernetes namespace name`)
  if (!DNS_SUBDOMAIN.test(name)) throw bad(`"name" "${name.slice(0, 64)}" is not a Kubernetes pod name`)
  const uid = str('uid')
  if (uid !== '' && !UID.test(uid)) throw bad(`"uid" "${uid.slice(0, 64)}" is not a pod UID`)
  const containerId = str('containerId')
  if (command !== 'del' && !CONTAINER_ID.test(containerId)) throw bad(`"containerId" "${containerId.slice(0, 64)}" is not a CNI container ID`)
  const netns = str('netns')
  if (command !== 'del' && (!isAbsolute(netns) || netns.length > 4096 || netns.includes('\0'))) throw bad(`"netns" "${netns.slice(0, 128)}" is not an absolute path`)
  const ifname = str('ifname')
  if (command !== 'del' && !IFNAME.test(ifname)) throw bad(`"ifname" "${ifname.slice(0, 32)}" is not an interface name`)
  const infraContainerId = str('infraContainerId')
  return Object.freeze({
    command,
    containerId,
    netns,
    ifname,
    namespace,
    name,
    uid: uid === '' ? null : uid,
    infraContainerId,
    podIPs: Object.freeze(podIPs(b.ips)),
    timeoutMs: timeout(b.timeoutMs)
  })
}

function podIPs (value: unknown): string[] {
  if (value === undefined) return []
  if (!Array.isArray(value) || value.length > 16) throw bad('"ips" must be a list of at most 16 addresses')
  const out: string[] = []
  for (const entry of value) {
    if (typeof entry !== 'string') throw bad('"ips" must hold strings such as "10.244.1.5/24"')
    const slash = entry.indexOf('/')
    const ip = canonicalIP(slash < 0 ? entry : entry.slice(0, slash))
    if (ip === null || (slash >= 0 && !/^\d{1,3}$/.test(entry.slice(slash + 1)))) throw bad(`"ips": "${entry.slice(0, 64)}" is not an address with an optional prefix length`)
    if (!out.includes(ip)) out.push(ip)
  }
  return out
}

function timeout (value: unknown): number {
  if (value === undefined) return PLUGIN_TIMEOUT.defaultMs
  if (!Number.isInteger(value) || (value as number) < 1 || (value as number) > PLUGIN_TIMEOUT.maxMs) throw bad(`"timeoutMs" must be a whole number of milliseconds from 1 to ${PLUGIN_TIMEOUT.maxMs}`)
  return value as number
}

function bad (why: string): Error {
  return ferryError('FERRY_ERR_CNI', `malformed CNI request: ${why}`)
}

/** "namespace/name" of a request, for logs and errors. */
export function podName (r: Pick<CniPodRequest, 'namespace' | 'name'>): string { return `${r.namespace}/${r.name}` }
