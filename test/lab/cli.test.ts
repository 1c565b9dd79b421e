import t from 'tap'
import { LAB_USAGE, labCommand, parseCniPlugin } from '../../src/cli/lab-command'

// `ferry lab` argument handling that needs no lab.

// Guards that `ferry lab` reads durations with the one grammar (src/identity/duration.ts,
// tested there) and that a --timeout of no time is refused.
t.test('durations', async (t) => {
  await t.rejects(labCommand(['up', '--timeout', 'soon', 'x.yaml']), { code: 'FERRY_ERR_INVALID_ARG', message: /--timeout "soon" is invalid: expected a duration/ })
  await t.rejects(labCommand(['up', '--timeout', '0', 'x.yaml']), { code: 'FERRY_ERR_INVALID_ARG', message: /--timeout "0" is invalid: expected a duration of at least 1ms/ })
})

t.test('usage and unknown commands', async (t) => {
  t.match(LAB_USAGE, /up \[--name NAME\] \[--no-mesh\] \[--timeout SECONDS\] FILE…/)
  t.match(LAB_USAGE, /exec \[-n NS\] \[-c CONTAINER\] POD -- CMD…/)
  // Goes to stderr (stdout carries this test's TAP).
  t.equal(await labCommand(['frobnicate']), 2)
})

t.test('bad arguments are FerryErrors or parse errors, never crashes', async (t) => {
  await t.rejects(labCommand(['up', '--name', 'Bad_Name', 'x.yaml']), { code: 'FERRY_ERR_INVALID_ARG' })
  await t.rejects(labCommand(['up', '--bogus']), { code: 'ERR_PARSE_ARGS_UNKNOWN_OPTION' })
  await t.rejects(labCommand(['status', '--lab', 'UPPER']), { code: 'FERRY_ERR_INVALID_ARG' })
})

t.test('certificate lifetime and controller restarts: checked before any lab is touched', async (t) => {
  await t.rejects(labCommand(['up', '--cert-ttl', '500ms', 'x.yaml']), { code: 'FERRY_ERR_INVALID_ARG', message: /--cert-ttl "500ms" is invalid: expected a duration from 1s to 365d/ })
  t.match(LAB_USAGE, /restart --controller \[--signal KILL\|TERM\] \[--down-for 0s\]/)
  await t.rejects(labCommand(['up', '--no-mesh', '--cert-ttl', '6s', 'x.yaml']), { code: 'FERRY_ERR_INVALID_ARG', message: /--cert-ttl needs the mesh/ })
  await t.rejects(labCommand(['up', '--cert-ttl', 'forever', 'x.yaml']), { code: 'FERRY_ERR_INVALID_ARG', message: /--cert-ttl "forever" is invalid/ })
  if (process.getuid?.() !== 0) return // restart checks for root first
  await t.rejects(labCommand(['restart', '--node', 'n1', '--controller']), { code: 'FERRY_ERR_INVALID_ARG', message: /one of --node NODE, --kubelet NODE, --controller or --api-server/ })
  await t.rejects(labCommand(['restart', '--controller', '--api-server']), { code: 'FERRY_ERR_INVALID_ARG', message: /one of --node NODE, --kubelet NODE, --controller or --api-server/ })
  await t.rejects(labCommand(['restart']), { code: 'FERRY_ERR_INVALID_ARG', message: /one of --node NODE, --kubelet NODE, --controller or --api-server/ })
  await t.rejects(labCommand(['restart', '--node', 'n1', '--signal', 'TERM', '--down-for', '2s']), { code: 'FERRY_ERR_INVALID_ARG', message: /--signal TERM is a rollout .* it has no --down-for/ })
  await t.rejects(labCommand(['up', '--kubernetes-api', '--no-mesh', 'x.yaml']), { code: 'FERRY_ERR_INVALID_ARG', message: /--kubernetes-api needs the mesh/ })
  await t.rejects(labCommand(['restart', '--kubelet', 'n1', '--node', 'n1']), { code: 'FERRY_ERR_INVALID_ARG', message: /one of --node NODE, --kubelet NODE/ })
  await t.rejects(labCommand(['stop']), { code: 'FERRY_ERR_INVALID_ARG', message: /missing --node/ })
  await t.rejects(labCommand(['start', '--node']), { code: 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' })
})

t.test('--cni-plugin: a path, or a JSON object with a path and further conflist keys', async (t) => {
  t.same(parseCniPlugin(__filename), { path: __filename })
  t.same(parseCniPlugin(JSON.stringify({ path: __filename, type: 'rec', capabilities: { 'io.kubernetes.cri.pod-annotations': true }, failTimes: 2 })),
    { path: __filename, type: 'rec', config: { capabilities: { 'io.kubernetes.cri.pod-annotations': true }, failTimes: 2 } })
  t.throws(() => parseCniPlugin('/nonexistent/plugin'), { code: 'FERRY_ERR_INVALID_ARG', message: /no such file/ })
  t.throws(() => parseCniPlugin('{"path": 1}'), { code: 'FERRY_ERR_INVALID_ARG', message: /"path" must name an executable/ })
  t.throws(() => parseCniPlugin(JSON.stringify({ path: __filename, type: 'a/b' })), { code: 'FERRY_ERR_INVALID_ARG', message: /"type" must be a file name/ })
  t.throws(() => parseCniPlugin('{nope'), { code: 'FERRY_ERR_INVALID_ARG', message: /not a path or a JSON object/ })
})
