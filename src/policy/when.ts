import { conditionKey } from '../resources/conditions'
import type { PolicyCondition } from '../resources/documents'
import type { FieldPath } from '../resources/issues'
import { addressCondition, type Condition, finish, stringCondition } from './match'
import { headerCondition } from './request-match'

// A rule's `when` entries as conditions: each entry's `values` (any matches) and
// `notValues` (none matches) must both hold, and every entry must hold. Keys and values
// were checked at admission (src/resources/conditions.ts); keys Ferry cannot evaluate
// were taken out there (the rule degraded), so every key here is supported.

const SPIFFE = 'spiffe://'

export function whenConditions (when: readonly PolicyCondition[], base: FieldPath): Condition[] {
  const out: Condition[] = []
  when.forEach((entry, j) => {
    for (const name of ['values', 'notValues'] as const) {
      const values = entry[name]
      if (values === undefined || values.length === 0) continue
      out.push(conditionOf(entry.key, name, values, [...base, 'when', j, name]))
    }
  })
  return out
}

function conditionOf (key: string, name: 'values' | 'notValues', values: readonly string[], path: FieldPath): Condition {
  const k = conditionKey(key)
  if (k.kind !== 'supported') throw new Error(`when key ${key} reached the compiler (${k.kind})`)
  const negate = name === 'notValues'
  switch (k.attribute) {
    case 'request.header':
      return headerCondition(name, k.header as string, values, path)
    case 'source.ip':
      return addressCondition(name, negate, values, path, 'source address', (s) => s.ipWords(), (s) => s.ip)
    case 'destination.ip':
      return addressCondition(name, negate, values, path, 'destination address', (_s, at) => at.destinationWords(), (_s, at) => at.destinationIp)
    case 'source.namespace':
      return stringCondition(name, values, values, path, 'namespace', (s) => s.namespace)
    case 'source.principal':
      return stringCondition(name, values.map((v) => v.startsWith(SPIFFE) ? v.slice(SPIFFE.length) : v), values, path, 'principal', (s) => s.principal)
    case 'destination.port': {
      const ports = values.map(Number)
      const set = new Set(ports)
      return finish(name, negate, values, path, {
        portOnly: true,
        test: (_s, port) => set.has(port) !== negate,
        indexOf: (_s, port) => set.has(port) ? ports.indexOf(port) : -1,
        subject: (_s, port) => `destination port ${port}`
      })
    }
  }
}
