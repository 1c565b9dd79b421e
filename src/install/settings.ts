import { ferryError, isFerryError } from '../errors'
import { parseCertTtl } from '../identity/cert-ttl'
import { validateTrustDomain } from '../identity/spiffe-id'
import { clusterDomainProblem, clusterNameProblem } from '../telemetry/cluster-names'
import type { KubeObject } from './kustomize'

// `ferry install --render --set key=value`: the options a user may change, each with
// its parser (validated here, once) and its edit of the rendered objects. An unknown
// key is refused by name with the known ones listed; a bad value names the key and
// what it accepts.

export const INSTALL_NAMESPACE = 'ferry-system'
export const AGENT = Object.freeze({ kind: 'DaemonSet', name: 'ferry-agent', container: 'agent' })
export const CONTROLLER = Object.freeze({ kind: 'Deployment', name: 'ferry-controller', container: 'controller' })

type Value = string | number

interface Setting {
  readonly summary: string
  /** Throws FERRY_ERR_INVALID_ARG (without the key: the caller names it). */
  readonly parse: (text: string) => Value
  readonly apply: (objects: KubeObject[], value: Value) => void
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']
const PULL_POLICIES = ['Always', 'IfNotPresent', 'Never']
// A Kubernetes quantity: 100m, 0.5, 128Mi, 1G, 1e3.
const QUANTITY = /^(\d+(\.\d+)?|\.\d+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei|[eE][+-]?\d+)?$/
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/
// [registry[:port]/]path[:tag][@digest], lowercase path components as the OCI spec says.
const IMAGE = /^(?:[a-zA-Z0-9.-]+(?::\d+)?\/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::[\w][\w.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$/

function oneOf (values: readonly string[]): (text: string) => string {
  return (text) => {
    if (!values.includes(text)) throw invalidValue(`one of ${values.join(', ')}`)
    return text
  }
}

function quantity (text: string): string {
  if (!QUANTITY.test(text)) throw invalidValue('a Kubernetes quantity such as 100m, 0.5, 128Mi or 1Gi')
  return text
}

function invalidValue (expected: string): Error {
  return ferryError('FERRY_ERR_INVALID_ARG', `expected ${expected}`)
}

function resourceSetting (who: typeof AGENT | typeof CONTROLLER, bound: 'requests' | 'limits', resource: 'cpu' | 'memory'): Setting {
  return {
    summary: `${who.container} container ${bound}.${resource} (a quantity)`,
    parse: quantity,
    apply: (objects, value) => {
      const c = container(objects, who)
      const resources = (c.resources ??= {}) as Record<string, Record<string, string>>
      ;(resources[bound] ??= {})[resource] = String(value)
    }
  }
}

export const SETTINGS: Readonly<Record<string, Setting>> = Object.freeze({
  image: {
    summary: 'the Ferry image of every container, e.g. registry.example.com/ferry:0.1.0',
    parse: (text) => {
      if (!IMAGE.test(text)) throw invalidValue('an image reference such as registry.example.com/ferry:0.1.0')
      return text
    },
    apply: (objects, value) => { for (const c of allContainers(objects)) c.image = value }
  },
  imagePullPolicy: {
    summary: `when the kubelet pulls the image: ${PULL_POLICIES.join(', ')}`,
    parse: oneOf(PULL_POLICIES),
    apply: (objects, value) => { for (const c of allContainers(objects)) c.imagePullPolicy = value }
  },
  namespace: {
    summary: `the namespace of Ferry's objects (default ${INSTALL_NAMESPACE})`,
    parse: (text) => {
      if (!DNS_LABEL.test(text)) throw invalidValue('a namespace name (lowercase letters, digits and "-", at most 63)')
      return text
    },
    apply: (objects, value) => { renameNamespace(objects, INSTALL_NAMESPACE, String(value)) }
  },
  trustDomain: {
    summary: 'the SPIFFE trust domain of workload identities (default cluster.local)',
    parse: (text) => {
      try {
        return validateTrustDomain(text)
      } catch (err) {
        if (isFerryError(err)) throw invalidValue(`a trust domain (${err.message})`)
        throw err
      }
    },
    apply: (objects, value) => {
      setArg(container(objects, AGENT), '--trust-domain', String(value))
      setArg(container(objects, CONTROLLER), '--trust-domain', String(value))
    }
  },
  clusterName: {
    summary: 'the cluster\'s name in Istio\'s metrics, source_cluster / destination_cluster (default Kubernetes, Istio\'s)',
    parse: (text) => {
      const problem = clusterNameProblem(text)
      if (problem !== null) throw invalidValue(problem)
      return text
    },
    apply: (objects, value) => { setArg(container(objects, AGENT), '--cluster-name', String(value)) }
  },
  clusterDomain: {
    summary: 'the cluster\'s DNS domain, as the kubelet\'s --cluster-domain (default cluster.local): destination_service is NAME.NAMESPACE.svc.DOMAIN',
    parse: (text) => {
      const problem = clusterDomainProblem(text)
      if (problem !== null) throw invalidValue(problem)
      return text
    },
    apply: (objects, value) => { setArg(container(objects, AGENT), '--cluster-domain', String(value)) }
  },
  logLevel: {
    summary: `log level of the agent and the controller: ${LOG_LEVELS.join(', ')}`,
    parse: oneOf(LOG_LEVELS),
    apply: (objects, value) => {
      setArg(container(objects, AGENT), '--log-level', String(value))
      setArg(container(objects, CONTROLLER), '--log-level', String(value))
    }
  },
  'controller.replicas': {
    summary: 'controller replicas, 1 to 9 (they share one CA root)',
    parse: (text) => {
      if (!/^[1-9]$/.test(text)) throw invalidValue('a whole number from 1 to 9')
      return Number(text)
    },
    apply: (objects, value) => { (find(objects, CONTROLLER).spec as Record<string, unknown>).replicas = value }
  },
  'controller.certTtl': {
    summary: 'longest workload certificate lifetime the controller signs, e.g. 24h',
    parse: (text) => {
      parseCertTtl(text, 'the value')
      return text
    },
    apply: (objects, value) => { setArg(container(objects, CONTROLLER), '--cert-ttl', String(value)) }
  },
  'agent.resources.requests.cpu': resourceSetting(AGENT, 'requests', 'cpu'),
  'agent.resources.requests.memory': resourceSetting(AGENT, 'requests', 'memory'),
  'agent.resources.limits.cpu': resourceSetting(AGENT, 'limits', 'cpu'),
  'agent.resources.limits.memory': resourceSetting(AGENT, 'limits', 'memory'),
  'controller.resources.requests.cpu': resourceSetting(CONTROLLER, 'requests', 'cpu'),
  'controller.resources.requests.memory': resourceSetting(CONTROLLER, 'requests', 'memory'),
  'controller.resources.limits.cpu': resourceSetting(CONTROLLER, 'limits', 'cpu'),
  'controller.resources.limits.memory': resourceSetting(CONTROLLER, 'limits', 'memory')
})

export type InstallSettings = ReadonlyMap<string, Value>

/** Parses `key=value` texts. Throws FERRY_ERR_INVALID_ARG naming the key. */
export function parseSettings (assignments: readonly string[]): InstallSettings {
  const out = new Map<string, Value>()
  for (const text of assignments) {
    const eq = text.indexOf('=')
    if (eq <= 0) throw ferryError('FERRY_ERR_INVALID_ARG', `ferry install: --set "${text}" is invalid: expected KEY=VALUE`)
    const key = text.slice(0, eq)
    // Own keys only: "toString" or "constructor" are no settings, whatever Object.prototype holds.
    const setting = Object.hasOwn(SETTINGS, key) ? SETTINGS[key] : undefined
    if (setting === undefined) {
      const hint = closest(key)
      throw ferryError('FERRY_ERR_INVALID_ARG', `ferry install: unknown --set key "${key}"${hint === null ? '' : ` (did you mean "${hint}"?)`}; known keys: ${Object.keys(SETTINGS).join(', ')}`)
    }
    if (out.has(key)) throw ferryError('FERRY_ERR_INVALID_ARG', `ferry install: --set ${key} is given twice`)
    try {
      out.set(key, setting.parse(text.slice(eq + 1)))
    } catch (err) {
      if (!isFerryError(err)) throw err
      throw ferryError('FERRY_ERR_INVALID_ARG', `ferry install: --set ${key}="${text.slice(eq + 1)}" is invalid: ${err.message.replace(/^the value "[^"]*" is invalid: /, '')}`)
    }
  }
  return out
}

/** Applies settings to rendered objects in place; the namespace last, so the others find objects by their names. */
export function applySettings (objects: KubeObject[], settings: InstallSettings): void {
  const keys = [...settings.keys()].sort((a, b) => Number(a === 'namespace') - Number(b === 'namespace'))
  for (const key of keys) SETTINGS[key].apply(objects, settings.get(key)!)
}

export function settingsUsage (): string {
  const width = Math.max(...Object.keys(SETTINGS).map((k) => k.length))
  return Object.entries(SETTINGS).map(([k, s]) => `  ${k.padEnd(width)}  ${s.summary}`).join('\n')
}

type Container = Record<string, unknown> & { name: string, args?: string[] }

function find (objects: readonly KubeObject[], who: { kind: string, name: string }): KubeObject {
  const o = objects.find((x) => x.kind === who.kind && x.metadata.name === who.name)
  if (o === undefined) throw ferryError('FERRY_ERR_CONFIG', `the rendered manifests have no ${who.kind} ${who.name}`)
  return o
}

function podSpec (o: KubeObject): Record<string, Container[] | undefined> {
  return ((o.spec as any)?.template?.spec ?? {}) as Record<string, Container[] | undefined>
}

function container (objects: readonly KubeObject[], who: typeof AGENT | typeof CONTROLLER): Container {
  const c = (podSpec(find(objects, who)).containers ?? []).find((x) => x.name === who.container)
  if (c === undefined) throw ferryError('FERRY_ERR_CONFIG', `${who.kind} ${who.name} has no container ${who.container}`)
  return c
}

function allContainers (objects: readonly KubeObject[]): Container[] {
  return objects.flatMap((o) => [...(podSpec(o).initContainers ?? []), ...(podSpec(o).containers ?? [])])
}

/** Replaces the value of `--flag=value` in a container's args. */
function setArg (c: Container, flag: string, value: string): void {
  const at = (c.args ?? []).findIndex((a) => a.startsWith(`${flag}=`))
  if (at < 0) throw ferryError('FERRY_ERR_CONFIG', `container ${c.name} has no ${flag}= argument to set`)
  c.args![at] = `${flag}=${value}`
}

/** Moves every object and every reference (binding subjects, service DNS names in args) from one namespace to another. */
function renameNamespace (objects: KubeObject[], from: string, to: string): void {
  const swap = (v: unknown): unknown => {
    if (typeof v === 'string') return v === from ? to : v.split(`.${from}.svc`).join(`.${to}.svc`)
    if (Array.isArray(v)) return v.map(swap)
    if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, swap(x)]))
    return v
  }
  objects.forEach((o, i) => { objects[i] = swap(o) as KubeObject })
}

function closest (key: string): string | null {
  let best: string | null = null
  let bestDistance = 3
  for (const k of Object.keys(SETTINGS)) {
    const d = distance(key.toLowerCase(), k.toLowerCase())
    if (d < bestDistance) { best = k; bestDistance = d }
  }
  return best
}

/** Levenshtein distance. */
function distance (a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const cur = [i]
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1))
    prev = cur
  }
  return prev[b.length]
}
