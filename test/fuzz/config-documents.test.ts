import fc from 'fast-check'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { parseAllDocuments, stringify } from 'yaml'
import { rateLimitSelector } from '../../src/limits/rate-limit-select'
import { compilePolicySet } from '../../src/policy'
import { admitDocuments } from '../../src/resources/admission'
import { RESOURCE_KINDS } from '../../src/resources/documents'
import { buildSnapshot } from '../../src/resources/loader'
import type { ConfigSnapshot, SourceDocument } from '../../src/resources/snapshot'
import { RoutingTable } from '../../src/routing/routing-table'
import { anyJson, anyText, fuzzParams, mutate, type Mutation, mutations, outcome, pathological, total } from '../helpers/fuzz'
import { cluster, pod, service } from '../routing/fixture'

// Configuration documents, YAML → validated, frozen resources (src/resources/), as every
// configuration source admits them (the agent's --config-dir and stream, the
// controller's feeds, `ferry lab apply`, `ferry policy check`), and then compiled the way
// the agent compiles them (authorization policies, routes, rate limits).
//
// Generators: the repository's own valid documents (test fixtures and examples) mutated
// field by field — a value replaced by any JSON or by a near-valid value of another
// field, a field removed, an unknown one added — then written as YAML or JSON; the same
// documents' text mutated byte by byte; and arbitrary text.
//
// Properties: admission never throws and refuses a bad object with issues that name it;
// buildSnapshot throws only FERRY_ERR_CONFIG; what was admitted compiles without an
// exception; an unmutated document is accepted, and the document text a snapshot keeps
// is admitted again into the same resources.

const ROOT = join(__dirname, '..', '..')
const CORPUS_DIRS = ['test/fixtures/policies', 'test/fixtures/traffic', 'test/fixtures/traffic/promoted', 'examples/policies',
  ...readdirSync(join(ROOT, 'examples/bookinfo'), { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => `examples/bookinfo/${d.name}`)]

interface CorpusDoc { readonly file: string, readonly value: Record<string, any> }

function loadCorpus (): CorpusDoc[] {
  const out: CorpusDoc[] = []
  for (const dir of CORPUS_DIRS) {
    for (const name of readdirSync(join(ROOT, dir))) {
      if (!name.endsWith('.yaml') || name.startsWith('bad-')) continue
      const file = `${dir}/${name}`
      for (const doc of parseAllDocuments(readFileSync(join(ROOT, file), 'utf8'))) {
        const v = doc.toJS() as Record<string, any> | null
        const items = v?.kind === 'List' ? v.items : [v]
        for (const item of items ?? []) if ((RESOURCE_KINDS as readonly string[]).includes(item?.kind)) out.push({ file, value: item })
      }
    }
  }
  return out
}

const CORPUS = loadCorpus()

/** Every value a field of a real document holds, to be dropped into another field. */
function fieldValues (v: unknown, out: Set<string>): void {
  if (typeof v === 'string') out.add(v)
  else if (Array.isArray(v)) for (const x of v) fieldValues(x, out)
  else if (v !== null && typeof v === 'object') for (const x of Object.values(v)) fieldValues(x, out)
}
const SEEN = new Set<string>(['*', '', '/', 'GET', '/admin*', '*.svc', '10.0.0.0/8', 'fd00::/8', '10.0.0.1/33', 'cluster.local/ns/a/sa/b', 'ALLOW', 'DENY', 'AUDIT', 'CUSTOM', 'STRICT', 'PERMISSIVE', 'DISABLE', '1.5s', '-1s', '0s', '99999h', '5xx', 'ns/*', 'a.b.c', 'Exact', 'PathPrefix', 'RegularExpression', '(a+)+$', '[', '8080', '65536'])
for (const d of CORPUS) fieldValues(d.value, SEEN)
const nearValue = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...SEEN) },
  { weight: 2, arbitrary: fc.constantFrom(0, -1, 1, 100, 101, 65535, 65536, 2 ** 31, 2 ** 53, 0.5, -0.0, true, false, null, [], {}, [null], { '': 1 }) },
  { weight: 2, arbitrary: anyJson(2) },
  { weight: 1, arbitrary: fc.constantFrom(...SEEN).map((s) => [s]) }
)

const mutation = (opts?: { minLength?: number, maxLength?: number }): fc.Arbitrary<Mutation[]> => mutations(['action', 'rules', 'from', 'to', 'when', 'selector', 'matchLabels', 'source', 'operation', 'paths', 'methods', 'ports', 'hosts', 'notPaths', 'ipBlocks', 'mtls', 'mode', 'portLevelMtls', 'http', 'route', 'match', 'retries', 'timeout', 'fault', 'trafficPolicy', 'subsets', 'backendRefs', 'parentRefs', 'filters', 'limit'], nearValue, opts)

function serialize (values: readonly unknown[], form: 'yaml' | 'json' | 'list'): string {
  if (form === 'json') return values.map((v) => JSON.stringify(v) ?? 'null').join('\n---\n')
  if (form === 'list') return stringify({ apiVersion: 'v1', kind: 'List', items: values })
  return values.map((v) => stringify(v)).join('---\n')
}

const mutatedFile = fc.tuple(
  fc.array(fc.tuple(fc.constantFrom(...CORPUS), mutation()), { minLength: 1, maxLength: 3 }),
  fc.constantFrom('yaml', 'json', 'list') as fc.Arbitrary<'yaml' | 'json' | 'list'>
).map(([docs, form]) => serialize(docs.map(([d, ms]) => mutate(d.value, ms)), form))

/** A real document's text with a few characters inserted, removed or replaced. */
const splicedText = fc.tuple(fc.constantFrom(...CORPUS), fc.array(fc.tuple(fc.nat(), fc.nat({ max: 4 }), fc.oneof(fc.constantFrom('', ':', '-', ' ', '\n', '\t', '"', "'", '{', '[', '&a', '*a', '!!', '? ', '<<: *a', '%YAML 1.1\n', '---\n', '...\n', '#'), anyText(3))), { minLength: 1, maxLength: 4 }))
  .map(([d, edits]) => {
    let text = stringify(d.value)
    for (const [at, del, ins] of edits) { const i = at % (text.length + 1); text = text.slice(0, i) + ins + text.slice(i + del) }
    return text
  })

const yamlBombs = fc.constantFrom(
  'a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n',
  'a: &a\n  b: *a\n',
  '!!binary ' + 'A'.repeat(1000),
  '{'.repeat(5000),
  '- '.repeat(3000) + 'x'
)

const anyConfigText = fc.oneof(
  { weight: 6, arbitrary: mutatedFile },
  { weight: 2, arbitrary: splicedText },
  { weight: 1, arbitrary: anyText(200) },
  { weight: 1, arbitrary: yamlBombs },
  { weight: 1, arbitrary: pathological(['a: ', '- ', '[', '{a: ', '"\\', '&a ', '? ', '  ']) }
)

// A cluster with a Service (several ports) and a pod for every name the corpus mentions, in every namespace it uses.
const NAMES = new Set<string>(); const NAMESPACES = new Set<string>(['default'])
for (const d of CORPUS) { NAMESPACES.add(d.value.metadata?.namespace); fieldValues(d.value, NAMES) }
const DNS = /^[a-z]([-a-z0-9]*[a-z0-9])?$/
const CLUSTER = cluster(
  [...NAMESPACES].filter((ns) => DNS.test(ns)).flatMap((ns) => [...NAMES].filter((n) => DNS.test(n) && n.length < 40).slice(0, 60).map((n) => service(ns, n, [80, 9080, 8080, 50051]))),
  [...NAMESPACES].filter((ns) => DNS.test(ns)).flatMap((ns) => [pod(ns, `p-${ns}`, { app: 'reviews', version: 'v1' })])
)

let generation = 0
function admitted (texts: readonly string[]): ConfigSnapshot {
  const files: SourceDocument[] = texts.map((text, i) => ({ path: `/fuzz/f${i}.yaml`, text }))
  return total(() => admitDocuments(files, { origin: '/fuzz', generation: ++generation }))
}

function checkReports (s: ConfigSnapshot): void {
  if (!Object.isFrozen(s)) throw new Error('snapshot not frozen')
  for (const o of s.objects) {
    if (o.state === 'refused' && o.issues.length === 0) throw new Error(`${o.object} refused without an issue`)
    for (const i of o.issues) if (typeof i.message !== 'string' || i.message.trim() === '' || /undefined|\[object Object\]/.test(i.message.replace(/"[^"]*"/g, ''))) throw new Error(`${o.object}: unclear issue ${JSON.stringify(i)}`)
  }
}

/** What the agent does with a snapshot: none of it may throw on what admission let through. */
function compileAll (s: ConfigSnapshot): void {
  total(() => compilePolicySet(s))
  total(() => RoutingTable.build(CLUSTER, s))
  const services = new Map(CLUSTER.services.map((x) => [`${x.namespace}/${x.name}`, x]))
  const of = total(() => rateLimitSelector(s.rateLimits as any, (ns, name) => services.get(`${ns}/${name}`)))
  for (const p of CLUSTER.pods) total(() => of(p))
}

t.test('the corpus is there, and every document of it is admitted as written or degraded', async (t) => {
  t.ok(CORPUS.length >= 20, `${CORPUS.length} documents`)
  for (const d of CORPUS) {
    // One at a time: the examples define some names more than once (a canary, then its shift).
    const s = admitted([stringify(d.value)])
    t.same(s.objects.map((o) => o.state === 'refused' ? `${o.object}: ${o.issues[0]?.message}` : o.state).filter((x) => x.includes(':')), [], `${d.file}: ${d.value.kind} ${d.value.metadata.name}`)
    checkReports(s)
    compileAll(s)
  }
})

t.test('admission: any text gives a frozen snapshot whose refusals name the problem; what is admitted compiles', async (t) => {
  fc.assert(fc.property(fc.array(anyConfigText, { minLength: 1, maxLength: 3 }), (texts) => {
    const s = admitted(texts)
    checkReports(s)
    compileAll(s)
  }), fuzzParams(30))
  t.pass()
})

t.test('buildSnapshot: any text is a snapshot or FERRY_ERR_CONFIG listing the issues', async (t) => {
  fc.assert(fc.property(anyConfigText, (text) => {
    const o = outcome(['FERRY_ERR_CONFIG'], () => buildSnapshot([{ path: '/fuzz/a.yaml', text }], { origin: '/fuzz', generation: 1 }))
    if (!o.ok && !o.error.message.includes('/fuzz/a.yaml')) throw new Error(`the error does not name the file: ${o.error.message}`)
  }), fuzzParams(20))
  t.pass()
})

t.test('round trip: the documents a snapshot keeps are admitted again into the same resources', async (t) => {
  const resources = (s: ConfigSnapshot): string => JSON.stringify([s.authorizationPolicies, s.peerAuthentications, s.httpRoutes, s.grpcRoutes, s.virtualServices, s.destinationRules, s.rateLimits])
  fc.assert(fc.property(fc.array(fc.tuple(fc.constantFrom(...CORPUS), mutation({ minLength: 0, maxLength: 2 })), { minLength: 1, maxLength: 4 }), (docs) => {
    const s = admitted(docs.map(([d, ms]) => stringify(mutate(d.value, ms))))
    const again = total(() => admitDocuments(s.documents, { origin: '/fuzz', generation: ++generation }))
    if (resources(again) !== resources(s)) throw new Error('re-admitting the kept documents changed the resources')
  }), fuzzParams(25))
  t.pass()
})
