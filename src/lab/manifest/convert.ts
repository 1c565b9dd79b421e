import { dirname, isAbsolute, resolve } from 'node:path'
import { canonicalAddress, familyOfIP, inServiceRange, SERVICE_CIDRS } from '../ipam'
import type { FieldPath } from './issues'
import { nameProblem } from './names'
import { toProbes } from './probes'
import {
  DEFAULT_GRACE_SECONDS, DEFAULT_NAMESPACE, MAX_GRACE_SECONDS,
  type IPFamily, type IPFamilyPolicy, type LabContainer, type LabEnvVar, type LabNamespace, type LabNode,
  type LabPod, type LabService, type LabServicePort, type Origin
} from './spec'

// One schema-valid object → its typed lab form, with the checks the API server would
// make on that object alone (name formats, unique container names, family rules) and
// the lab's own (a container needs a command; a pod needs a node). Probes: probes.ts.

export interface Reporter {
  readonly file: string
  readonly origin: Origin
  /** Records a problem at `path` of this object. */
  report: (path: FieldPath, message: string) => void
}

type Obj = Record<string, any>

/** Downward API fields the lab can fill in (spec.containers[].env[].valueFrom.fieldRef). */
export const SUPPORTED_FIELD_PATHS: readonly RegExp[] = [
  /^metadata\.(name|namespace|uid)$/,
  /^metadata\.(labels|annotations)\['[^']+'\]$/,
  /^spec\.(nodeName|serviceAccountName)$/,
  /^status\.(podIP|podIPs|hostIP|hostIPs)$/
]

export function toNode (v: Obj, r: Reporter): LabNode {
  checkName(v.metadata.name, 'dns1123-subdomain', r)
  return { name: v.metadata.name, labels: { ...v.metadata.labels }, annotations: { ...v.metadata.annotations }, origin: r.origin }
}

export function toNamespace (v: Obj, r: Reporter): LabNamespace {
  checkName(v.metadata.name, 'dns1123-label', r)
  return { name: v.metadata.name, labels: { ...v.metadata.labels }, annotations: { ...v.metadata.annotations }, declared: true }
}

export function toPod (v: Obj, r: Reporter): LabPod {
  const md = v.metadata
  const spec = v.spec ?? {}
  checkName(md.name, 'dns1123-subdomain', r)
  if (spec.nodeName === undefined) r.report(['spec', 'nodeName'], 'is required: the lab does not schedule, name the Node for each Pod')
  const sa = spec.serviceAccountName ?? spec.serviceAccount ?? 'default'
  if (spec.serviceAccountName !== undefined && spec.serviceAccount !== undefined && spec.serviceAccountName !== spec.serviceAccount) {
    r.report(['spec', 'serviceAccount'], `differs from spec.serviceAccountName "${spec.serviceAccountName as string}"`)
  }
  if (spec.hostname !== undefined) checkName(spec.hostname, 'dns1123-label', r, ['spec', 'hostname'])
  const hostAliases = (spec.hostAliases ?? []).map((a: Obj, i: number) => {
    if (a.ip === undefined || canonicalAddress(a.ip) === null) r.report(['spec', 'hostAliases', i, 'ip'], 'must be an IP address')
    return { ip: a.ip ?? '', hostnames: [...(a.hostnames ?? [])] }
  })
  const containers: Obj[] = spec.containers ?? []
  if (containers.length === 0) r.report(['spec', 'containers'], 'must have at least one container')
  const seenContainer = new Set<string>()
  const seenPort = new Map<number, string>()
  const seenPortName = new Set<string>()
  const out: LabContainer[] = containers.map((c, i) => {
    const at = ['spec', 'containers', i]
    checkName(c.name, 'dns1123-label', r, [...at, 'name'])
    if (seenContainer.has(c.name)) r.report([...at, 'name'], `duplicate container name "${c.name as string}"`)
    seenContainer.add(c.name)
    const ports = (c.ports ?? []).map((p: Obj, j: number) => {
      const pat = [...at, 'ports', j]
      if (!(p.containerPort >= 1 && p.containerPort <= 65535)) r.report([...pat, 'containerPort'], 'must be between 1 and 65535')
      const prior = seenPort.get(p.containerPort)
      if (prior !== undefined) r.report([...pat, 'containerPort'], `port ${p.containerPort as number} is already declared by container "${prior}"`)
      seenPort.set(p.containerPort, c.name)
      if (p.name !== undefined) {
        checkName(p.name, 'port-name', r, [...pat, 'name'])
        if (seenPortName.has(p.name)) r.report([...pat, 'name'], `duplicate port name "${p.name as string}" in the pod`)
        seenPortName.add(p.name)
      }
      return p.name === undefined ? { containerPort: p.containerPort } : { name: p.name, containerPort: p.containerPort }
    })
    return {
      name: c.name,
      command: commandOf(c, r, at),
      args: [...(c.args ?? [])],
      env: (c.env ?? []).map((e: Obj, j: number) => envVar(e, r, [...at, 'env', j])),
      ports,
      workingDir: c.workingDir === undefined ? dirname(r.file) : (isAbsolute(c.workingDir) ? c.workingDir : resolve(dirname(r.file), c.workingDir)),
      probes: toProbes(c, ports, r, at)
    }
  })
  const grace = spec.terminationGracePeriodSeconds ?? DEFAULT_GRACE_SECONDS
  return {
    namespace: md.namespace ?? DEFAULT_NAMESPACE,
    name: md.name,
    nodeName: spec.nodeName ?? '',
    serviceAccountName: sa,
    hostname: spec.hostname ?? md.name.slice(0, 63),
    labels: { ...md.labels },
    annotations: { ...md.annotations },
    ownerReferences: [...(md.ownerReferences ?? [])],
    hostAliases,
    terminationGracePeriodSeconds: Math.max(0, Math.min(grace, MAX_GRACE_SECONDS)),
    restartPolicy: spec.restartPolicy ?? 'Always',
    containers: out,
    origin: r.origin
  }
}

function commandOf (c: Obj, r: Reporter, at: FieldPath): string[] {
  if (c.command === undefined || c.command.length === 0) {
    r.report([...at, 'command'], 'is required: the lab ignores images and runs commands from the host\'s filesystem')
    return []
  }
  if (c.command[0] === '') r.report([...at, 'command', 0], 'must not be empty')
  return [...c.command]
}

function envVar (e: Obj, r: Reporter, at: FieldPath): LabEnvVar {
  checkName(e.name, 'env-name', r, [...at, 'name'])
  const fieldPath = e.valueFrom?.fieldRef?.fieldPath
  if (e.valueFrom !== undefined) {
    if (e.value !== undefined) r.report([...at, 'valueFrom'], 'may not be set together with value')
    if (fieldPath === undefined) {
      r.report([...at, 'valueFrom'], 'needs fieldRef.fieldPath')
    } else if (!SUPPORTED_FIELD_PATHS.some((re) => re.test(fieldPath))) {
      r.report([...at, 'valueFrom', 'fieldRef', 'fieldPath'], `"${fieldPath as string}" is not supported by the lab (it knows metadata.name/namespace/uid/labels/annotations, spec.nodeName/serviceAccountName, status.podIP(s)/hostIP(s))`)
    }
    return { name: e.name, fieldPath: fieldPath ?? '' }
  }
  return { name: e.name, value: e.value ?? '' }
}

export function toService (v: Obj, r: Reporter): LabService {
  const md = v.metadata
  const spec = v.spec ?? {}
  checkName(md.name, 'dns1035-label', r)
  const selector: Record<string, string> = { ...spec.selector }
  if (Object.keys(selector).length === 0) r.report(['spec', 'selector'], 'is required: the lab builds endpoints from the selector only')
  const ports: LabServicePort[] = []
  const rawPorts: Obj[] = spec.ports ?? []
  if (rawPorts.length === 0) r.report(['spec', 'ports'], 'must have at least one port')
  const seenName = new Set<string>()
  const seenPort = new Set<number>()
  rawPorts.forEach((p, i) => {
    const at = ['spec', 'ports', i]
    if (!(p.port >= 1 && p.port <= 65535)) r.report([...at, 'port'], 'must be between 1 and 65535')
    if (seenPort.has(p.port)) r.report([...at, 'port'], `duplicate port ${p.port as number}`)
    seenPort.add(p.port)
    if (p.name !== undefined) {
      checkName(p.name, 'dns1123-label', r, [...at, 'name'])
      if (seenName.has(p.name)) r.report([...at, 'name'], `duplicate port name "${p.name as string}"`)
      seenName.add(p.name)
    } else if (rawPorts.length > 1) {
      r.report([...at, 'name'], 'is required when a Service has more than one port')
    }
    const target = p.targetPort ?? p.port
    if (typeof target === 'number' && !(target >= 1 && target <= 65535)) r.report([...at, 'targetPort'], 'must be between 1 and 65535')
    if (typeof target === 'string') checkName(target, 'port-name', r, [...at, 'targetPort'])
    ports.push({
      ...(p.name === undefined ? {} : { name: p.name }),
      port: p.port,
      targetPort: target,
      ...(p.appProtocol === undefined ? {} : { appProtocol: p.appProtocol })
    })
  })
  const fam = serviceFamilies(spec, r)
  return {
    namespace: md.namespace ?? DEFAULT_NAMESPACE,
    name: md.name,
    labels: { ...md.labels },
    annotations: { ...md.annotations },
    selector,
    ports,
    ...fam,
    origin: r.origin
  }
}

/** ipFamilies / ipFamilyPolicy / clusterIP(s) as the API server resolves them on a dual-stack cluster. */
function serviceFamilies (spec: Obj, r: Reporter): Pick<LabService, 'headless' | 'ipFamilies' | 'ipFamilyPolicy' | 'requestedClusterIPs'> {
  const policy: IPFamilyPolicy = spec.ipFamilyPolicy ?? 'SingleStack'
  let ips: string[] = spec.clusterIPs ?? (spec.clusterIP === undefined || spec.clusterIP === '' ? [] : [spec.clusterIP])
  if (spec.clusterIP !== undefined && spec.clusterIPs !== undefined && spec.clusterIPs[0] !== spec.clusterIP) {
    r.report(['spec', 'clusterIPs', 0], 'must equal spec.clusterIP')
  }
  const headless = ips[0] === 'None'
  if (headless) {
    if (ips.length > 1) r.report(['spec', 'clusterIPs'], 'must be ["None"] for a headless service')
    ips = []
  }
  const requested: Partial<Record<IPFamily, string>> = {}
  const ipFamiliesOfIPs: IPFamily[] = []
  ips.forEach((ip, i) => {
    const path = spec.clusterIPs === undefined ? ['spec', 'clusterIP'] : ['spec', 'clusterIPs', i]
    const f = familyOfIP(ip)
    if (f === null) return r.report(path, `"${ip}" is not an IP address`)
    if (!inServiceRange(ip)) return r.report(path, `${ip} is outside the lab's service ranges ${SERVICE_CIDRS.IPv4} and ${SERVICE_CIDRS.IPv6}`)
    if (requested[f] !== undefined) return r.report(path, `two ${f} cluster IPs`)
    requested[f] = canonicalAddress(ip) ?? ip
    ipFamiliesOfIPs.push(f)
  })
  let families: IPFamily[] = spec.ipFamilies ?? (ipFamiliesOfIPs.length > 0 ? ipFamiliesOfIPs : ['IPv4'])
  if (new Set(families).size !== families.length) r.report(['spec', 'ipFamilies'], 'lists a family twice')
  if (spec.ipFamilies !== undefined && ipFamiliesOfIPs.some((f, i) => families[i] !== f)) {
    r.report(['spec', 'ipFamilies'], 'must match the families of spec.clusterIPs, in order')
  }
  if (families.length > 1 && policy === 'SingleStack') {
    r.report(['spec', 'ipFamilyPolicy'], 'is SingleStack (the default) but two families are asked for: use PreferDualStack or RequireDualStack')
  }
  if (families.length === 1 && policy !== 'SingleStack') families = [families[0], families[0] === 'IPv4' ? 'IPv6' : 'IPv4']
  return { headless, ipFamilies: families, ipFamilyPolicy: policy, requestedClusterIPs: requested }
}

function checkName (name: string, format: Parameters<typeof nameProblem>[1], r: Reporter, path: FieldPath = ['metadata', 'name']): void {
  if (typeof name !== 'string') return
  const problem = nameProblem(name, format)
  if (problem !== null) r.report(path, `"${name}" ${problem}`)
}
