import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { isMap, isSeq, LineCounter, parseAllDocuments, type Document } from 'yaml'
import type { FieldPath, ManifestIssue } from './issues'

// Reads multi-document YAML files into plain objects that remember where they came
// from, so later stages can name the file and line of a bad field. `kind: List`
// documents (what `kubectl get -o yaml` prints) are flattened into their items.

export interface SourceObject {
  readonly file: string
  /** The object as plain JSON-like data. */
  readonly value: unknown
  /** Line (1-based) of the field at `path` in this object, or of its nearest parent that exists. */
  lineOf: (path: FieldPath) => number
}

export interface LoadResult {
  readonly objects: SourceObject[]
  readonly issues: ManifestIssue[]
}

/** Aliases beyond this count are refused (the "billion laughs" guard). */
const MAX_ALIAS_COUNT = 100

export function loadManifestFiles (files: readonly string[], read: (path: string) => string = (p) => readFileSync(p, 'utf8')): LoadResult {
  const objects: SourceObject[] = []
  const issues: ManifestIssue[] = []
  for (const file of files) {
    let text: string
    try {
      text = read(file)
    } catch (err) {
      issues.push({ file, message: `cannot read the file: ${(err as Error).message}` })
      continue
    }
    const loaded = loadManifestText(text, resolve(file))
    objects.push(...loaded.objects)
    issues.push(...loaded.issues)
  }
  return { objects, issues }
}

export function loadManifestText (text: string, file: string): LoadResult {
  const objects: SourceObject[] = []
  const issues: ManifestIssue[] = []
  const lines = new LineCounter()
  const docs = parseAllDocuments(text, { lineCounter: lines, uniqueKeys: true, prettyErrors: false })
  if (!Array.isArray(docs)) {
    // An EmptyStream: nothing but comments or whitespace.
    return { objects, issues }
  }
  for (const doc of docs) {
    if (doc.errors.length > 0) {
      for (const e of doc.errors) {
        issues.push({ file, line: lines.linePos(e.pos[0]).line, message: `YAML error: ${firstLine(e.message)}` })
      }
      continue
    }
    let value: unknown
    try {
      value = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT })
    } catch (err) {
      issues.push({ file, line: lines.linePos(doc.range[0]).line, message: `YAML error: ${(err as Error).message}` })
      continue
    }
    if (value === null || value === undefined) continue // e.g. a trailing `---`, or only comments
    const lineOf = lineFinder(doc, lines)
    if (isList(value)) {
      value.items.forEach((item, i) => objects.push({ file, value: item, lineOf: (path) => lineOf(['items', i, ...path]) }))
    } else {
      objects.push({ file, value, lineOf })
    }
  }
  return { objects, issues }
}

function isList (value: unknown): value is { items: unknown[] } {
  const v = value as Record<string, unknown> | null
  return v !== null && typeof v === 'object' && v.apiVersion === 'v1' && v.kind === 'List' && Array.isArray(v.items)
}

function lineFinder (doc: Document.Parsed, lines: LineCounter): (path: FieldPath) => number {
  return (path) => {
    let node: unknown = doc.contents
    let offset = (doc.contents as { range?: [number, number, number] } | null)?.range?.[0] ?? doc.range[0]
    for (const seg of path) {
      let next: unknown
      if (isMap(node)) {
        const pair = node.items.find((p) => (p.key as { value?: unknown } | null)?.value === seg)
        if (pair === undefined) break
        // Point at the key: that is where a person looks for a bad field.
        offset = (pair.key as { range?: [number, number, number] }).range?.[0] ?? offset
        next = pair.value
      } else if (isSeq(node) && typeof seg === 'number') {
        next = node.items[seg]
        const r = (next as { range?: [number, number, number] } | undefined)?.range
        if (r !== undefined) offset = r[0]
      } else {
        break
      }
      node = next
    }
    return lines.linePos(offset).line
  }
}

function firstLine (s: string): string {
  return s.split('\n')[0]
}
