import type { Document, LineCounter } from 'yaml'
import type { ConfigIssue, FieldPath } from './issues'

// Multi-document YAML into plain values that remember where each field was written, so
// that a bad field is reported with its file and line. Uses the `yaml` Document API:
// every node keeps its source range, and a LineCounter turns offsets into lines. The
// library is loaded on the first parse (an agent with an empty --config-dir never needs it).
// `kind: List` documents (what `kubectl get -o yaml` prints) are flattened into items.

export interface LocatedDocument {
  readonly file: string
  /** The document as plain JSON-like data. */
  readonly value: unknown
  /** Line (1-based) of the field at `path`, or of its nearest ancestor that exists. */
  readonly lineOf: (path: FieldPath) => number
}

export interface ParsedYaml {
  readonly documents: LocatedDocument[]
  readonly issues: ConfigIssue[]
}

/** Aliases beyond this count are refused (the "billion laughs" guard). */
const MAX_ALIAS_COUNT = 100

type Ranged = { range?: [number, number, number] } | null | undefined

export function parseYamlDocuments (text: string, file: string): ParsedYaml {
  const documents: LocatedDocument[] = []
  const issues: ConfigIssue[] = []
  const yaml = loadYaml()
  const lines = new yaml.LineCounter()
  const docs = yaml.parseAllDocuments(text, { lineCounter: lines, uniqueKeys: true, prettyErrors: false })
  if (!Array.isArray(docs)) return { documents, issues } // only comments or whitespace
  for (const doc of docs) {
    if (doc.errors.length > 0) {
      for (const e of doc.errors) issues.push({ file, line: lines.linePos(e.pos[0]).line, message: `YAML error: ${firstLine(e.message)}` })
      continue
    }
    let value: unknown
    try {
      value = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT })
    } catch (err) {
      issues.push({ file, line: lines.linePos(doc.range[0]).line, message: `YAML error: ${(err as Error).message}` })
      continue
    }
    if (value === null || value === undefined) continue // a trailing `---`, or only comments
    const lineOf = lineFinder(yaml, doc, lines)
    if (isList(value)) {
      value.items.forEach((item, i) => { documents.push({ file, value: item, lineOf: (path) => lineOf(['items', i, ...path]) }) })
    } else {
      documents.push({ file, value, lineOf })
    }
  }
  return { documents, issues }
}

function isList (value: unknown): value is { items: unknown[] } {
  const v = value as Record<string, unknown> | null
  return v !== null && typeof v === 'object' && v.apiVersion === 'v1' && v.kind === 'List' && Array.isArray(v.items)
}

function lineFinder (yaml: YamlModule, doc: Document.Parsed, lines: LineCounter): (path: FieldPath) => number {
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
    return lines.linePos(offset).line
  }
}

type YamlModule = typeof import('yaml')

function loadYaml (): YamlModule {
  return require('yaml') as YamlModule
}

function firstLine (s: string): string {
  return s.split('\n')[0]
}
