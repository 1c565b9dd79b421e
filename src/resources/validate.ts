import type Ajv from 'ajv'
import type { ErrorObject, ValidateFunction } from 'ajv'
import type { ResourceKind } from './documents'
import type { FieldPath } from './issues'
import { conditionKey, conditionValueProblem, KNOWN_KEYS } from './conditions'
import { isIPBlock, isPathMatch, isPortString, isStringMatch, pathMatchProblem } from './formats'
import { durationProblem, exportToProblem, gatewayDurationProblem, grpcStatusProblem, headerNameProblem, hostnameProblem, regexProblem, retryOnProblem } from './route-formats'
import { AT_MOST_ONE, CONDITION, SCHEMAS, UNION, UNSUPPORTED, UNSUPPORTED_VALUES } from './schema'
import { checkAtMostOne, checkMatchValue, checkUnion } from './validate-routes'
import { MATCH_VALUE } from './schema-parts'

// Runs the kind's schema over a document and turns every ajv error into a field path
// and a message a person can act on ("`10.0.0.0/33` is not an IP address or CIDR
// block"), not ajv's generic wording. All errors are collected (allErrors).

export interface SchemaIssue {
  readonly path: FieldPath
  readonly message: string
  /** A field (or value) Ferry cannot enforce, declared in the schema; absent: the document is malformed. */
  readonly unsupported?: true
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/
const MAX_LABEL = 63
const MAX_SUBDOMAIN = 253
const MAX_PORT = 65535

export { isIPBlock, isPortString, isStringMatch } from './formats'

const FORMATS: Record<string, { check: (s: string) => boolean, problem: (s: string) => string }> = {
  'ferry-k8s-name': {
    check: (s) => s.length <= MAX_SUBDOMAIN && DNS_SUBDOMAIN.test(s),
    problem: (s) => `${quote(s)} is not a Kubernetes object name (lowercase letters, digits, "-" and ".")`
  },
  'ferry-k8s-namespace': {
    check: (s) => s.length <= MAX_LABEL && DNS_LABEL.test(s),
    problem: (s) => `${quote(s)} is not a Kubernetes namespace name (lowercase letters, digits and "-", at most ${MAX_LABEL})`
  },
  'ferry-string-match': {
    check: isStringMatch,
    problem: (s) => `${quote(s)} is not a match: write an exact value, "prefix*", "*suffix" or "*" (one "*", at the start or the end)`
  },
  'ferry-ip-block': {
    check: isIPBlock,
    problem: (s) => `${quote(s)} is not an IP address or CIDR block (e.g. 10.0.0.0/16, 192.168.1.7, fd00::/64)`
  },
  'ferry-port': {
    check: isPortString,
    problem: (s) => `${quote(s)} is not a port number from 1 to ${MAX_PORT}`
  },
  'ferry-path-match': {
    check: isPathMatch,
    problem: (s) => `${quote(s)} ${pathMatchProblem(s) ?? 'is invalid'}`
  },
  'ferry-method': {
    // Istio's methods take the string match too ("*" is any method).
    check: (s) => isStringMatch(s) && /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(s),
    problem: (s) => `${quote(s)} is not an HTTP method or a match of one ("GET", "P*", "*")`
  },
  ...fromProblems({
    'ferry-gateway-duration': gatewayDurationProblem,
    'ferry-duration': durationProblem,
    'ferry-header-name': headerNameProblem,
    'ferry-hostname': hostnameProblem,
    'ferry-regex': regexProblem,
    'ferry-export-to': exportToProblem,
    'ferry-retry-on': retryOnProblem,
    'ferry-grpc-status': grpcStatusProblem
  })
}

function fromProblems (checks: Record<string, (s: string) => string | null>): typeof FORMATS {
  return Object.fromEntries(Object.entries(checks).map(([name, problem]) => [name, {
    check: (s: string) => problem(s) === null,
    problem: (s: string) => `${quote(s)} ${problem(s) ?? 'is invalid'}`
  }]))
}

type KeywordCheck<S> = ((schema: S, data: unknown) => boolean) & { errors?: Array<Partial<ErrorObject>> }

const rejectField: KeywordCheck<string> = (reason) => {
  rejectField.errors = [{ keyword: UNSUPPORTED, message: reason, params: {} }]
  return false
}
/**
 * A `when` entry (src/resources/conditions.ts): a key Ferry cannot evaluate is marked
 * unsupported at the entry (its rule degrades); an unknown key, a bad value or neither
 * `values` nor `notValues` makes the document malformed, each at its own field.
 */
const checkCondition = (_schema: boolean, data: unknown, _parent?: unknown, cxt?: { instancePath: string }): boolean => {
  if (data === null || typeof data !== 'object' || typeof (data as { key?: unknown }).key !== 'string') return true
  const entry = data as { key: string, values?: unknown, notValues?: unknown }
  const at = cxt?.instancePath ?? ''
  const errors: Array<Partial<ErrorObject>> = []
  const k = conditionKey(entry.key)
  if (k.kind === 'unsupported') {
    errors.push({ keyword: UNSUPPORTED, instancePath: at, message: `not supported by Ferry: key ${quote(entry.key)}: ${k.reason}`, params: {} })
  } else if (k.kind === 'unknown') {
    errors.push({ keyword: CONDITION, instancePath: `${at}/key`, message: `${quote(entry.key)} is not a condition key Istio defines (${KNOWN_KEYS})`, params: {} })
  } else {
    for (const field of ['values', 'notValues'] as const) {
      const list = entry[field]
      if (!Array.isArray(list)) continue
      list.forEach((v, i) => {
        const problem = typeof v === 'string' ? conditionValueProblem(k.attribute, v) : null
        if (problem !== null) errors.push({ keyword: CONDITION, instancePath: `${at}/${field}/${i}`, message: `${quote(v)} ${problem}`, params: {} })
      })
    }
  }
  const count = (v: unknown): number => Array.isArray(v) ? v.length : 0
  if (k.kind !== 'unsupported' && count(entry.values) + count(entry.notValues) === 0) {
    errors.push({ keyword: CONDITION, instancePath: at, message: 'needs values or notValues (at least one value)', params: {} })
  }
  ;(checkCondition as KeywordCheck<boolean>).errors = errors
  return errors.length === 0
}

const rejectValue: KeywordCheck<Record<string, string>> = (reasons, data) => {
  if (typeof data !== 'string' || !Object.hasOwn(reasons, data)) return true
  rejectValue.errors = [{ keyword: UNSUPPORTED_VALUES, message: `${quote(data)}: ${reasons[data]}`, params: {} }]
  return false
}

// ajv and each kind's compiled schema are made on first use, not at import: the agent
// imports this module with --config-dir but validates only when a file is there, and
// ajv's code generation is a large share of a process's start-up heap.
let ajv: Ajv | undefined
const VALIDATORS = new Map<ResourceKind, ValidateFunction>()

function validatorOf (kind: ResourceKind): ValidateFunction {
  let validate = VALIDATORS.get(kind)
  if (validate === undefined) {
    ajv ??= createAjv()
    validate = ajv.compile(SCHEMAS[kind])
    VALIDATORS.set(kind, validate)
  }
  return validate
}

function createAjv (): Ajv {
  const AjvClass = (require('ajv') as typeof import('ajv')).default
  const a = new AjvClass({ allErrors: true, strict: true, verbose: true })
  for (const [name, f] of Object.entries(FORMATS)) a.addFormat(name, { type: 'string', validate: f.check })
  a.addKeyword({ keyword: UNSUPPORTED, schemaType: 'string', errors: true, validate: rejectField })
  a.addKeyword({ keyword: UNSUPPORTED_VALUES, schemaType: 'object', errors: true, validate: rejectValue })
  a.addKeyword({ keyword: CONDITION, schemaType: 'boolean', errors: true, validate: checkCondition as any })
  a.addKeyword({ keyword: UNION, schemaType: 'object', errors: true, validate: checkUnion as any })
  a.addKeyword({ keyword: AT_MOST_ONE, schemaType: 'array', errors: true, validate: checkAtMostOne as any })
  a.addKeyword({ keyword: MATCH_VALUE, schemaType: 'string', errors: true, validate: checkMatchValue as any })
  return a
}

/**
 * Every problem of `value` as a `kind` document; empty when it is valid. Issues marked
 * `unsupported` name what Ferry cannot enforce in an otherwise well-formed document;
 * any other issue makes the document malformed.
 */
export function validateResource (kind: ResourceKind, value: unknown): SchemaIssue[] {
  const validate = validatorOf(kind)
  if (validate(value)) return []
  const issues = (validate.errors ?? []).map((e) => toIssue(e, value)).filter((i): i is RawIssue => i !== null)
  // An unsupported value's reason beats ajv's enum complaint about the same field (an
  // `action: AUDIT` is also "not one of ALLOW, DENY"); a field's type errors stay.
  const valueMarked = new Set(issues.filter((i) => i.keyword === UNSUPPORTED_VALUES).map((i) => key(i.path)))
  const seen = new Set<string>()
  const out: SchemaIssue[] = []
  for (const i of issues) {
    if (i.keyword === 'enum' && valueMarked.has(key(i.path))) continue
    const k = `${key(i.path)}\0${i.message}`
    if (seen.has(k)) continue
    seen.add(k)
    out.push(i.ferry ? { path: i.path, message: i.message, unsupported: true } : { path: i.path, message: i.message })
  }
  return out
}

interface RawIssue { readonly path: FieldPath, readonly message: string, readonly ferry: boolean, readonly keyword: string }

function toIssue (e: ErrorObject, root: unknown): RawIssue | null {
  const issue = describe(e, root)
  return issue === null ? null : { ...issue, keyword: e.keyword }
}

function describe (e: ErrorObject, root: unknown): Omit<RawIssue, 'keyword'> | null {
  const path = pathOf(e.instancePath, root)
  const data = e.data
  const parent = e.parentSchema as Record<string, unknown> | undefined
  switch (e.keyword) {
    case UNSUPPORTED:
    case UNSUPPORTED_VALUES:
      return { path, message: e.message ?? 'not supported by Ferry', ferry: true }
    case 'additionalProperties': {
      const field = String(e.params.additionalProperty)
      const known = Object.entries((parent?.properties ?? {}) as Record<string, Record<string, unknown>>)
        .filter(([, s]) => !(UNSUPPORTED in s)).map(([k]) => k)
      const hint = known.length > 0 ? ` (known here: ${known.join(', ')})` : ''
      return { path: [...path, field], message: `unknown field${hint}`, ferry: false }
    }
    case 'required':
      return { path: [...path, String(e.params.missingProperty)], message: 'is required', ferry: false }
    case 'dependencies':
      return { path: [...path, String(e.params.property)], message: `needs ${String(e.params.missingProperty)} as well`, ferry: false }
    case 'type': {
      const hint = parent?.format === 'ferry-port' ? ' (Istio writes ports as strings: "8080")' : ''
      return { path, message: `must be ${String(e.params.type)}, not ${typeName(data)}${hint}`, ferry: false }
    }
    case 'enum':
      return { path, message: `${quote(data)} is not one of ${(e.params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`, ferry: false }
    case 'const':
      return { path, message: `must be ${JSON.stringify(e.params.allowedValue)}`, ferry: false }
    case 'format': {
      const f = FORMATS[String(e.params.format)]
      // Inside propertyNames the bad value is a key: point at it.
      const at = e.propertyName === undefined ? path : [...path, e.propertyName]
      return { path: at, message: f === undefined ? (e.message ?? 'is invalid') : f.problem(String(data)), ferry: false }
    }
    case 'propertyNames':
      return null // the error inside it (a format) names the key
    case 'minItems':
      return { path, message: 'must not be an empty list (leave the field out instead)', ferry: false }
    case 'minProperties':
      return { path, message: 'must set at least one field', ferry: false }
    case 'minLength':
      return { path, message: 'must not be empty', ferry: false }
    case 'minimum':
      return { path, message: `must be at least ${String(e.params.limit)}, not ${String(data)}`, ferry: false }
    case 'maximum':
      return { path, message: `must be at most ${String(e.params.limit)}, not ${String(data)}`, ferry: false }
    case 'maxItems':
      return { path, message: `must have at most ${String(e.params.limit)} entries`, ferry: false }
    case 'maxLength':
      return { path, message: `must be at most ${String(e.params.limit)} characters long`, ferry: false }
    case 'maxProperties': {
      const names = Object.keys((parent?.properties ?? {}) as Record<string, unknown>)
      return { path, message: `must set only one of ${names.join(', ')}`, ferry: false }
    }
    default:
      return { path, message: e.message ?? `fails the "${e.keyword}" check`, ferry: false }
  }
}

/** A JSON pointer as a field path: list indexes become numbers, map keys stay strings (even "8080"). */
function pathOf (pointer: string, root: unknown): Array<string | number> {
  if (pointer === '') return []
  const path: Array<string | number> = []
  let node = root
  for (const raw of pointer.split('/').slice(1)) {
    const seg = raw.replace(/~1/g, '/').replace(/~0/g, '~')
    const step = Array.isArray(node) ? Number(seg) : seg
    path.push(step)
    node = node !== null && typeof node === 'object' ? (node as Record<string | number, unknown>)[step] : undefined
  }
  return path
}

function key (path: FieldPath): string { return path.join('\0') }

function typeName (v: unknown): string {
  if (v === null) return 'null'
  if (Array.isArray(v)) return 'a list'
  if (typeof v === 'object') return 'a map'
  if (typeof v === 'number') return Number.isInteger(v) ? `the integer ${v}` : `the number ${v}`
  if (typeof v === 'boolean') return `the boolean ${String(v)}`
  return `${typeof v} ${quote(v)}`
}

function quote (v: unknown): string {
  const s = typeof v === 'string' ? v : JSON.stringify(v) ?? String(v)
  // eslint-disable-next-line no-control-regex
  const clean = s.replace(/[\u0000-\u001f\u007f]/g, '?')
  return JSON.stringify(clean.length > 120 ? `${clean.slice(0, 120)}…` : clean)
}
