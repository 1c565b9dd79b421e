import type { ErrorObject } from 'ajv'
import { httpPathProblem, regexProblem } from './route-formats'

// The schema keywords of the traffic-management kinds (src/resources/schema-parts.ts:
// x-ferry-union, x-ferry-at-most-one, x-ferry-match-value), as ajv keyword functions:
// each names the field at fault, the way the specifications' own CRD rules do.

type Check<S> = ((schema: S, data: unknown, parent?: unknown, cxt?: { instancePath: string }) => boolean) & { errors?: Array<Partial<ErrorObject>> }
type Raw = Record<string, unknown>

function isMap (v: unknown): v is Raw {
  return v !== null && typeof v === 'object' && !Array.isArray(v)
}

function fail<S> (check: Check<S>, errors: Array<Partial<ErrorObject>>): boolean {
  check.errors = errors
  return errors.length === 0
}

function error (keyword: string, instancePath: string, message: string): Partial<ErrorObject> {
  return { keyword, instancePath, message, params: {} }
}

/** The field the tag names is set, and no other field of the union. */
export const checkUnion: Check<{ tag: string, fields: Record<string, string> }> = (schema, data, _p, cxt) => {
  if (!isMap(data) || typeof data[schema.tag] !== 'string') return true
  const at = cxt?.instancePath ?? ''
  const tag = data[schema.tag] as string
  const want = schema.fields[tag]
  const errors: Array<Partial<ErrorObject>> = []
  if (want !== undefined && data[want] === undefined) errors.push(error('x-ferry-union', `${at}/${want}`, `is required when ${schema.tag} is ${tag}`))
  for (const [other, field] of Object.entries(schema.fields)) {
    if (field === want || data[field] === undefined) continue
    errors.push(error('x-ferry-union', `${at}/${field}`, `must not be set when ${schema.tag} is ${tag} (it goes with ${schema.tag} ${other})`))
  }
  return fail(checkUnion, errors)
}

export const checkAtMostOne: Check<string[]> = (fields, data, _p, cxt) => {
  if (!isMap(data)) return true
  const set = fields.filter((f) => data[f] !== undefined)
  if (set.length <= 1) return true
  const at = cxt?.instancePath ?? ''
  return fail(checkAtMostOne, set.slice(1).map((f) => error('x-ferry-at-most-one', `${at}/${f}`, `must not be set with ${set[0]} (at most one of ${fields.join(', ')})`)))
}

const GRPC_SERVICE = /^\.?[A-Za-z_][A-Za-z_0-9]*(\.[A-Za-z_][A-Za-z_0-9]*)*$/
const GRPC_METHOD = /^[A-Za-z_][A-Za-z_0-9]*$/

/** A match's value against its type (see MATCH_VALUE in schema-parts.ts). */
export const checkMatchValue: Check<'path' | 'string' | 'grpc'> = (what, data, _p, cxt) => {
  if (!isMap(data)) return true
  const at = cxt?.instancePath ?? ''
  const errors: Array<Partial<ErrorObject>> = []
  const regex = data.type === 'RegularExpression'
  const check = (field: string, problem: string | null): void => {
    if (problem !== null) errors.push(error('x-ferry-match-value', `${at}/${field}`, `${JSON.stringify(data[field])} ${problem}`))
  }
  if (what === 'grpc') {
    if (data.service === undefined && data.method === undefined) errors.push(error('x-ferry-match-value', at, 'must set service, method or both'))
    for (const [field, exact] of [['service', GRPC_SERVICE], ['method', GRPC_METHOD]] as const) {
      const v = data[field]
      if (typeof v !== 'string') continue
      check(field, regex ? regexProblem(v) : exact.test(v) ? null : `is not a gRPC ${field} name`)
    }
  } else if (typeof data.value === 'string') {
    if (regex) check('value', regexProblem(data.value))
    else if (what === 'path') check('value', httpPathProblem(data.value))
  }
  return fail(checkMatchValue, errors)
}
