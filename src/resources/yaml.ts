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

type Ranged = { range?: [number, number, number] } | null | undefined

export function parseYamlDocuments (text: string, file: string, opts: ParseOptions = {}): ParsedYaml {
  const documents: LocatedDocument[] = []
  const issues: ConfigIssue[] = []
  const yaml = loadYaml()
  const counter = new yaml.LineCounter()
  const shift = (opts.firstLine ?? 1) - 1
  const lineAt = (offset: number): number => counter.linePos(offset).line + shift
  const docs = yaml.parseAllDocuments(text, { lineCounter: counter, uniqueKeys: true, prettyErrors: false })
  if (!Array.isArray(docs)) return { documents, issues } // only comments or whitespace
  for (const doc of docs) {
    if (doc.errors.length > 0) {
      for (const e of doc.errors) issues.push({ file, line: lineAt(e.pos[0]), message: `YAML error: ${firstLine(e.message)}` })
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
