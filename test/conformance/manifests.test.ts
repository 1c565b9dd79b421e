import t from 'tap'
import { readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { parseAllDocuments } from 'yaml'
import { readManifests } from '../../src/lab/manifest'
import { REPO } from '../helpers/cli'
import { GRPC_TESTS } from './cases-grpc'
import { HTTP_TESTS } from './cases-http'
import { CLIENTS, ROUTES_DIR } from './harness'

// The conformance lab and the bookinfo example, checked without bringing a lab up: the
// lab takes their manifests; the suite's setup is there as the cases expect it; every
// route file a case names exists and every route file is used.

t.test('the conformance lab: the suite\'s namespaces, workloads on both nodes, Services and clients', async (t) => {
  const spec = readManifests([join(REPO, 'test/conformance/mesh-lab.yaml')])
  const mesh = spec.pods.filter((p) => p.namespace === 'gateway-conformance-mesh')
  for (const v of ['v1', 'v2']) {
    const pods = mesh.filter((p) => p.labels.app === 'echo' && p.labels.version === v)
    t.same(new Set(pods.map((p) => p.nodeName)), new Set(['node1', 'node2']), `echo-${v}: a pod on each node`)
    t.ok(pods.every((p) => p.name.startsWith(`echo-${v}-`) && p.name.split('-').length === 4), `echo-${v}: pods named {deployment}-{hash}-{suffix}`)
  }
  t.same(spec.services.map((s) => s.name).sort(), ['echo', 'echo-v1', 'echo-v2'])
  for (const c of Object.values(CLIENTS)) t.ok(spec.pods.some((p) => p.namespace === c.namespace && p.name === c.name), `client ${c.namespace}/${c.name} is in the lab`)
  t.ok(spec.namespaces.filter((n) => n.declared).every((n) => n.labels['ferry.dev/mesh'] === 'enabled'), 'both namespaces in the mesh')
})

t.test('every route file a test names exists, and every route file is some test\'s', async (t) => {
  const files = new Set(readdirSync(ROUTES_DIR))
  const named = new Set([...HTTP_TESTS, ...GRPC_TESTS].flatMap((x) => x.manifests))
  for (const f of named) t.ok(files.has(f), `${f} exists`)
  for (const f of files) t.ok(named.has(f), `${f} is applied by a test`)
  for (const f of files) {
    const docs = parseAllDocuments(readFileSync(join(ROUTES_DIR, f), 'utf8'))
    const kinds = (Array.isArray(docs) ? docs : [docs]).map((d) => d.toJS()?.kind)
    t.ok(kinds.length > 0 && kinds.every((k) => k === 'HTTPRoute' || k === 'GRPCRoute'), `${f}: routes only (${kinds.join(', ')})`)
  }
})

t.test('examples/bookinfo: the lab takes it; several versions of reviews across both nodes', async (t) => {
  const spec = readManifests([join(REPO, 'examples/bookinfo/bookinfo.yaml')])
  const reviews = spec.pods.filter((p) => p.labels.app === 'reviews')
  t.same(reviews.map((p) => p.labels.version).sort(), ['v1', 'v2', 'v3'])
  t.same(new Set(reviews.map((p) => p.nodeName)), new Set(['node1', 'node2']))
  t.same(spec.services.map((s) => s.name).sort(), ['details', 'productpage', 'ratings', 'reviews', 'reviews-v1', 'reviews-v2', 'reviews-v3'])
})
