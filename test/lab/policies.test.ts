import t from 'tap'
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { labApply, labConfigDir, labDelete } from '../../src/lab/policies'

// `ferry lab apply` / `delete` on the lab's config directory: the directory as it would
// become is validated with src/resources; nothing is written when anything is wrong;
// files land whole (tmp + rename) under their base name.

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
  await t.rejects(labApply(plan, [src('dup.yaml')]), { code: 'FERRY_ERR_CONFIG', message: /prod\/deny-dev/ }, 'a name used twice across the directory')
  await t.rejects(labApply(plan, [src('notes.txt')]), { code: 'FERRY_ERR_INVALID_ARG' })
  t.same(readdirSync(dir), ['good.yaml'], 'nothing written by a rejected apply')

  writeFileSync(src('good.yaml'), GOOD.replace('deny-dev', 'deny-dev2'))
  await labApply(plan, [src('good.yaml')])
  t.match(readFileSync(join(dir, 'good.yaml'), 'utf8'), /deny-dev2/, 'replaced by name')

  await t.rejects(labDelete(plan, ['nope.yaml']), { code: 'FERRY_ERR_INVALID_ARG', message: /not applied in this lab: nope\.yaml/ })
  t.same((await labDelete(plan, ['good.yaml'])).removed, [join(dir, 'good.yaml')])
  t.notOk(existsSync(join(dir, 'good.yaml')))
})
