import type { Document } from 'yaml'
import type { ConfigIssue, FieldPath } from './issues'

// Multi-document YAML into plain values that remember where each field was written, so
// that a bad field is reported with its file and line. Uses the `yaml` Document API:
// every node keeps its source range, and a LineCounter turns offsets into lines. The
// library is loaded on the first parse (an agent with an empty --config-dir never needs it).
// `kind: List` documents (what `kubectl get -o yaml` prints) are flattened into items.
//
// Each document also keeps its own text (`source`): the lines of the file it occupies,
// or the JSON of a List's item. That text alone parses back into the same document, so
// one object can be sent or saved by itself; parsed with `firstLine`, it reports the
// lines of the file it came from.

export interface LocatedDocument {
  readonly file: string
  /** The document as plain JSON-like data. */
  readonly value: unknown
  /** Line (1-based) of the field at `path`, or of its nearest ancestor that exists. */
  readonly lineOf: (path: FieldPath) => number
  /** This document's own text, and the line of `file` where it starts. */
  readonly source: { readonly text: string, readonly line: number }
}

export interface ParseOptions {
  /** The text starts at this line of `file` (a document cut from it); default 1. */
  readonly firstLine?: number
}

export interface ParsedYaml {
  readonly documents: LocatedDocument[]
  readonly issues: ConfigIssue[]
}

/** Aliases beyond this count are refused (the "billion laughs" guard). */
const MAX_ALIAS_COUNT = 100
/**
 * Collections nested deeper than this are refused before they are converted: a
 * configuration document needs a dozen levels, and the conversion (recursive, in the
 * library and in the validators after it) must never come near the stack's end.
 */
const MAX_NESTING = 64

type Ranged = { range?: [number, number, number] } | null | undefined

export function parseYamlDocuments (text: string, file: string, opts: ParseOptions = {}): ParsedYaml {
  const documents: LocatedDocument[] = []
  const issues: ConfigIssue[] = []
  const yaml = loadYaml()
  const counter = new yaml.LineCounter()
  const shift = (opts.firstLine ?? 1) - 1
  const lineAt = (offset: number): number => counter.linePos(offset).line + shift
  // parseAllDocuments in two steps, so that documents nested too deeply for the
  // composer's recursion are set aside before it sees them (the tokenizer is iterative).
  const tokens: Array<import('yaml').CST.Token> = []
  for (const token of new yaml.Parser(counter.addNewLine).parse(text)) {
    const deep = cstTooDeep(token)
    if (deep === null) tokens.push(token)
    else issues.push({ file, line: lineAt(deep), message: `YAML error: ${TOO_DEEP}` })
  }
  const docs = Array.from(new yaml.Composer({ uniqueKeys: true }).compose(tokens))
  for (const doc of docs) {
    if (doc.errors.length > 0) {
      for (const e of doc.errors) issues.push({ file, line: lineAt(e.pos[0]), message: `YAML error: ${firstLine(e.message)}` })
      continue
    }
    const shape = shapeProblem(yaml, doc)
    if (shape !== null) {
      issues.push({ file, line: lineAt(shape.offset), message: `YAML error: ${shape.message}` })
      continue
    }
    let value: unknown
    try {
      value = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT })
    } catch (err) {
      issues.push({ file, line: lineAt(doc.range[0]), message: `YAML error: ${(err as Error).message}` })
      continue
    }
    if (value === null || value === undefined) continue // a trailing `---`, or only comments
    const lineOf = lineFinder(yaml, doc, lineAt)
    if (isList(value)) {
      value.items.forEach((item, i) => {
        const at = (path: FieldPath): number => lineOf(['items', i, ...path])
        documents.push({ file, value: item, lineOf: at, source: { text: JSON.stringify(item) + '\n', line: at([]) } })
      })
    } else {
      documents.push({ file, value, lineOf, source: ownText(text, doc, lineAt) })
    }
  }
  return { documents, issues }
}

const TOO_DEEP = `maps and lists are nested deeper than ${MAX_NESTING} levels`

/** The offset of a collection nested deeper than MAX_NESTING in a tokenized document, or null. Iterative. */
function cstTooDeep (token: import('yaml').CST.Token): number | null {
  const stack: Array<{ node: unknown, depth: number }> = [{ node: token, depth: 0 }]
  while (stack.length > 0) {
    const { node, depth } = stack.pop()!
    if (node === null || typeof node !== 'object') continue
    const t = node as { value?: unknown, items?: Array<{ key?: unknown, value?: unknown }>, offset?: number }
    if (Array.isArray(t.items)) {
      if (depth + 1 > MAX_NESTING) return t.offset ?? 0
      for (const item of t.items) {
        stack.push({ node: item.key, depth: depth + 1 })
        stack.push({ node: item.value, depth: depth + 1 })
      }
    } else if (t.value !== null && typeof t.value === 'object') {
      stack.push({ node: t.value, depth })
    }
  }
  return null
}

/**
 * Why a parsed document cannot be converted safely, or null. Walked without recursion:
 * a map or list nested deeper than MAX_NESTING, and a mapping key that is a map, a list
 * or an alias (the library would print such a key as a string, in time that grows
 * exponentially with its nesting: `? ? ? … ` of a kilobyte takes minutes). Keys of
 * configuration documents are plain scalars.
 */
function shapeProblem (yaml: YamlModule, doc: Document.Parsed): { offset: number, message: string } | null {
  const { isAlias, isCollection, isPair } = yaml
  const stack: Array<{ node: unknown, depth: number }> = [{ node: doc.contents, depth: 1 }]
  while (stack.length > 0) {
    const { node, depth } = stack.pop()!
    if (!isCollection(node)) continue
    const offset = (node as Ranged)?.range?.[0] ?? 0
    if (depth > MAX_NESTING) return { offset, message: TOO_DEEP }
    for (const item of node.items as unknown[]) {
      if (isPair(item)) {
        if (isCollection(item.key) || isAlias(item.key)) {
          return { offset: (item.key as Ranged)?.range?.[0] ?? offset, message: 'a mapping key must be a plain value (a string or a number), not a map, a list or an alias' }
        }
        stack.push({ node: item.value, depth: depth + 1 })
      } else {
        stack.push({ node: item, depth: depth + 1 })
      }
    }
  }
  return null
}

/** The lines a document's contents occupy (from the start of its first line, so a `--- {…}` keeps its marker). */
function ownText (text: string, doc: Document.Parsed, lineAt: (offset: number) => number): { text: string, line: number } {
  const range = (doc.contents as Ranged)?.range ?? doc.range
  const start = text.lastIndexOf('\n', range[0] - 1) + 1
  const end = range[2] ?? range[1]
  const own = text.slice(start, end)
  return { text: own.endsWith('\n') ? own : own + '\n', line: lineAt(start) }
}

function isList (value: unknown): value is { items: unknown[] } {
  const v = value as Record<string, unknown> | null
  return v !== null && typeof v === 'object' && v.apiVersion === 'v1' && v.kind === 'List' && Array.isArray(v.items)
}

function lineFinder (yaml: YamlModule, doc: Document.Parsed, lineAt: (offset: number) => number): (path: FieldPath) => number {
  const { isMap, isScalar, isSeq } = yaml
  return (path) => {
    let node: unknown = doc.contents
    let offset = (doc.contents as Ranged)?.range?.[0] ?? doc.range[0]
    for (const seg of path) {
      let next: unknown
      if (isMap(node)) {
        // Keys may be scalars of any type (a port `8080:` is a number): compare as strings.
        const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(seg))
        if (pair === undefined) break
        // Point at the key: that is where a person looks for a bad field.
        offset = (pair.key as Ranged)?.range?.[0] ?? offset
        next = pair.value
      } else if (isSeq(node) && typeof seg === 'number') {
        next = node.items[seg]
        const r = (next as Ranged)?.range
        if (r !== undefined) offset = r[0]
      } else {
        break
      }
      node = next
    }
    return lineAt(offset)
  }
}

type YamlModule = typeof import('yaml')

function loadYaml (): YamlModule {
  return require('yaml') as YamlModule
}

function firstLine (s: string): string {
  return s.split('\n')[0]
}
