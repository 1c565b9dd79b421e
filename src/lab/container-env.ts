import { dirname } from 'node:path'
import type { LabContainer, LabPod } from './manifest/spec'

// A container's environment and argv as the kubelet would build them: the base
// variables (HOSTNAME, PATH — the lab's stand-in for the image's), then the manifest's
// env in order, with Downward API fields filled in and $(VAR) references — in env
// values, command and args — expanded against the manifest's variables defined before
// (`$$` escapes a `$`). Pure.

/** Where the lab looks for container commands: the usual system dirs plus this Node's. */
export const LAB_PATH = [...new Set(['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin', dirname(process.execPath)])].join(':')

export interface PodFacts {
  readonly uid: string
  readonly podIPs: readonly string[]
  readonly hostIPs: readonly string[]
}

/** The environment and argv of a container process. */
export function resolveContainer (pod: LabPod, container: LabContainer, facts: PodFacts): { env: Record<string, string>, argv: string[] } {
  const env: Record<string, string> = { HOSTNAME: pod.hostname, PATH: LAB_PATH }
  // $(VAR) sees only variables the manifest defined earlier, as in Kubernetes (the
  // base variables come from the runtime, after expansion).
  const defined: Record<string, string> = {}
  for (const e of container.env) {
    const value = 'value' in e ? expand(e.value, defined) : fieldValue(e.fieldPath, pod, facts)
    env[e.name] = value
    defined[e.name] = value
  }
  const argv = [...container.command, ...container.args].map((s) => expand(s, defined))
  return { env, argv }
}

/** Kubernetes' $(VAR) expansion: unknown references stay as written; `$$` is a literal `$`. */
export function expand (s: string, vars: Readonly<Record<string, string>>): string {
  return s.replace(/\$\$|\$\(([-._a-zA-Z][-._a-zA-Z0-9]*)\)/g, (match, name: string | undefined) => {
    if (name === undefined) return '$'
    return Object.prototype.hasOwnProperty.call(vars, name) ? vars[name] : match
  })
}

/** Values of the Downward API fields listed in manifest/convert.ts SUPPORTED_FIELD_PATHS. */
export function fieldValue (path: string, pod: LabPod, facts: PodFacts): string {
  const keyed = /^metadata\.(labels|annotations)\['([^']+)'\]$/.exec(path)
  if (keyed !== null) return (keyed[1] === 'labels' ? pod.labels : pod.annotations)[keyed[2]] ?? ''
  switch (path) {
    case 'metadata.name': return pod.name
    case 'metadata.namespace': return pod.namespace
    case 'metadata.uid': return facts.uid
    case 'spec.nodeName': return pod.nodeName
    case 'spec.serviceAccountName': return pod.serviceAccountName
    case 'status.podIP': return facts.podIPs[0] ?? ''
    case 'status.podIPs': return facts.podIPs.join(',')
    case 'status.hostIP': return facts.hostIPs[0] ?? ''
    case 'status.hostIPs': return facts.hostIPs.join(',')
    default: return ''
  }
}
