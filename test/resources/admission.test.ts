import t from 'tap'
import { admitDocuments, ConfigAdmission } from '../../src/resources/admission'
import { formatIssue } from '../../src/resources/issues'
import type { ConfigSnapshot, SourceDocument } from '../../src/resources/snapshot'

// Admission object by object (src/resources/admission.ts): one bad object affects only
// itself. Each test would fail with the all-or-nothing loader: there, any refused
// document rejected every document of every file.

function ap (name: string, spec: string, ns = 'prod'): string {
  return `apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: ${name}\n  namespace: ${ns}\nspec:\n${spec.split('\n').map((l) => `  ${l}`).join('\n')}\n`
}

function pa (name: string, spec: string, ns = 'prod'): string {
  return `apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata:\n  name: ${name}\n  namespace: ${ns}\nspec:\n${spec.split('\n').map((l) => `  ${l}`).join('\n')}\n`
}

const DENY_DEV = ap('deny-dev', 'action: DENY\nrules:\n- from:\n  - source:\n      namespaces: ["dev"]')
const DENY_STAGE = ap('deny-dev', 'action: DENY\nrules:\n- from:\n  - source:\n      namespaces: ["stage"]')
const ALLOW_API = ap('allow-api', 'rules:\n- from:\n  - source:\n      principals: ["cluster.local/ns/prod/sa/api"]')
const UNKNOWN_FIELD = ap('deny-dev', 'action: DENY\nrules:\n- from:\n  - source:\n      namespace: ["dev"]')

let generation = 0
function admit (a: ConfigAdmission, files: Record<string, string>): ConfigSnapshot {
  const docs: SourceDocument[] = Object.entries(files).map(([path, text]) => ({ path, text }))
  return a.admit(docs, { origin: '/c', generation: ++generation })
}

function report (s: ConfigSnapshot, object: string): ConfigSnapshot['objects'][number] {
  const r = s.objects.find((o) => o.object === object)
  if (r === undefined) throw new Error(`no report for ${object}: ${s.objects.map((o) => o.object).join(', ')}`)
  return r
}

function namespacesOf (s: ConfigSnapshot, ref: string): unknown {
  return s.authorizationPolicies.find((p) => p.ref === ref)?.spec.rules?.[0].from?.[0].source.namespaces
}

t.test('a malformed object keeps its earlier version; the good change beside it applies', async (t) => {
  const a = new ConfigAdmission()
  const first = admit(a, { '/c/a.yaml': DENY_DEV, '/c/b.yaml': ALLOW_API })
  t.same(first.objects.map((o) => [o.object, o.state]), [['AuthorizationPolicy prod/deny-dev', 'accepted'], ['AuthorizationPolicy prod/allow-api', 'accepted']])

  const second = admit(a, { '/c/a.yaml': UNKNOWN_FIELD, '/c/b.yaml': ALLOW_API.replace('sa/api', 'sa/web') })
  const r = report(second, 'AuthorizationPolicy prod/deny-dev')
  t.match(r, { state: 'refused', refusal: 'invalid', inForce: 'earlier-version', file: '/c/a.yaml', line: 1, note: 'the earlier version (/c/a.yaml:1) keeps applying' })
  t.match(formatIssue(r.issues[0]), /^\/c\/a\.yaml:11: AuthorizationPolicy prod\/deny-dev: spec\.rules\[0\]\.from\[0\]\.source\.namespace: unknown field/)
  t.same(namespacesOf(second, 'prod/deny-dev'), ['dev'], 'the earlier version is enforced')
  t.same(second.authorizationPolicies.find((p) => p.ref === 'prod/allow-api')?.spec.rules?.[0].from?.[0].source.principals, ['cluster.local/ns/prod/sa/web'], 'the good change in the other file applies')

  const third = admit(a, { '/c/a.yaml': DENY_STAGE, '/c/b.yaml': ALLOW_API })
  t.equal(report(third, 'AuthorizationPolicy prod/deny-dev').state, 'accepted')
  t.same(namespacesOf(third, 'prod/deny-dev'), ['stage'], 'fixed: the new version applies')
})

t.test('a malformed object with no earlier version: nothing of it applies, everything else does', async (t) => {
  const s = admitDocuments([{ path: '/c/a.yaml', text: UNKNOWN_FIELD }, { path: '/c/b.yaml', text: ALLOW_API }], { origin: '/c', generation: 1 })
  t.match(report(s, 'AuthorizationPolicy prod/deny-dev'), { state: 'refused', inForce: 'none' })
  t.same(s.authorizationPolicies.map((p) => p.ref), ['prod/allow-api'])
})

t.test('a name defined twice: the first (by file, then line) applies, the later is refused', async (t) => {
  const s = admitDocuments([{ path: '/c/b.yaml', text: DENY_STAGE }, { path: '/c/a.yaml', text: DENY_DEV }], { origin: '/c', generation: 1 })
  t.same(namespacesOf(s, 'prod/deny-dev'), ['dev'], '/c/a.yaml comes first')
  const refused = s.objects.filter((o) => o.state === 'refused')
  t.equal(refused.length, 1)
  t.match(refused[0], { file: '/c/b.yaml', refusal: 'conflict', inForce: 'other-definition', note: 'the first definition (/c/a.yaml:1) applies' })
  t.match(formatIssue(refused[0].issues[0]), '/c/b.yaml:4: AuthorizationPolicy prod/deny-dev: metadata.name: defined twice (also at /c/a.yaml:1)')
})

t.test('a file that cannot be read whole keeps what it held; other files apply; a fixed file can delete', async (t) => {
  const a = new ConfigAdmission()
  admit(a, { '/c/a.yaml': DENY_DEV + '---\n' + ALLOW_API, '/c/b.yaml': pa('default', 'mtls: { mode: STRICT }') })
  const broken = admit(a, { '/c/a.yaml': DENY_DEV + '---\n' + 'kind: [', '/c/b.yaml': pa('default', 'mtls: { mode: PERMISSIVE }') })
  t.same(broken.authorizationPolicies.map((p) => p.ref), ['prod/allow-api', 'prod/deny-dev'], 'allow-api is in the broken document: kept')
  const yaml = broken.objects.find((o) => o.key === null)
  t.match(yaml, { state: 'refused', inForce: 'earlier-version', file: '/c/a.yaml', note: 'the objects this file held before keep their last good version: AuthorizationPolicy prod/allow-api' })
  t.match(yaml?.issues[0].message, /^YAML error/)
  t.equal(broken.peerAuthentications[0].spec.mtls?.mode, 'PERMISSIVE', 'the other file applies')

  const unknownKind = admit(a, { '/c/a.yaml': DENY_DEV + '---\napiVersion: v1\nkind: ConfigMap\nmetadata: { name: x, namespace: prod }\n', '/c/b.yaml': '' })
  t.same(unknownKind.authorizationPolicies.map((p) => p.ref), ['prod/allow-api', 'prod/deny-dev'], 'a document of no known kind: still kept')
  t.equal(unknownKind.peerAuthentications.length, 0, 'the emptied file deleted its object')

  const fixed = admit(a, { '/c/a.yaml': DENY_DEV })
  t.same(fixed.authorizationPolicies.map((p) => p.ref), ['prod/deny-dev'], 'readable again: allow-api is gone, as the file says')
  t.same(fixed.objects.map((o) => o.state), ['accepted'])
})

t.test('a second namespace-wide PeerAuthentication: the one in force stays; without memory, the first', async (t) => {
  const a = new ConfigAdmission()
  admit(a, { '/c/z.yaml': pa('strict', 'mtls: { mode: STRICT }') })
  const two = admit(a, { '/c/a.yaml': pa('open', 'mtls: { mode: PERMISSIVE }'), '/c/z.yaml': pa('strict', 'mtls: { mode: STRICT }') })
  t.same(two.peerAuthentications.map((p) => p.ref), ['prod/strict'], 'the one already in force, though /c/a.yaml comes first')
  t.match(report(two, 'PeerAuthentication prod/open'), { state: 'refused', refusal: 'conflict', inForce: 'other-definition' })
  t.match(report(two, 'PeerAuthentication prod/open').issues[0].message, /a second namespace-wide PeerAuthentication in prod \(the one in force is PeerAuthentication prod\/strict/)

  const fresh = admitDocuments([{ path: '/c/a.yaml', text: pa('open', 'mtls: { mode: PERMISSIVE }') }, { path: '/c/z.yaml', text: pa('strict', 'mtls: { mode: STRICT }') }], { origin: '/c', generation: 1 })
  t.same(fresh.peerAuthentications.map((p) => p.ref), ['prod/open'], 'no memory: the first by file')
  const mesh = admitDocuments([{ path: '/c/a.yaml', text: pa('a', '{}', 'ferry-system') + '---\n' + pa('b', '{}', 'ferry-system') }], { origin: '/c', generation: 1 })
  t.match(report(mesh, 'PeerAuthentication ferry-system/b').issues[0].message, /a second mesh-wide PeerAuthentication/)
})

t.test('a PeerAuthentication with a selector in the root namespace applies to nothing (as in Istio): degraded, not enforced', async (t) => {
  const s = admitDocuments([{ path: '/c/a.yaml', text: pa('db', 'selector: { matchLabels: { app: db } }\nmtls: { mode: PERMISSIVE }', 'ferry-system') }], { origin: '/c', generation: 1 })
  t.equal(s.peerAuthentications.length, 0)
  t.match(report(s, 'PeerAuthentication ferry-system/db'), { state: 'degraded', issues: [{ line: 7, message: /applies to nothing \(as in Istio\); ignored/ }] })
  t.equal(s.documents.length, 1, 'its document is still part of what is in force (so agents judge it the same)')
})

t.test('a wrong type under a field Ferry cannot enforce is malformed, not degraded', async (t) => {
  const s = admitDocuments([{ path: '/c/a.yaml', text: ap('x', 'action: DENY\nrules:\n- to:\n  - operation:\n      methods: "GET"') }], { origin: '/c', generation: 1 })
  t.match(report(s, 'AuthorizationPolicy prod/x'), { state: 'refused', refusal: 'invalid' })
  t.ok(report(s, 'AuthorizationPolicy prod/x').issues.some((i) => /must be array, not string "GET"/.test(i.message)))
  const when = admitDocuments([{ path: '/c/a.yaml', text: ap('y', 'action: DENY\nrules:\n- when:\n  - values: ["x"]') }], { origin: '/c', generation: 1 })
  t.match(report(when, 'AuthorizationPolicy prod/y'), { state: 'refused', issues: [{ message: 'is required' }] }, 'a `when` entry without its key')
})

t.test('documents of what is in force: each object cut from its file, with its line, admitted again the same', async (t) => {
  const text = '# two policies\n' + DENY_DEV + '---\n' + ALLOW_API + '---\napiVersion: v1\nkind: List\nitems:\n- ' + pa('default', 'mtls: { mode: STRICT }').trimEnd().split('\n').join('\n  ') + '\n'
  const s = admitDocuments([{ path: '/c/a.yaml', text }], { origin: '/c', generation: 1 })
  t.same(s.documents.map((d) => [d.path, d.line]), [['/c/a.yaml', 2], ['/c/a.yaml', 14], ['/c/a.yaml', 28]])
  const again = admitDocuments(s.documents, { origin: 'again', generation: 1 })
  t.same(again.authorizationPolicies.map((p) => [p.ref, p.origin]), s.authorizationPolicies.map((p) => [p.ref, p.origin]), 'same resources, same file and line')
  const deny = again.authorizationPolicies.find((p) => p.ref === 'prod/deny-dev')!
  t.same(again.locate(deny, ['spec', 'rules', 0, 'from', 0, 'source', 'namespaces']), s.locate(s.authorizationPolicies.find((p) => p.ref === 'prod/deny-dev')!, ['spec', 'rules', 0, 'from', 0, 'source', 'namespaces']), 'fields located on the same line')
  t.equal(again.peerAuthentications[0].spec.mtls?.mode, 'STRICT', 'a List item travels as JSON')
})

t.test('seed(): a saved configuration is the last good version for a file broken at start', async (t) => {
  const saved = admitDocuments([{ path: '/c/a.yaml', text: DENY_DEV }], { origin: '/c', generation: 1 }).documents
  const a = new ConfigAdmission()
  a.seed(saved)
  const s = admit(a, { '/c/a.yaml': 'kind: [' })
  t.same(namespacesOf(s, 'prod/deny-dev'), ['dev'], 'kept from the saved configuration')
  const fresh = admit(new ConfigAdmission(), { '/c/a.yaml': 'kind: [' })
  t.equal(fresh.authorizationPolicies.length, 0, 'without it, nothing')
})
