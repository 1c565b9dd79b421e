import t from 'tap'
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ConfigError, type ConfigIssue } from '../../src/resources/issues'
import { buildSnapshot, loadResourceDirectory } from '../../src/resources/loader'

// The resource model: Istio's documents as written, Ferry's group, one schema per kind,
// every problem of a malformed document reported with file, line and field, and frozen
// typed output. buildSnapshot() throws when any object is refused; what Ferry cannot
// enforce (Istio fields it lacks) is degraded, not refused: test/resources/admission.test.ts
// and test/policy/degraded.test.ts.

const FILE = '/config/policies.yaml'

function load (text: string, rootNamespace?: string): ReturnType<typeof buildSnapshot> {
  return buildSnapshot([{ path: FILE, text }], { origin: '/config', generation: 1, rootNamespace })
}

function issuesOf (text: string): readonly ConfigIssue[] {
  try {
    load(text)
  } catch (err) {
    if (err instanceof ConfigError) return err.issues
    throw err
  }
  throw new Error('expected the configuration to be rejected')
}

const ISTIO_DENY = `# Istio's own example, unchanged
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: deny-dev
  namespace: prod
spec:
  action: DENY
  rules:
  - from:
    - source:
        namespaces: ["dev"]
    to:
    - operation:
        ports: ["5432"]
`

t.test('Istio v1 and v1beta1 documents and Ferry\'s own group are accepted, typed and frozen', async (t) => {
  const text = ISTIO_DENY + `---
apiVersion: security.istio.io/v1beta1
kind: AuthorizationPolicy
metadata:
  name: allow-api
  namespace: prod
  annotations:
    istio.io/dry-run: "true"
spec:
  selector:
    matchLabels:
      app: db
  rules:
  - from:
    - source:
        principals: ["cluster.local/ns/prod/sa/api"]
---
apiVersion: security.ferry.dev/v1alpha1
kind: PeerAuthentication
metadata: { name: default, namespace: prod }
spec:
  mtls: { mode: PERMISSIVE }
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: db, namespace: prod }
spec:
  selector: { matchLabels: { app: db } }
  portLevelMtls:
    5432: { mode: STRICT }
`
  const s = load(text)
  t.same(s.authorizationPolicies.map((p) => p.ref), ['prod/allow-api', 'prod/deny-dev'], 'sorted by namespace/name')
  const [allow, deny] = s.authorizationPolicies
  t.equal(allow.spec.action, 'ALLOW', 'action defaults to ALLOW')
  t.equal(allow.dryRun, true)
  t.equal(deny.dryRun, false)
  t.same(deny.spec.rules?.[0].to?.[0].operation.ports, [5432], 'ports as numbers')
  t.same(deny.origin, { file: FILE, line: 2 })
  t.equal(allow.apiVersion, 'security.istio.io/v1beta1')
  t.same(s.peerAuthentications.map((p) => [p.ref, p.apiVersion, p.spec.mtls?.mode]), [
    ['prod/db', 'security.istio.io/v1', undefined],
    ['prod/default', 'security.ferry.dev/v1alpha1', 'PERMISSIVE']
  ])
  t.same(s.peerAuthentications[0].spec.portLevelMtls, { 5432: { mode: 'STRICT' } })
  t.ok(Object.isFrozen(s) && Object.isFrozen(deny) && Object.isFrozen(deny.spec.rules?.[0].from?.[0].source.namespaces), 'deeply frozen')
  t.throws(() => { (deny.spec as any).action = 'ALLOW' }, TypeError)
  t.same(s.locate(deny, ['spec', 'rules', 0, 'from', 0, 'source', 'namespaces', 0]), { file: FILE, line: 12 })
})

t.test('a `kind: List` is read as its items; comments and empty documents are fine', async (t) => {
  const s = load(`# nothing here\n---\n---\napiVersion: v1\nkind: List\nitems:\n- apiVersion: security.istio.io/v1\n  kind: AuthorizationPolicy\n  metadata: { name: a, namespace: x }\n  spec: {}\n`)
  t.same(s.authorizationPolicies.map((p) => p.ref), ['x/a'])
})

interface Bad { name: string, yaml: string, line: number, path: string, message: RegExp }

// Each malformed document, with the line and field the issue must name. Fields Ferry
// cannot enforce are type-checked like any other (the last rows).
const BAD: Bad[] = [
  { name: 'bad YAML', yaml: 'apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: { name: a, namespace: prod\nspec: {}\n', line: 4, path: '', message: /YAML error/ },
  { name: 'duplicate key', yaml: 'apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: { name: a, namespace: prod }\nspec:\n  action: DENY\n  action: ALLOW\n', line: 6, path: '', message: /YAML error: Map keys must be unique/ },
  { name: 'unknown field', yaml: doc('rules:\n- from:\n  - source:\n      principal: ["x"]'), line: 10, path: 'spec.rules[0].from[0].source.principal', message: /unknown field \(known here: principals, notPrincipals, namespaces/ },
  { name: 'unknown top-level field', yaml: doc('{}') + 'extra: 1\n', line: 8, path: 'extra', message: /unknown field/ },
  { name: 'unknown action', yaml: doc('action: PERMIT'), line: 7, path: 'spec.action', message: /"PERMIT" is not one of "ALLOW", "DENY"/ },
  { name: 'wrong type: namespaces a string', yaml: doc('rules:\n- from:\n  - source:\n      namespaces: dev'), line: 10, path: 'spec.rules[0].from[0].source.namespaces', message: /must be array, not string "dev"/ },
  { name: 'wrong type: port an integer', yaml: doc('rules:\n- to:\n  - operation:\n      ports: [5432]'), line: 10, path: 'spec.rules[0].to[0].operation.ports[0]', message: /must be string, not the integer 5432 \(Istio writes ports as strings/ },
  { name: 'wrong type: rules a map', yaml: doc('rules: { from: [] }'), line: 7, path: 'spec.rules', message: /must be array, not a map/ },
  { name: 'bad CIDR (v4 prefix)', yaml: doc('rules:\n- from:\n  - source:\n      ipBlocks: ["10.0.0.0/8", "10.0.0.0/33"]'), line: 10, path: 'spec.rules[0].from[0].source.ipBlocks[1]', message: /"10.0.0.0\/33" is not an IP address or CIDR block/ },
  { name: 'bad CIDR (v6)', yaml: doc('rules:\n- from:\n  - source:\n      notIpBlocks:\n      - "fd00::/129"'), line: 11, path: 'spec.rules[0].from[0].source.notIpBlocks[0]', message: /"fd00::\/129" is not an IP address or CIDR block/ },
  { name: 'bad address', yaml: doc('rules:\n- from:\n  - source:\n      ipBlocks: ["10.0.0.256"]'), line: 10, path: 'spec.rules[0].from[0].source.ipBlocks[0]', message: /is not an IP address or CIDR block/ },
  { name: 'port out of range', yaml: doc('rules:\n- to:\n  - operation:\n      notPorts: ["70000"]'), line: 10, path: 'spec.rules[0].to[0].operation.notPorts[0]', message: /"70000" is not a port number from 1 to 65535/ },
  { name: 'wildcard in the middle', yaml: doc('rules:\n- from:\n  - source:\n      principals: ["cluster.local/*/sa/web"]'), line: 10, path: 'spec.rules[0].from[0].source.principals[0]', message: /one "\*", at the start or the end/ },
  { name: 'empty source', yaml: doc('rules:\n- from:\n  - source: {}'), line: 9, path: 'spec.rules[0].from[0].source', message: /must set at least one field/ },
  { name: 'empty list', yaml: doc('rules:\n- from:\n  - source:\n      principals: []'), line: 10, path: 'spec.rules[0].from[0].source.principals', message: /must not be an empty list/ },
  { name: 'dry-run annotation not "true"/"false"', yaml: doc('{}').replace('  namespace: prod\n', '  namespace: prod\n  annotations:\n    istio.io/dry-run: "yes"\n'), line: 7, path: 'metadata.annotations.istio.io/dry-run', message: /"yes" is not one of "true", "false"/ },
  { name: 'missing namespace', yaml: 'apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: a\nspec: {}\n', line: 3, path: 'metadata.namespace', message: /is required/ },
  { name: 'bad name', yaml: doc('{}').replace('name: a', 'name: Not_A_Name'), line: 4, path: 'metadata.name', message: /is not a Kubernetes object name/ },
  { name: 'unknown apiVersion', yaml: doc('{}').replace('security.istio.io/v1', 'security.istio.io/v2'), line: 1, path: 'apiVersion', message: /"security.istio.io\/v2" is not one of "security.istio.io\/v1", "security.istio.io\/v1beta1", "security.ferry.dev\/v1alpha1"/ },
  { name: 'unsupported Istio kind', yaml: 'apiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata: { name: a, namespace: prod }\n', line: 2, path: 'kind', message: /"RequestAuthentication" \(security.istio.io\/v1\) is not supported by Ferry/ },
  { name: 'not a Ferry kind', yaml: 'apiVersion: v1\nkind: Pod\nmetadata: { name: a, namespace: prod }\n', line: 2, path: 'kind', message: /"Pod" is not a Ferry configuration kind/ },
  { name: 'PeerAuthentication unknown mode', yaml: pa('mtls: { mode: strict }'), line: 5, path: 'spec.mtls.mode', message: /"strict" is not one of "STRICT", "PERMISSIVE", "UNSET"/ },
  { name: 'portLevelMtls without a selector', yaml: pa('portLevelMtls:\n  8080: { mode: STRICT }'), line: 5, path: 'spec.portLevelMtls', message: /needs selector as well/ },
  { name: 'L7 field of the wrong type', yaml: doc('action: DENY\nrules:\n- to:\n  - operation:\n      methods: "GET"'), line: 11, path: 'spec.rules[0].to[0].operation.methods', message: /must be array, not string "GET"/ },
  { name: 'targetRefs without a name', yaml: doc('targetRefs:\n- kind: Service'), line: 8, path: 'spec.targetRefs[0].name', message: /is required/ },
  { name: 'when without a key', yaml: doc('action: DENY\nrules:\n- when:\n  - values: ["x"]'), line: 10, path: 'spec.rules[0].when[0].key', message: /is required/ },
  { name: 'portLevelMtls bad port', yaml: pa('selector: { matchLabels: { app: db } }\nportLevelMtls:\n  http: { mode: STRICT }'), line: 7, path: 'spec.portLevelMtls.http', message: /"http" is not a port number/ }
]

function doc (spec: string): string {
  return `apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: a\n  namespace: prod\nspec:\n${spec.split('\n').map((l) => `  ${l}`).join('\n')}\n`
}

function pa (spec: string): string {
  return `apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: { name: a, namespace: prod }\nspec:\n${spec.split('\n').map((l) => `  ${l}`).join('\n')}\n`
}

for (const bad of BAD) {
  t.test(`rejected with file, line and field: ${bad.name}`, async (t) => {
    const issues = issuesOf(bad.yaml)
    t.equal(issues.length, 1, `one issue: ${issues.map((i) => i.message).join(' | ')}`)
    const [i] = issues
    t.equal(i.file, FILE)
    t.equal(i.line, bad.line, 'line')
    t.equal((i.path ?? []).map((s) => typeof s === 'number' ? `[${s}]` : `.${s}`).join('').replace(/^\./, ''), bad.path, 'field path')
    t.match(i.message, bad.message)
  })
}

// Found by test/fuzz/config-documents.test.ts. Deep nesting overflowed the YAML
// library's recursion (caught as a YAML error, until the overflow struck inside V8's
// regular-expression compiler and aborted the process), and `? ? ? …` of a kilobyte (maps
// as keys of maps) took minutes to convert: both are refused before conversion.
t.test('documents nested too deeply, or with a map as a key, are refused as YAML errors', async (t) => {
  for (const [name, text] of [['explicit keys', '? '.repeat(2000) + 'x\n'], ['lists', '- '.repeat(20_000) + 'x\n'], ['flow maps', '{a: '.repeat(20_000) + '\n'], ['indented', doc('{}') + 'x:\n' + Array.from({ length: 70 }, (_, i) => `${'  '.repeat(i + 1)}k${i}:\n`).join('')]]) {
    const issues = issuesOf(text)
    t.equal(issues.length, 1, name)
    t.match(issues[0].message, /^YAML error: maps and lists are nested deeper than 64 levels$/, name)
  }
  const issues = issuesOf(doc('{}') + 'extra:\n  ? [a, b]\n  : 1\n')
  t.match(issues, [{ line: 9, message: /^YAML error: a mapping key must be a plain value/ }], 'a list as a key')
  t.match(issuesOf(doc('{}') + 'extra:\n  ? { a: 1 }\n  : 1\n'), [{ message: /a mapping key must be a plain value/ }], 'a map as a key')
  const deepButFine = doc('{}').replace('  namespace: prod\n', '  namespace: prod\n  annotations:\n    a: ' + '['.repeat(60) + ']'.repeat(60) + '\n')
  t.match(issuesOf(deepButFine), [{ path: ['metadata', 'annotations', 'a'] }], '60 levels are read (and refused by the schema, not the parser)')
})

t.test('every issue of every refused document is reported at once, sorted, in one FERRY_ERR_CONFIG message', async (t) => {
  const text = doc('action: PERMIT') + '---\n' + doc('rules:\n- from:\n  - source:\n      ipBlocks: ["nope"]\n      notIpBlocks: ["10.0.0.0/99"]\n      requestPrincipals: ["*"]').replace('name: a', 'name: b')
  const err = t.throws(() => load(text)) as ConfigError
  t.equal(err.code, 'FERRY_ERR_CONFIG')
  t.equal(err.issues.length, 3, 'the malformed fields; not requestPrincipals (well-formed, degraded when the rest is)')
  t.match(err.message, /^3 problems in the configuration:\n/)
  t.match(err.message, `${FILE}:7: AuthorizationPolicy prod/a: spec.action: "PERMIT" is not one of "ALLOW", "DENY"`)
  t.match(err.message, `${FILE}:18: AuthorizationPolicy prod/b: spec.rules[0].from[0].source.ipBlocks[0]: "nope" is not an IP address`)
  t.match(err.message, `${FILE}:19: AuthorizationPolicy prod/b: spec.rules[0].from[0].source.notIpBlocks[0]: "10.0.0.0/99" is not an IP address`)
})

t.test('cross-document rules: unique names, one namespace-wide PeerAuthentication, none with a selector in the root namespace', async (t) => {
  const twice = t.throws(() => buildSnapshot([{ path: '/c/a.yaml', text: doc('{}') }, { path: '/c/b.yaml', text: doc('action: DENY') }], { origin: '/c', generation: 1 })) as ConfigError
  t.match(twice.message, '/c/b.yaml:4: AuthorizationPolicy prod/a: metadata.name: defined twice (also at /c/a.yaml:1)')
  const ns = issuesOf(pa('mtls: { mode: STRICT }') + '---\n' + pa('mtls: { mode: PERMISSIVE }').replace('name: a', 'name: b'))
  t.match(ns[0].message, /a second namespace-wide PeerAuthentication in prod \(the one in force is PeerAuthentication prod\/a at .*:1\); Istio would use the oldest, Ferry keeps the one already in force/)
  const mesh = issuesOf(pa('mtls: { mode: STRICT }').replace('namespace: prod', 'namespace: ferry-system') + '---\n' + pa('{}').replace('namespace: prod', 'namespace: ferry-system').replace('name: a', 'name: b'))
  t.match(mesh[0].message, /a second mesh-wide PeerAuthentication/)
  const rooted = load(pa('selector: { matchLabels: { app: db } }\nmtls: { mode: STRICT }').replace('namespace: prod', 'namespace: ferry-system'))
  t.match(rooted.objects[0], { state: 'degraded', issues: [{ line: 5, message: /in the root namespace \(ferry-system\) applies to nothing/ }] }, 'ignored, as Istio does')
  t.equal(rooted.peerAuthentications.length, 0)
  t.equal(load(pa('selector: { matchLabels: { app: db } }').replace('namespace: prod', 'namespace: ferry-system'), 'istio-system').peerAuthentications.length, 1, 'only the root namespace is special')
})

t.test('a directory: *.yaml, *.yml and *.json, hidden files skipped, symlinks followed; a single file works too', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-res-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  writeFileSync(join(dir, 'a.yaml'), doc('{}'))
  writeFileSync(join(dir, 'b.yml'), doc('{}').replace('name: a', 'name: b'))
  writeFileSync(join(dir, 'c.json'), JSON.stringify({ apiVersion: 'security.ferry.dev/v1alpha1', kind: 'PeerAuthentication', metadata: { name: 'c', namespace: 'prod' }, spec: { mtls: { mode: 'STRICT' } } }))
  writeFileSync(join(dir, '.hidden.yaml'), 'not: [valid')
  writeFileSync(join(dir, 'README.md'), '# notes')
  mkdirSync(join(dir, 'sub'))
  writeFileSync(join(dir, 'sub', 'x.yaml'), 'not: [valid')
  mkdirSync(join(dir, '..data'))
  writeFileSync(join(dir, '..data', 'd.yaml'), doc('{}').replace('name: a', 'name: d'))
  symlinkSync(join(dir, '..data', 'd.yaml'), join(dir, 'd.yaml'))
  const s = await loadResourceDirectory(dir)
  t.same(s.authorizationPolicies.map((p) => p.ref), ['prod/a', 'prod/b', 'prod/d'])
  t.same(s.peerAuthentications.map((p) => p.ref), ['prod/c'])
  t.same(s.files, ['a.yaml', 'b.yml', 'c.json', 'd.yaml'].map((f) => join(dir, f)))
  const one = await loadResourceDirectory(join(dir, 'b.yml'))
  t.same(one.authorizationPolicies.map((p) => p.ref), ['prod/b'])
  await t.rejects(loadResourceDirectory(join(dir, 'missing')), { code: 'FERRY_ERR_CONFIG', message: /missing: cannot read \(ENOENT\)/ })
})
