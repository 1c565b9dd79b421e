import type { Namespace, Pod, Service } from '../discovery/model'

// The `ferry.dev/l7` switch, read as Ferry's other switches are (ferry.dev/mesh,
// ferry.dev/inbound-mode): a LABEL on a namespace, an ANNOTATION on a Service or a pod
// (namespace annotations are not read). Values: `enabled` or `disabled`; the object's own
// annotation wins over its namespace's label, either way. Any other value is reported
// (once: see warnings.ts) and read as not set.

export const L7_KEY = 'ferry.dev/l7'
const ENABLED = 'enabled'
const DISABLED = 'disabled'

export type SwitchState = 'enabled' | 'disabled' | 'unset'

export interface SwitchReading {
  readonly state: SwitchState
  /** `annotation ferry.dev/l7=enabled on service shop/cart`, … (set when state is not unset). */
  readonly where: string
  /** An invalid value that was ignored, for the warning (null: none). */
  readonly invalid: string | null
}

const UNSET: SwitchReading = Object.freeze({ state: 'unset', where: '', invalid: null })

/** The switch on one object: `kind name` names it in reasons and warnings. */
export function readSwitch (values: Readonly<Record<string, string>>, kind: 'annotation' | 'label', owner: string): SwitchReading {
  if (!Object.hasOwn(values, L7_KEY)) return UNSET
  const value = values[L7_KEY]
  if (value === ENABLED || value === DISABLED) return Object.freeze({ state: value, where: `${kind} ${L7_KEY}=${value} on ${owner}`, invalid: null })
  return Object.freeze({
    state: 'unset',
    where: '',
    invalid: `${owner}: ${kind} ${L7_KEY}="${value.slice(0, 64)}" is not "${ENABLED}" or "${DISABLED}": ignored (read as not set)`
  })
}

export function serviceSwitch (service: Service): SwitchReading {
  return readSwitch(service.annotations, 'annotation', `service ${service.namespace}/${service.name}`)
}

export function podSwitch (pod: Pod): SwitchReading {
  return readSwitch(pod.annotations, 'annotation', `pod ${pod.namespace}/${pod.name}`)
}

export function namespaceSwitch (namespace: Namespace | undefined): SwitchReading {
  return namespace === undefined ? UNSET : readSwitch(namespace.labels, 'label', `namespace ${namespace.name}`)
}

/**
 * The object's switch over its namespace's: the first one set decides. Returns the
 * deciding reading (or unset) and every invalid value met.
 */
export function combine (own: SwitchReading, namespace: SwitchReading): { readonly decided: SwitchReading, readonly overridden: SwitchReading | null, readonly invalid: readonly string[] } {
  const invalid = [own.invalid, namespace.invalid].filter((x): x is string => x !== null)
  if (own.state !== 'unset') return { decided: own, overridden: namespace.state !== 'unset' && namespace.state !== own.state ? namespace : null, invalid }
  return { decided: namespace, overridden: null, invalid }
}
