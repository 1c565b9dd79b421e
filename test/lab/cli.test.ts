import t from 'tap'
import { execFile } from 'node:child_process'
import { LAB_USAGE, labCommand, parseCniPlugin } from '../../src/cli/lab-command'
import { labWorkersFromEnv } from '../../src/lab/up'
import { FERRY } from '../helpers/cli'

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
  t.match(LAB_USAGE, /stop --controller \[--signal KILL\|TERM\]\n\s+start --controller \[--timeout 30s\]/)
  await t.rejects(labCommand(['stop', '--controller', '--node', 'n1']), { code: 'FERRY_ERR_INVALID_ARG', message: /stop takes one of --node NODE or --controller/ })
  await t.rejects(labCommand(['start', '--controller', '--node', 'n1']), { code: 'FERRY_ERR_INVALID_ARG', message: /start takes one of --node NODE or --controller/ })
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

// Guards the one worker-count grammar (src/agent/worker-count.ts) for the lab's --workers
// and FERRY_LAB_WORKERS, the agents' default that lets a whole test run play at one worker
// count: a bad value is refused by name before anything is made.
t.test('--workers, FERRY_LAB_WORKERS and --drain-grace: checked before any lab is touched', async (t) => {
  for (const bad of ['0', '9', 'two', '1.5', ' 2']) {
    await t.rejects(labCommand(['up', '--workers', bad, 'x.yaml']), { code: 'FERRY_ERR_INVALID_ARG', message: `--workers "${bad}" is invalid: expected an integer from 1 to 8` })
    t.throws(() => labWorkersFromEnv(bad), { code: 'FERRY_ERR_INVALID_ARG', message: `FERRY_LAB_WORKERS "${bad}" is invalid: expected an integer from 1 to 8` })
  }
  t.equal(labWorkersFromEnv(''), undefined, 'unset or empty: the agent\'s default')
  t.equal(labWorkersFromEnv('1'), 1)
  t.equal(labWorkersFromEnv('8'), 8)
  await t.rejects(labCommand(['up', '--drain-grace', 'soon', 'x.yaml']), { code: 'FERRY_ERR_INVALID_ARG', message: /--drain-grace "soon" is invalid: expected a duration/ })
  await t.rejects(labCommand(['up', '--drain-grace', '2h', 'x.yaml']), { code: 'FERRY_ERR_INVALID_ARG', message: /--drain-grace "2h" is invalid: expected a duration up to 1h/ })
  t.match(LAB_USAGE, /--workers N runs the\s+agents with N data-path workers \(default: \$FERRY_LAB_WORKERS if set/)
  // The real CLI, with the variable set: refused by name, even beside an explicit --workers.
  const r = await new Promise<{ code: number | null, stderr: string }>((resolve) => {
    execFile(process.execPath, [FERRY, 'lab', 'up', '--workers', '2', '--name', 'never', 'no-such.yaml'], { env: { ...process.env, FERRY_LAB_WORKERS: 'many' }, timeout: 30_000 }, (err, _stdout, stderr) => {
      resolve({ code: err === null ? 0 : (err as { code?: number }).code ?? 1, stderr })
    })
  })
  t.not(r.code, 0)
  t.match(r.stderr, /FERRY_LAB_WORKERS "many" is invalid: expected an integer from 1 to 8/)
})
