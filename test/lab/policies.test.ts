import t from 'tap'
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { labApply, labConfigDir, labDelete } from '../../src/lab/policies'

// `ferry lab apply` / `delete` on the lab's config directory: the given files are judged
// object by object with src/resources; nothing of a bad given file is written (nor of
// the others given with it); a bad document already in the directory never refuses a
// good given file; files land whole (tmp + rename) under their base name.

const GOOD = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: deny-dev, namespace: prod }
spec:
  action: DENY
  rules:
    - from:
        - source:
            namespaces: ["dev"]
`

t.test('apply writes valid files, rejects invalid ones naming file, line and field, delete removes', async (t) => {
  const plan = { stateDir: t.testdir({ 'good.yaml': GOOD, 'bad.yaml': GOOD.replace('["dev"]', '"dev"'), 'dup.yaml': GOOD, 'notes.txt': 'x' }) }
  const src = (n: string): string => join(plan.stateDir, n)
  const dir = labConfigDir(plan)
  const r = await labApply(plan, [src('good.yaml')])
  t.same(r.written, [join(dir, 'good.yaml')])
  t.equal(readFileSync(join(dir, 'good.yaml'), 'utf8'), GOOD)
  t.same(readdirSync(dir), ['good.yaml'], 'no temporary file left')

  await t.rejects(labApply(plan, [src('bad.yaml')]), { code: 'FERRY_ERR_CONFIG', message: /bad\.yaml:9: AuthorizationPolicy prod\/deny-dev: spec\.rules\[0\]\.from\[0\]\.source\.namespaces: must be array/ })
  await t.rejects(labApply(plan, [src('dup.yaml')]), { code: 'FERRY_ERR_CONFIG', message: /dup\.yaml:\d+: AuthorizationPolicy prod\/deny-dev: metadata\.name: already defined in .*good\.yaml:1/ }, 'a name used twice across the directory')
  await t.rejects(labApply(plan, [src('notes.txt')]), { code: 'FERRY_ERR_INVALID_ARG' })
  t.same(readdirSync(dir), ['good.yaml'], 'nothing written by a rejected apply')

  writeFileSync(src('good.yaml'), GOOD.replace('deny-dev', 'deny-dev2'))
  await labApply(plan, [src('good.yaml')])
  t.match(readFileSync(join(dir, 'good.yaml'), 'utf8'), /deny-dev2/, 'replaced by name')

  await t.rejects(labDelete(plan, ['nope.yaml']), { code: 'FERRY_ERR_INVALID_ARG', message: /not applied in this lab: nope\.yaml/ })
  t.same((await labDelete(plan, ['good.yaml'])).removed, [join(dir, 'good.yaml')])
  t.notOk(existsSync(join(dir, 'good.yaml')))
})

// Guards the per-object rule for `ferry lab apply`: before, a bad document already in the
// directory (written there directly) made every apply fail.
t.test('a good file applies while another file in the directory is bad; a bad given file is refused, nothing of it written', async (t) => {
  const other = GOOD.replace('deny-dev', 'deny-stage').replace('"dev"', '"stage"')
  const l7 = 'apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: { name: allow-get, namespace: prod }\nspec:\n  rules:\n    - from:\n        - source:\n            requestPrincipals: ["issuer/*"]\n'
  const plan = { stateDir: t.testdir({ 'good.yaml': GOOD, 'other.yaml': other, 'bad.yaml': GOOD.replace('deny-dev', 'deny-qa').replace('namespaces:', 'namespace:'), 'l7.yaml': l7 }) }
  const src = (n: string): string => join(plan.stateDir, n)
  const dir = labConfigDir(plan)
  mkdirSync(dir, { recursive: true })
  writeFileSync(join(dir, 'broken.yaml'), 'apiVersion: security.istio.io/v1\nkind: [\n')
  writeFileSync(join(dir, 'also-broken.yaml'), GOOD.replace('deny-dev', 'deny-x').replace('DENY', 'PERMIT'))

  const r = await labApply(plan, [src('good.yaml')])
  t.same(r.written, [join(dir, 'good.yaml')], 'applied despite the bad files already there')
  t.same(r.degraded, [])

  const refused = await labApply(plan, [src('other.yaml'), src('bad.yaml')]).then(() => null, (err: unknown) => err as Error)
  t.match(refused, { code: 'FERRY_ERR_CONFIG', message: /bad\.yaml:9: AuthorizationPolicy prod\/deny-qa: spec\.rules\[0\]\.from\[0\]\.source\.namespace: unknown field/ })
  t.notOk(existsSync(join(dir, 'bad.yaml')), 'nothing of the bad file written')
  t.notOk(existsSync(join(dir, 'other.yaml')), 'nor of the good file given with it')

  const degraded = await labApply(plan, [src('l7.yaml')])
  t.same(degraded.written, [join(dir, 'l7.yaml')], 'a degraded object is applied')
  t.match(degraded.degraded, [/l7\.yaml:8: AuthorizationPolicy prod\/allow-get: spec\.rules\[0\]\.from\[0\]\.source\.requestPrincipals: not supported by Ferry.*; rule 0 of this ALLOW policy never matches/], 'with what Ferry leaves out')
  t.same(readdirSync(dir).sort(), ['also-broken.yaml', 'broken.yaml', 'good.yaml', 'l7.yaml'], 'no temporary file left')
})

// Routes go through `ferry lab apply` the same way: judged before anything is written.
t.test('a route is applied like a policy; one using a field Ferry does not carry out is refused by name, nothing written', async (t) => {
  const route = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: reviews, namespace: prod }
spec:
  parentRefs:
  - { kind: Service, name: reviews }
  rules:
  - backendRefs:
    - { name: reviews-v1, port: 9080, weight: 90 }
    - { name: reviews-v2, port: 9080, weight: 10 }
`
  const sticky = route.replace('  - backendRefs:', '  - sessionPersistence: { sessionName: s }\n    backendRefs:')
  const plan = { stateDir: t.testdir({ 'route.yaml': route, 'sticky.yaml': sticky.replace('name: reviews,', 'name: sticky,') }) }
  const src = (n: string): string => join(plan.stateDir, n)
  const dir = labConfigDir(plan)
  t.same((await labApply(plan, [src('route.yaml')])).written, [join(dir, 'route.yaml')])
  await t.rejects(labApply(plan, [src('sticky.yaml')]), { code: 'FERRY_ERR_CONFIG', message: /sticky\.yaml:8: HTTPRoute prod\/sticky: spec\.rules\[0\]\.sessionPersistence: not supported by Ferry: session persistence/ })
  t.same(readdirSync(dir), ['route.yaml'])
})
