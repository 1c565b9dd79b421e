import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { type LocatedDocument, parseYamlDocuments } from '../../resources/yaml'
import type { ManifestIssue } from './issues'

// Reads the lab's manifest files into plain objects that remember where they came
// from, so later stages can name the file and line of a bad field. The YAML itself is
// parsed by the same code as Ferry's configuration documents (src/resources/yaml.ts).

export type SourceObject = LocatedDocument

export interface LoadResult {
  readonly objects: SourceObject[]
  readonly issues: ManifestIssue[]
}

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
  const { documents, issues } = parseYamlDocuments(text, file)
  return { objects: documents, issues }
}
