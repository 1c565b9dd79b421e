import t from 'tap'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { labDown } from '../../src/lab/down'
import { defaultPaths } from '../../src/lab/labs'
import { labUp } from '../../src/lab/up'
import { everythingLeft, forceDown, manifestFile, ROOT_ONLY } from './helpers'
import { uniqueLabName } from '../helpers/names'

// A failing `up` leaves nothing behind but the logs of what failed — whether the
// manifests are wrong (nothing is made at all), a container exits at once, or a port
// never opens before the deadline.

const NODE = 'apiVersion: v1\nkind: Node\nmetadata: {name: node1}\n---\n'
const pod = (name: string, container: string): string =>
  `apiVersion: v1\nkind: Pod\nmetadata: {name: ${name}}\nspec:\n  nodeName: node1\n  containers:\n  - name: main\n${container}---\n`
const SLEEPER = pod('sleeper', '    command: [sleep, infinity]\n')

t.test('a container that exits at once: up fails fast, rolls back, keeps the logs', ROOT_ONLY, async (t) => {
  const name = uniqueLabName('lrbx')
  t.teardown(async () => { await forceDown(name) })
  const file = manifestFile(NODE + SLEEPER + pod('crash', '    command: [sh, -c, "echo about to fail >&2; exit 3"]\n'))
  const failed = join(defaultPaths().labStateDir, `${name}.failed`)
  const started = Date.now()
  await t.rejects(labUp({ name, files: [file], mesh: false, timeoutMs: 30_000 }), {
    code: 'FERRY_ERR_LAB',
    message: new RegExp(`container main of pod default/crash exited with code 3 before the lab was ready \\(log: ${failed}/logs/default_crash_main\\.log\\)\\n\\s+\\| about to fail`)
  })
  t.ok(Date.now() - started < 15_000, 'fails without waiting for the deadline')
  t.same(everythingLeft(name), [], 'nothing of the lab is left')
  t.equal(readFileSync(join(failed, 'logs', 'default_crash_main.log'), 'utf8'), 'about to fail\n', 'its log is kept')
  t.match(JSON.parse(readFileSync(join(failed, 'state.json'), 'utf8')), { phase: 'failed', error: /exited with code 3/ })
  const report = await labDown(name)
  t.ok(report.found, '`down` removes the kept logs')
  t.notOk(existsSync(failed))
})

t.test('a port that never listens: FERRY_ERR_LAB_TIMEOUT names the pod and its log; rolled back', ROOT_ONLY, async (t) => {
  const name = uniqueLabName('lrbt')
  t.teardown(async () => { await forceDown(name) })
  const file = manifestFile(NODE + pod('deaf', '    command: [sleep, infinity]\n    ports: [{containerPort: 9999}]\n'))
  await t.rejects(labUp({ name, files: [file], mesh: false, timeoutMs: 2000 }), {
    code: 'FERRY_ERR_LAB_TIMEOUT',
    message: /pod default\/deaf: port 9999 does not accept connections on 10\.244\.1\.2 \(log: \S+\.failed\/logs\/default_deaf_main\.log\)/
  })
  t.same(everythingLeft(name), [])
  await labDown(name)
})

t.test('invalid manifests or a missing command: nothing is made at all', ROOT_ONLY, async (t) => {
  const name = uniqueLabName('lrbv')
  t.teardown(async () => { await forceDown(name) })
  const bad = manifestFile(NODE + pod('p', '    command: [sleep, "1"]\n    bogus: true\n'))
  await t.rejects(labUp({ name, files: [bad], mesh: false, timeoutMs: 5000 }), { code: 'FERRY_ERR_MANIFEST', message: /spec\.containers\[0\]\.bogus: unknown field/ })
  const missing = manifestFile(NODE + pod('p', '    command: [no-such-command-here]\n'))
  await t.rejects(labUp({ name, files: [missing], mesh: false, timeoutMs: 5000 }), {
    code: 'FERRY_ERR_MANIFEST',
    message: /lab\.yaml:\d+: Pod default\/p: spec\.containers\[0\]\.command\[0\]: "no-such-command-here" is not an executable on this host/
  })
  t.same(everythingLeft(name), [])
  t.notOk(readdirSync(defaultPaths().labStateDir).some((e) => e.startsWith(name)), 'not even a state dir')
})
