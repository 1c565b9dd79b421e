import { isDeepStrictEqual } from 'node:util'
import { ferryError } from '../errors'
import { FERRY_PLUGIN_TYPE } from './entry'

// Ferry's entry in the primary CNI's configuration, edited as text: the file is the
// primary CNI's, and everything but its `plugins` list stays byte for byte what it
// wrote (key order, spacing, numbers as spelled). The text is validated with JSON.parse
// first; the scanner below only finds where values start and end in text already known
// to be JSON, and every edit is checked by parsing the result against the intended
// object.
//
//   withFerryEntry     Ferry's entry last in `plugins` (after the primary and its chained
//                      plugins); an entry already there and equal is left alone
//                      (idempotent); an old or misplaced one is replaced
//   withoutFerryEntry  every entry of type ferry-cni removed (uninstall)
//   confToConflist     a lone network configuration (.conf) as a list holding it

export interface Edit {
  readonly text: string
  readonly changed: boolean
}

type Json = Record<string, unknown>

/** Inserts Ferry's entry at the end of a conflist's plugins, or leaves an equal one in place. Throws FERRY_ERR_CNI_CONF. */
export function withFerryEntry (text: string, entry: Json, file: string): Edit {
  const { doc, plugins } = conflist(text, file)
  const ours = plugins.map((p, i) => isFerry(p) ? i : -1).filter((i) => i >= 0)
  if (ours.length === plugins.length) throw ferryError('FERRY_ERR_CNI_CONF', `${file}: no primary CNI plugin in "plugins" for Ferry's entry to follow`)
  if (ours.length === 1 && ours[0] > 0 && isDeepStrictEqual(plugins[ours[0]], entry)) return { text, changed: false }
  let out = removeElements(text, ours)
  const left = arraySpans(out, pluginsValueStart(out))
  const last = left[left.length - 1]
  const indent = lineIndent(out, last.start)
  const entryText = indent === null ? JSON.stringify(entry) : JSON.stringify(entry, null, 2).replace(/\n/g, `\n${indent}`)
  out = `${out.slice(0, last.end)},${indent === null ? ' ' : `\n${indent}`}${entryText}${out.slice(last.end)}`
  check(out, { ...doc, plugins: [...plugins.filter((p) => !isFerry(p)), entry] }, file)
  return { text: out, changed: true }
}

/** Removes every ferry-cni entry; the rest of the file is untouched. Throws FERRY_ERR_CNI_CONF. */
export function withoutFerryEntry (text: string, file: string): Edit {
  const { doc, plugins } = conflist(text, file)
  const ours = plugins.map((p, i) => isFerry(p) ? i : -1).filter((i) => i >= 0)
  if (ours.length === 0) return { text, changed: false }
  const out = removeElements(text, ours)
  check(out, { ...doc, plugins: plugins.filter((p) => !isFerry(p)) }, file)
  return { text: out, changed: true }
}

/** Whether a configuration text (list or lone) already carries Ferry's entry. */
export function hasFerryEntry (text: string): boolean {
  try {
    const doc = JSON.parse(text) as Json
    return Array.isArray(doc.plugins) && doc.plugins.some(isFerry)
  } catch {
    return false
  }
}

/** A configuration's kind: a list (has `plugins`), a lone network (has `type`), or neither. Throws FERRY_ERR_CNI_CONF when not a JSON object. */
export function configKind (text: string, file: string): 'list' | 'single' | 'other' {
  const doc = parseObject(text, file)
  if (Array.isArray(doc.plugins)) return 'list'
  return typeof doc.type === 'string' && doc.type !== '' ? 'single' : 'other'
}

/**
 * A lone network configuration as a list: the list takes its cniVersion and name, and
 * holds the original text, unchanged, as its only plugin (a runtime sets a list
 * plugin's name and cniVersion from the list's, so the copies inside are harmless).
 */
export function confToConflist (text: string, file: string): string {
  const doc = parseObject(text, file)
  if (typeof doc.type !== 'string') throw ferryError('FERRY_ERR_CNI_CONF', `${file}: not a network configuration (no "type")`)
  const version = typeof doc.cniVersion === 'string' ? doc.cniVersion : ''
  const [major, minor] = (/^(\d+)\.(\d+)\.\d+$/.exec(version) ?? []).slice(1).map(Number)
  if (major === undefined || (major === 0 && minor < 3)) {
    throw ferryError('FERRY_ERR_CNI_CONF', `${file}: cniVersion "${version}" cannot chain plugins (chaining needs 0.3.0 or newer)`)
  }
  const name = typeof doc.name === 'string' ? doc.name : 'k8s-pod-network'
  const out = `{\n  "cniVersion": ${JSON.stringify(version)},\n  "name": ${JSON.stringify(name)},\n  "plugins": [\n    ${text.trim()}\n  ]\n}\n`
  check(out, { cniVersion: version, name, plugins: [doc] }, file)
  return out
}

function isFerry (p: unknown): boolean {
  return p !== null && typeof p === 'object' && (p as Json).type === FERRY_PLUGIN_TYPE
}

function parseObject (text: string, file: string): Json {
  let doc: unknown
  try {
    doc = JSON.parse(text)
  } catch (err) {
    throw ferryError('FERRY_ERR_CNI_CONF', `${file}: not valid JSON (${(err as Error).message}); left as it is`, { cause: err })
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) throw ferryError('FERRY_ERR_CNI_CONF', `${file}: not a JSON object; left as it is`)
  return doc as Json
}

function conflist (text: string, file: string): { doc: Json, plugins: unknown[] } {
  const doc = parseObject(text, file)
  if (!Array.isArray(doc.plugins)) throw ferryError('FERRY_ERR_CNI_CONF', `${file}: no "plugins" list; left as it is`)
  return { doc, plugins: doc.plugins }
}

function check (text: string, expected: Json, file: string): void {
  let got: unknown
  try {
    got = JSON.parse(text)
  } catch {
    got = undefined
  }
  if (!isDeepStrictEqual(got, expected)) throw ferryError('FERRY_ERR_CNI_CONF', `${file}: editing the plugins list did not give the intended configuration; left as it is`)
}

/** Removes the plugins list's elements at `indices`, with their separating commas. */
function removeElements (text: string, indices: readonly number[]): string {
  let out = text
  for (const i of [...indices].sort((a, b) => b - a)) {
    const spans = arraySpans(out, pluginsValueStart(out))
    const from = i > 0 ? spans[i - 1].end : spans[i].start
    const to = i > 0 ? spans[i].end : (spans.length > 1 ? spans[1].start : spans[i].end)
    out = out.slice(0, from) + out.slice(to)
  }
  return out
}

/** The whitespace that starts the line of `at`, if only whitespace precedes it there; null when it shares its line with more. */
function lineIndent (text: string, at: number): string | null {
  const lineStart = text.lastIndexOf('\n', at - 1) + 1
  const before = text.slice(lineStart, at)
  return /^[ \t]*$/.test(before) && lineStart > 0 ? before : null
}

// --- where values are, in text known to be valid JSON -------------------------------

interface Span { start: number, end: number }

const WS = new Set([' ', '\t', '\n', '\r'])

function skipWs (text: string, i: number): number {
  while (i < text.length && WS.has(text[i])) i++
  return i
}

/** End (exclusive) of the string starting at the quote at i. */
function stringEnd (text: string, i: number): number {
  for (let j = i + 1; j < text.length; j++) {
    if (text[j] === '\\') j++
    else if (text[j] === '"') return j + 1
  }
  return text.length
}

/** End (exclusive) of the value starting at i. */
function valueEnd (text: string, i: number): number {
  const c = text[i]
  if (c === '"') return stringEnd(text, i)
  if (c !== '{' && c !== '[') {
    let j = i
    while (j < text.length && !WS.has(text[j]) && text[j] !== ',' && text[j] !== '}' && text[j] !== ']') j++
    return j
  }
  let depth = 0
  for (let j = i; j < text.length; j++) {
    const d = text[j]
    if (d === '"') { j = stringEnd(text, j) - 1; continue }
    if (d === '{' || d === '[') depth++
    else if (d === '}' || d === ']') { depth--; if (depth === 0) return j + 1 }
  }
  return text.length
}

/** Where the top-level object's "plugins" value starts (the last one, as JSON.parse keeps the last of duplicate keys). */
function pluginsValueStart (text: string): number {
  let found = -1
  let i = skipWs(text, 0) + 1 // past '{'
  for (;;) {
    i = skipWs(text, i)
    if (text[i] !== '"') break
    const keyEnd = stringEnd(text, i)
    const start = skipWs(text, skipWs(text, keyEnd) + 1) // past ':'
    if (JSON.parse(text.slice(i, keyEnd)) === 'plugins') found = start
    i = skipWs(text, valueEnd(text, start))
    if (text[i] === ',') i++
  }
  if (found < 0) throw ferryError('FERRY_ERR_CNI_CONF', 'no "plugins" member found')
  return found
}

/** The spans of the elements of the array starting at i. */
function arraySpans (text: string, i: number): Span[] {
  const out: Span[] = []
  let j = skipWs(text, i + 1)
  while (text[j] !== ']') {
    const end = valueEnd(text, j)
    out.push({ start: j, end })
    j = skipWs(text, end)
    if (text[j] === ',') j = skipWs(text, j + 1)
  }
  return out
}
