import t from 'tap'
import { join } from 'node:path'
import { parseAgentOptions } from '../../../src/agent/options'
import { labTracing } from '../../../src/cli/lab-command'
import { readManifests } from '../../../src/lab/manifest'
import { agentArgv } from '../../../src/lab/spawn'
import { planLab, type PlanPaths } from '../../../src/lab/topology'
import { FIXTURES } from '../../lab/helpers'

// `ferry lab up --otlp-endpoint URL --trace-sampling PERCENT`: checked as the agent checks
// them, planned, and passed to every node's agent, whose own parser accepts them.

const PATHS: PlanPaths = { cgroup2: '/cg', netnsDir: '/run/netns', etcNetnsDir: '/etc/netns', bpffs: '/bpf', labStateDir: '/state' }

t.test('the lab passes its tracing flags to every agent', async (t) => {
  const tracing = labTracing('http://172.30.0.254:4318', 'http/protobuf', '100', false)
  t.same(tracing, { endpoint: 'http://172.30.0.254:4318', protocol: 'http/protobuf', samplingPercent: 100 })
  const plan = planLab(readManifests([join(FIXTURES, 'two-nodes.yaml')]), { name: 'x', mesh: true, paths: PATHS, tracing })
  for (const node of plan.nodes) {
    const argv = agentArgv(plan, node, ['ferry'])
    const i = argv.indexOf('--otlp-endpoint')
    t.same(argv.slice(i, i + 6), ['--otlp-endpoint', 'http://172.30.0.254:4318', '--otlp-protocol', 'http/protobuf', '--trace-sampling', '100'], node.name)
    const o = parseAgentOptions(argv.slice(argv.indexOf('agent') + 1), {})
    t.same(o.tracing, { endpoint: 'http://172.30.0.254:4318/v1/traces', protocol: 'http/protobuf', samplingPercent: 100 }, 'the agent reads them as given')
  }
  const plain = planLab(readManifests([join(FIXTURES, 'two-nodes.yaml')]), { name: 'x', mesh: true, paths: PATHS })
  t.notOk(agentArgv(plain, plain.nodes[0] as never, ['ferry']).includes('--otlp-endpoint'), 'no flags: tracing off')
  t.same(labTracing('http://c:4317', undefined, undefined, false), { endpoint: 'http://c:4317' }, 'only what was given: the agent keeps its defaults')
})

t.test('bad tracing flags fail lab up before anything is made', async (t) => {
  t.throws(() => labTracing('c:4317', undefined, undefined, false), { code: 'FERRY_ERR_INVALID_ARG', message: /ferry lab up: --otlp-endpoint "c:4317" is invalid/ })
  t.throws(() => labTracing(undefined, undefined, '5', false), { code: 'FERRY_ERR_INVALID_ARG', message: /need an endpoint/ })
  t.throws(() => labTracing('http://c:4317', undefined, '500', false), { code: 'FERRY_ERR_INVALID_ARG', message: /--trace-sampling "500"/ })
  t.throws(() => labTracing('http://c:4317', undefined, undefined, true), { code: 'FERRY_ERR_INVALID_ARG', message: /needs the mesh/ })
  t.equal(labTracing(undefined, undefined, undefined, false), undefined)
})
