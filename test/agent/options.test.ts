import t from 'tap'
import { resolve } from 'node:path'
import { parseAgentOptions } from '../../src/agent/options'

const base = ['--node', 'n1', '--cluster-file', '/var/run/ferry/labs/x/cluster.json', '--pin-root', '/sys/fs/bpf/ferry-lab-x-n1']

t.test('valid options get defaults, an absolute cluster file, and are frozen', async (t) => {
  const o = parseAgentOptions(base)
  t.same(o, { node: 'n1', clusterFile: '/var/run/ferry/labs/x/cluster.json', pinRoot: '/sys/fs/bpf/ferry-lab-x-n1', adminPort: 15020, readyPort: 15021, logLevel: 'info' })
  t.ok(Object.isFrozen(o))
  const o2 = parseAgentOptions(['--node', 'node-2.example', '--cluster-file', 'rel/c.json', '--pin-root', '/p', '--admin-port', '0', '--ready-port', '0', '--log-level', 'debug'])
  t.equal(o2.clusterFile, resolve('rel/c.json'))
  t.equal(o2.adminPort, 0)
  t.equal(o2.readyPort, 0, 'both 0 is allowed: each gets a free port')
  t.equal(o2.logLevel, 'debug')
})

t.test('invalid options are FERRY_ERR_INVALID_ARG naming the option and what is expected', async (t) => {
  const cases: Array<[string[], RegExp]> = [
    [['--cluster-file', '/c', '--pin-root', '/p'], /--node is required/],
    [['--node', 'n1', '--pin-root', '/p'], /--cluster-file is required/],
    [['--node', 'n1', '--cluster-file', '/c'], /--pin-root is required/],
    [[...base, '--node', 'Node_1'], /--node "Node_1" is invalid: expected a Kubernetes node name/],
    [['--node', 'n1', '--cluster-file', '/c', '--pin-root', 'relative/pins'], /--pin-root "relative\/pins" is invalid: expected an absolute path/],
    [[...base, '--admin-port', '70000'], /--admin-port "70000" is invalid: expected a port number/],
    [[...base, '--ready-port', 'http'], /--ready-port "http" is invalid/],
    [[...base, '--admin-port', '9000', '--ready-port', '9000'], /--ready-port "9000" is invalid: expected a port other than --admin-port 9000/],
    [[...base, '--log-level', 'loud'], /--log-level "loud" is invalid: expected one of fatal, error/],
    [[...base, '--nodes', 'n1'], /Unknown option '--nodes'/],
    [[...base, 'extra'], /Unexpected argument 'extra'/],
    [[...base, '--node'], /--node/]
  ]
  for (const [argv, re] of cases) {
    t.throws(() => parseAgentOptions(argv), { code: 'FERRY_ERR_INVALID_ARG', message: re }, argv.join(' '))
  }
})
