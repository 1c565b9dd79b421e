import { isIP } from 'node:net'
import type { Reporter } from './convert'
import type { FieldPath } from './issues'
import { nameProblem } from './names'
import { PROBE_DEFAULTS, type LabContainerPort, type LabPod, type LabProbe, type LabProbeHandler, type ProbeKind } from './spec'

// A container's readinessProbe, livenessProbe and startupProbe, schema-valid already,
// checked the way the API server checks them (one handler, no negative numbers, a
// liveness or startup probe succeeds once) plus what the lab's kubelet needs (a port
// name the container declares, an address rather than a host name: lab nodes resolve
// no names), with the API server's defaults applied. Fields the lab refuses outright
// (HTTPS) are in lab-rules.ts.

type Obj = Record<string, any>

const FIELD_OF: Readonly<Record<ProbeKind, string>> = { startup: 'startupProbe', liveness: 'livenessProbe', readiness: 'readinessProbe' }
const HANDLERS = ['exec', 'httpGet', 'tcpSocket', 'grpc'] as const
/** RFC 7230 token: what Kubernetes accepts as an HTTP header name. */
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/

export function toProbes (c: Obj, ports: readonly LabContainerPort[], r: Reporter, at: FieldPath): Partial<Record<ProbeKind, LabProbe>> {
  const out: Partial<Record<ProbeKind, LabProbe>> = {}
  for (const kind of Object.keys(FIELD_OF) as ProbeKind[]) {
    const raw = c[FIELD_OF[kind]]
    if (raw === undefined || raw === null) continue
    const probe = toProbe(kind, raw, ports, r, [...at, FIELD_OF[kind]])
    if (probe !== null) out[kind] = probe
  }
  return out
}

function toProbe (kind: ProbeKind, p: Obj, ports: readonly LabContainerPort[], r: Reporter, at: FieldPath): LabProbe | null {
  const given = HANDLERS.filter((h) => p[h] !== undefined && p[h] !== null)
  if (given.length !== 1) {
    r.report(at, given.length === 0 ? 'must specify a handler: exec, httpGet, tcpSocket or grpc' : `may specify only one handler, not ${given.join(' and ')}`)
    return null
  }
  const seconds = (field: keyof typeof PROBE_DEFAULTS | 'initialDelaySeconds'): number => {
    const v = p[field]
    if (v === undefined || v === null) return field === 'initialDelaySeconds' ? 0 : PROBE_DEFAULTS[field]
    if (v < 0) r.report([...at, field], 'must be greater than or equal to 0')
    if (v === 0 && field !== 'initialDelaySeconds') return PROBE_DEFAULTS[field]
    return v
  }
  const successThreshold = seconds('successThreshold')
  if (kind !== 'readiness' && successThreshold !== 1) r.report([...at, 'successThreshold'], `must be 1 for a ${FIELD_OF[kind]}`)
  const handler = toHandler(given[0], p[given[0]], ports, r, [...at, given[0]])
  if (handler === null) return null
  return {
    handler,
    initialDelaySeconds: seconds('initialDelaySeconds'),
    periodSeconds: seconds('periodSeconds'),
    timeoutSeconds: seconds('timeoutSeconds'),
    successThreshold,
    failureThreshold: seconds('failureThreshold'),
    terminationGracePeriodSeconds: p.terminationGracePeriodSeconds ?? null
  }
}

function toHandler (kind: typeof HANDLERS[number], h: Obj, ports: readonly LabContainerPort[], r: Reporter, at: FieldPath): LabProbeHandler | null {
  switch (kind) {
    case 'exec': {
      const command: string[] = h.command ?? []
      if (command.length === 0 || command[0] === '') { r.report([...at, 'command'], 'must name a command to run in the container'); return null }
      return { kind: 'exec', command: [...command] }
    }
    case 'httpGet': {
      const path: string = h.path ?? '/'
      if (!path.startsWith('/')) r.report([...at, 'path'], `"${path}" must start with "/"`)
      const headers = (h.httpHeaders ?? []).map((x: Obj, i: number) => {
        if (typeof x.name !== 'string' || !HEADER_NAME.test(x.name)) r.report([...at, 'httpHeaders', i, 'name'], `"${String(x.name)}" is not a valid HTTP header name`)
        return { name: x.name, value: x.value ?? '' }
      })
      return { kind: 'httpGet', path, port: portOf(h.port, ports, r, [...at, 'port']), host: hostOf(h.host, r, [...at, 'host']), scheme: 'HTTP', headers }
    }
    case 'tcpSocket':
      return { kind: 'tcpSocket', port: portOf(h.port, ports, r, [...at, 'port']), host: hostOf(h.host, r, [...at, 'host']) }
    case 'grpc': {
      if (!(h.port >= 1 && h.port <= 65535)) r.report([...at, 'port'], 'must be between 1 and 65535')
      return { kind: 'grpc', port: h.port, service: h.service ?? null }
    }
  }
}

/** A port number, or the name of one of the container's ports (the kubelet looks names up there). */
function portOf (port: number | string, ports: readonly LabContainerPort[], r: Reporter, at: FieldPath): number | string {
  if (typeof port === 'number') {
    if (!(port >= 1 && port <= 65535)) r.report(at, 'must be between 1 and 65535')
    return port
  }
  const problem = nameProblem(port, 'port-name')
  if (problem !== null) {
    r.report(at, `"${port}" ${problem}`)
  } else if (!ports.some((p) => p.name === port)) {
    const named = ports.filter((p) => p.name !== undefined).map((p) => p.name as string)
    r.report(at, `names no port of this container (${named.length === 0 ? 'it declares no named port' : `its named ports: ${named.join(', ')}`})`)
  }
  return port
}

function hostOf (host: string | undefined, r: Reporter, at: FieldPath): string | null {
  if (host === undefined || host === '') return null
  if (isIP(host) === 0) r.report(at, `"${host}" must be an IP address: the lab's nodes resolve no names (leave it out to probe the pod's IP)`)
  return host
}

/** What the lab's kubelet ignores in these pods' probes, one line each (printed by `up` and `apply`). */
export function probeWarnings (pods: readonly LabPod[]): string[] {
  const out: string[] = []
  for (const pod of pods) {
    for (const c of pod.containers) {
      for (const [kind, probe] of Object.entries(c.probes ?? {}) as Array<[ProbeKind, LabProbe]>) {
        if (probe.terminationGracePeriodSeconds === null) continue
        out.push(`Pod ${pod.namespace}/${pod.name} container ${c.name}: ${FIELD_OF[kind]}.terminationGracePeriodSeconds is ignored: a container the kubelet restarts gets the pod's grace period (${pod.terminationGracePeriodSeconds} s)`)
      }
    }
  }
  return out
}
