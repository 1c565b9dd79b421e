import t from 'tap'
import { splitFiles, splitText } from '../../src/lab/apply-files'

// `ferry lab apply` / `delete` sort a file's documents by kind: the lab's objects (Pod,
// Service, Namespace, Node) to the manifest stage, the rest to the config directory —
// each part keeping its lines where they are in the file, so problems are reported at
// the file's own lines.

const POD = 'apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  nodeName: n1\n  containers: [{name: c, command: [x]}]\n'
const POLICY = 'apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: a, namespace: n}\nspec: {}\n'

t.test('a mixed file: two parts, same lines, separators kept', async (t) => {
  const text = `# header\n${POLICY}---\n${POD}---\n${POLICY.replace('name: a', 'name: b')}`
  const { lab, config } = splitText(text)
  t.equal(lab?.split('\n').length, text.split('\n').length)
  t.equal(config?.split('\n').length, text.split('\n').length)
  t.notMatch(lab, /AuthorizationPolicy/)
  t.match(lab, /^kind: Pod$/m)
  t.equal(lab?.split('\n').indexOf('kind: Pod'), text.split('\n').indexOf('kind: Pod'), 'at its line in the file')
  t.notMatch(config, /kind: Pod/)
  t.equal(config?.match(/kind: AuthorizationPolicy/g)?.length, 2)
  t.equal(config?.split('\n').filter((l) => l === '---').length, 2)
})

t.test('one kind only; a List of the lab\'s objects; the files as split for apply', async (t) => {
  t.same(splitText(POLICY), { lab: null, config: POLICY }, 'policies only: the file as it is')
  t.same(splitText(POD), { lab: POD, config: null })
  const list = `apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Namespace\n  metadata: {name: x}\n`
  t.equal(splitText(list).lab, list)
  const files: Record<string, string> = { '/d/mixed.yaml': `${POD}---\n${POLICY}`, '/d/policy.yaml': POLICY }
  const split = splitFiles(Object.keys(files), (p) => files[p])
  t.same(split.labFiles, ['/d/mixed.yaml'])
  t.same(split.config.map((f) => f.path), ['/d/mixed.yaml', '/d/policy.yaml'])
  t.equal(split.lab.objects.length, 1)
  t.equal(split.lab.objects[0].lineOf(['spec', 'nodeName']), 5)
  t.throws(() => splitFiles(['/nope'], () => { throw new Error('ENOENT') }), { code: 'FERRY_ERR_INVALID_ARG', message: /\/nope: cannot read: ENOENT/ })
  t.throws(() => splitFiles([]), { code: 'FERRY_ERR_INVALID_ARG' })
})
