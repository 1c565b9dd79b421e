import t from 'tap'
import { CONTROLLER_DEFAULTS, parseControllerOptions, parseListen } from '../../src/controller/options'

// `ferry controller` options: strict, validated once, frozen.

const base = ['--data-dir', '/tmp/ca', '--lab-nodes', '/tmp/tokens.json', '--cluster-file', '/tmp/cluster.json']

t.test('defaults', async (t) => {
  const o = parseControllerOptions(base)
  t.same(o.listen, { host: '127.0.0.1', port: 15012 })
  t.equal(o.trustDomain, 'cluster.local')
  t.equal(o.certTtlMs, CONTROLLER_DEFAULTS.certTtlMs)
  t.same(o.servingNames, ['127.0.0.1', ...CONTROLLER_DEFAULTS.servingNames])
  t.ok(Object.isFrozen(o))
})

t.test('every option', async (t) => {
  const o = parseControllerOptions([...base, '--listen', '[::1]:0', '--trust-domain', 'mesh.example', '--cert-ttl', '1h30m',
    '--serving-name', '10.0.0.1', '--serving-name', 'ca.mesh.example', '--log-level', 'debug'])
  t.same(o.listen, { host: '::1', port: 0 })
  t.equal(o.trustDomain, 'mesh.example')
  t.equal(o.certTtlMs, 5_400_000)
  t.same(o.servingNames, ['::1', ...CONTROLLER_DEFAULTS.servingNames, '10.0.0.1', 'ca.mesh.example'])
  t.equal(o.logLevel, 'debug')
  t.same(parseControllerOptions([...base, '--listen', '0.0.0.0:15012']).servingNames, CONTROLLER_DEFAULTS.servingNames, 'no wildcard in the certificate')
})

t.test('bad values are refused by name', async (t) => {
  const bad: Array<[string[], RegExp]> = [
    [['--listen', '127.0.0.1'], /--listen "127.0.0.1" is invalid/],
    [['--listen', '127.0.0.1:70000'], /--listen/],
    [['--trust-domain', 'Cluster.Local'], /--trust-domain "Cluster.Local" is invalid/],
    [['--cert-ttl', '10'], /--cert-ttl "10" is invalid/],
    [['--cert-ttl', '500ms'], /--cert-ttl "500ms" is invalid: expected a duration from 1s to 365d/],
    [['--serving-name', 'bad name'], /--serving-name "bad name"/],
    [['--log-level', 'loud'], /--log-level "loud"/],
    [['--bogus', 'x'], /Unknown option '--bogus'/]
  ]
  for (const [args, message] of bad) t.throws(() => parseControllerOptions([...base, ...args]), { code: 'FERRY_ERR_INVALID_ARG', message }, args.join(' '))
  t.throws(() => parseControllerOptions(['--lab-nodes', 'x', '--cluster-file', 'y']), { code: 'FERRY_ERR_INVALID_ARG', message: /--data-dir is required/ })
  t.throws(() => parseControllerOptions(['--data-dir', 'x', '--cluster-file', 'y']), { code: 'FERRY_ERR_INVALID_ARG', message: /--lab-nodes is required/ })
})

t.test('parseListen', async (t) => {
  t.same(parseListen('localhost:0'), { host: 'localhost', port: 0 })
  t.throws(() => parseListen('[localhost]:1'))
  t.throws(() => parseListen('::1:15012'))
})
