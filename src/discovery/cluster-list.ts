import type { ErrorObject, ValidateFunction } from 'ajv'
import { ferryError, type FerryError } from '../errors'
import * as generated from './cluster-list-validators'
import { canonicalIP } from './ip'
import { type ClusterNode, type ClusterSnapshot, type ContainerPort, deepFreeze, type Namespace, type Pod, type Protocol, type Service, type ServicePort } from './model'
import { workloadName } from './workload-name'

// Reads a Kubernetes `v1 List` (JSON) of Namespace, Node, Pod and Service objects into a
// frozen ClusterSnapshot. This is the edge: everything is checked here, once, and an
// error names the file, the object and the field. Fields Ferry does not use are ignored
// (Kubernetes objects carry many); objects of other kinds are skipped.

// Compiled ahead of time from cluster-list-schema.ts by ajv (cluster-list-codegen.ts), so
// that the agent does not load ajv's compiler and generate code at start-up: the same
// checks and the same errors, without about 60 modules and their heap.
const VALIDATE_LIST = generated.List as ValidateFunction
const VALIDATORS: Readonly<Record<string, ValidateFunction>> = Object.freeze({
  Namespace: generated.Namespace as ValidateFunction,
  Node: generated.Node as ValidateFunction,
  Pod: generated.Pod as ValidateFunction,
  Service: generated.Service as ValidateFunction
})

/** Parses and validates the text of a cluster file. Throws FERRY_ERR_CONFIG naming file, object and field. */
export function parseClusterList (text: string, origin: string, generation: number): ClusterSnapshot {
  let doc: unknown
  try {
    doc = JSON.parse(text)
  } catch (err) {
    throw ferryError('FERRY_ERR_CONFIG', `${origin}: not valid JSON: ${(err as Error).message}`)
  }
  if (!VALIDATE_LIST(doc)) throw invalid(origin, 'the List', VALIDATE_LIST.errors)
  const items = (doc as { items: Array<Record<string, any>> }).items
  const namespaces: Namespace[] = []
  const nodes: ClusterNode[] = []
  const pods: Pod[] = []
  const services: Service[] = []
  const seenUids = new Set<string>()
  items.forEach((item, i) => {
    const validate = Object.hasOwn(VALIDATORS, item.kind) ? VALIDATORS[item.kind] : undefined
    if (validate === undefined) return
    const what = describe(item, i)
    if (!validate(item)) throw invalid(origin, what, validate.errors)
    const md = item.metadata
    switch (item.kind) {
      case 'Namespace': namespaces.push({ name: md.name, labels: { ...md.labels } }); break
      case 'Node': nodes.push({ name: md.name, labels: { ...md.labels } }); break
      case 'Pod': {
        if (seenUids.has(md.uid)) throw fieldError(origin, what, 'metadata.uid', `duplicate uid ${md.uid as string}`)
        seenUids.add(md.uid)
        pods.push(toPod(item, origin, what))
        break
      }
      case 'Service': services.push(toService(item, origin, what)); break
    }
  })
  return deepFreeze({ generation, origin, namespaces, nodes, pods, services })
}

function toPod (item: Record<string, any>, origin: string, what: string): Pod {
  const md = item.metadata
  const spec = item.spec
  const status = item.status ?? {}
  const podIPs = statusIPs(status, 'podIP', origin, what)
  const hostIPs = statusIPs(status, 'hostIP', origin, what)
  const ports: ContainerPort[] = []
  for (const c of spec.containers ?? []) {
    for (const p of c.ports ?? []) ports.push({ name: p.name ?? null, containerPort: p.containerPort, protocol: (p.protocol ?? 'TCP') as Protocol })
  }
  const labels: Record<string, string> = { ...md.labels }
  return {
    uid: md.uid,
    name: md.name,
    namespace: md.namespace,
    nodeName: spec.nodeName ?? null,
    serviceAccountName: spec.serviceAccountName ?? 'default',
    labels,
    annotations: { ...md.annotations },
    podIPs,
    hostIPs,
    ports,
    probePorts: probePorts([...(spec.initContainers ?? []), ...(spec.containers ?? [])]),
    ready: isReady(md, status),
    phase: status.phase ?? null,
    hostNetwork: spec.hostNetwork === true,
    workload: workloadName(md.name, labels, md.ownerReferences)
  }
}

const PROBES = ['readinessProbe', 'livenessProbe', 'startupProbe'] as const

/**
 * The ports the kubelet's probes connect to, resolved as the kubelet does: a number as
 * is; a string names one of the container's own ports, else it is read as a number. A
 * name that resolves to nothing is a probe the kubelet fails anyway: no port.
 */
function probePorts (containers: Array<Record<string, any>>): number[] {
  const out = new Set<number>()
  for (const c of containers) {
    for (const kind of PROBES) {
      const probe = c[kind]
      const port: number | string | undefined = probe?.httpGet?.port ?? probe?.tcpSocket?.port ?? probe?.grpc?.port
      if (typeof port === 'number') { out.add(port); continue }
      if (typeof port !== 'string') continue
      const named = (c.ports ?? []).find((p: { name?: string }) => p.name === port)
      const n = named !== undefined ? named.containerPort as number : (/^\d{1,5}$/.test(port) ? Number(port) : 0)
      if (n >= 1 && n <= 65535) out.add(n)
    }
  }
  return [...out].sort((a, b) => a - b)
}

/** EndpointSlices' `ready`: the Ready condition is True and the pod is not terminating. No conditions at all: ready. */
function isReady (md: Record<string, any>, status: Record<string, any>): boolean {
  if (typeof md.deletionTimestamp === 'string') return false
  const conditions = status.conditions as Array<{ type: string, status: string }> | undefined
  if (conditions === undefined) return true
  return conditions.some((c) => c.type === 'Ready' && c.status === 'True')
}

/** status.<field>s (a list of {ip}), else status.<field>, as canonical IPs. */
function statusIPs (status: Record<string, any>, field: 'podIP' | 'hostIP', origin: string, what: string): string[] {
  const list = status[`${field}s`]
  const raw: Array<{ ip: string, field: string }> = Array.isArray(list) && list.length > 0
    ? list.map((p: { ip: string }, j: number) => ({ ip: p.ip, field: `status.${field}s[${j}].ip` }))
    : (typeof status[field] === 'string' && status[field] !== '' ? [{ ip: status[field] as string, field: `status.${field}` }] : [])
  return raw.map(({ ip, field }) => {
    const c = canonicalIP(ip)
    if (c === null) throw fieldError(origin, what, field, `"${ip}" is not an IP address`)
    return c
  })
}

function toService (item: Record<string, any>, origin: string, what: string): Service {
  const spec = item.spec
  const raw: Array<{ ip: string, field: string }> = Array.isArray(spec.clusterIPs) && spec.clusterIPs.length > 0
    ? spec.clusterIPs.map((ip: string, j: number) => ({ ip, field: `spec.clusterIPs[${j}]` }))
    : (typeof spec.clusterIP === 'string' ? [{ ip: spec.clusterIP, field: 'spec.clusterIP' }] : [])
  const clusterIPs: string[] = []
  for (const { ip, field } of raw) {
    if (ip === 'None' || ip === '') continue
    const c = canonicalIP(ip)
    if (c === null) throw fieldError(origin, what, field, `"${ip}" is not an IP address`)
    clusterIPs.push(c)
  }
  const ports: ServicePort[] = (spec.ports ?? []).map((p: Record<string, any>) => ({
    name: p.name ?? null,
    port: p.port,
    targetPort: p.targetPort ?? p.port,
    protocol: (p.protocol ?? 'TCP') as Protocol,
    appProtocol: typeof p.appProtocol === 'string' && p.appProtocol !== '' ? p.appProtocol : null
  }))
  return {
    name: item.metadata.name,
    namespace: item.metadata.namespace,
    annotations: { ...item.metadata.annotations },
    clusterIPs,
    ports,
    selector: spec.selector === undefined || Object.keys(spec.selector).length === 0 ? null : { ...spec.selector },
    publishNotReadyAddresses: spec.publishNotReadyAddresses === true
  }
}

function describe (item: Record<string, any>, i: number): string {
  const md = item.metadata
  if (md !== null && typeof md === 'object' && typeof md.name === 'string') {
    const ns = typeof md.namespace === 'string' ? `${md.namespace as string}/` : ''
    return `${item.kind as string} ${ns}${md.name as string} (items[${i}])`
  }
  return `${typeof item.kind === 'string' ? item.kind : 'object'} items[${i}]`
}

function invalid (origin: string, what: string, errors: ErrorObject[] | null | undefined): FerryError {
  const e = errors?.[0]
  if (e === undefined) return ferryError('FERRY_ERR_CONFIG', `${origin}: ${what} is invalid`)
  let path = e.instancePath.split('/').slice(1).map((seg) => /^\d+$/.test(seg) ? `[${seg}]` : `.${seg}`).join('').replace(/^\./, '')
  if (e.keyword === 'required') path = path === '' ? String(e.params.missingProperty) : `${path}.${String(e.params.missingProperty)}`
  const message = e.keyword === 'required' ? 'is required' : (e.message ?? 'is invalid')
  return fieldError(origin, what, path === '' ? '(document)' : path, message)
}

function fieldError (origin: string, what: string, field: string, message: string): FerryError {
  return ferryError('FERRY_ERR_CONFIG', `${origin}: ${what}: field ${field}: ${message}`)
}
