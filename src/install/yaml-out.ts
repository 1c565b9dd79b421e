import { stringify } from 'yaml'

// Manifests as YAML documents, the way kubectl prints them: one object per document,
// separated by `---`, no line folding (long CEL rules and args stay on one line), and
// in YAML 1.1 as kubectl reads it: strings such as "yes", "on" or "0400" stay quoted.

export function toYamlDocuments (objects: readonly unknown[], header = ''): string {
  const docs = objects.map((o) => stringify(o, { version: '1.1', lineWidth: 0, minContentWidth: 0, indentSeq: true }))
  return header + docs.join('---\n')
}
