import t from 'tap'
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { REPO } from '../../helpers/cli'

// OpenTelemetry's SDK and exporters load only when tracing is on, and a data-path worker
// never loads an exporter (the agent's one exporter is the main thread's). A child
// process (the built tree, as the CLI tests run it) reports what it loaded.

const DIST = join(REPO, 'dist', 'src')
const PRINT = 'process.stdout.write("\\n" + JSON.stringify(Object.keys(require.cache)) + "\\n")'

function otelPackages (script: string): string[] {
  const r = spawnSync(process.execPath, ['-e', script], { cwd: REPO, encoding: 'utf8', timeout: 60_000, env: { ...process.env, NODE_OPTIONS: '' } })
  if (r.status !== 0) throw new Error(`child exited ${String(r.status)}: ${r.stderr}`)
  const files = JSON.parse(r.stdout.trim().split('\n').pop() as string) as string[]
  const out = new Set<string>()
  for (const f of files) {
    const m = /node_modules\/(@opentelemetry\/[^/]+)\//.exec(f)
    if (m !== null) out.add(m[1] as string)
  }
  return [...out].sort()
}

const req = (f: string): string => `require(${JSON.stringify(join(DIST, f))})`

t.test('tracing off: the agent and a data plane load nothing of OpenTelemetry\'s SDK or exporters', async (t) => {
  t.same(otelPackages(`
    ${req('cli/agent-command.js')}
    ${req('worker/data-plane.js')}
    const { requestTracerFor, spanExportFor } = ${req('telemetry/tracing/index.js')}
    const { parseAgentOptions } = ${req('agent/options.js')}
    const o = parseAgentOptions(['--node', 'n1', '--cluster-file', '/c.json', '--pin-root', '/sys/fs/bpf/x'], {})
    requestTracerFor(o.tracing, 'n1', () => {})
    if (spanExportFor(o.tracing, 'n1', null) !== null) throw new Error('an exporter without tracing')
    ${PRINT}
  `), ['@opentelemetry/api'], 'only the API, which prom-client itself loads (for exemplars)')
})

t.test('tracing on: a worker\'s tracer loads the SDK but no exporter; the main thread\'s exporter loads the one its protocol needs', async (t) => {
  const worker = otelPackages(`
    const { requestTracerFor } = ${req('telemetry/tracing/index.js')}
    requestTracerFor({ endpoint: 'http://127.0.0.1:1/', protocol: 'grpc', samplingPercent: 1 }, 'n1', () => {})
    ${PRINT}
  `)
  t.ok(worker.includes('@opentelemetry/sdk-trace-base'), 'the SDK makes the spans')
  t.notOk(worker.some((p) => p.startsWith('@opentelemetry/exporter-') || p.includes('otlp')), `no exporter in a worker (${worker.join(', ')})`)
  const main = otelPackages(`
    const { spanExportFor } = ${req('telemetry/tracing/index.js')}
    const { Registry } = require('prom-client')
    const e = spanExportFor({ endpoint: 'http://127.0.0.1:1/v1/traces', protocol: 'http/protobuf', samplingPercent: 1 }, 'n1', new Registry())
    e.shutdown()
    ${PRINT}
  `)
  t.ok(main.includes('@opentelemetry/exporter-trace-otlp-proto'))
  t.notOk(main.includes('@opentelemetry/exporter-trace-otlp-grpc'), 'HTTP/protobuf does not load the gRPC exporter')
})
