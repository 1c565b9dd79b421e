import t from 'tap'
import { parseAgentOptions } from '../../../src/agent/options'
import { parseTracingOptions } from '../../../src/telemetry/tracing/config'

// Tracing's configuration: flags, OpenTelemetry's standard variables, which wins, the
// defaults, and what is refused (with the flag or variable named).

const base = ['--node', 'n1', '--cluster-file', '/c.json', '--pin-root', '/sys/fs/bpf/x']

t.test('no endpoint anywhere: tracing off', async (t) => {
  t.equal(parseTracingOptions({}, {}), null)
  t.equal(parseAgentOptions(base, {}).tracing, null)
})

t.test('flags: gRPC by default, 1 % by default, http/protobuf gets /v1/traces appended', async (t) => {
  const o = parseAgentOptions([...base, '--otlp-endpoint', 'http://collector:4317'], {})
  t.same(o.tracing, { endpoint: 'http://collector:4317/', protocol: 'grpc', samplingPercent: 1 })
  t.ok(Object.isFrozen(o.tracing))
  const h = parseAgentOptions([...base, '--otlp-endpoint', 'http://collector:4318', '--otlp-protocol', 'http/protobuf', '--trace-sampling', '100'], {})
  t.same(h.tracing, { endpoint: 'http://collector:4318/v1/traces', protocol: 'http/protobuf', samplingPercent: 100 })
  t.equal(parseTracingOptions({ endpoint: 'https://c.example/otlp/', protocol: 'http/protobuf', sampling: '0.5' }, {})?.endpoint, 'https://c.example/otlp/v1/traces')
  t.equal(parseTracingOptions({ endpoint: 'http://c:4317', sampling: '0.5' }, {})?.samplingPercent, 0.5)
})

t.test('environment: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is used as is, OTEL_EXPORTER_OTLP_ENDPOINT as a base; OTEL_TRACES_SAMPLER_ARG is a ratio', async (t) => {
  t.same(parseTracingOptions({}, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf', OTEL_TRACES_SAMPLER_ARG: '0.25' }),
    { endpoint: 'http://c:4318/v1/traces', protocol: 'http/protobuf', samplingPercent: 25 })
  t.same(parseTracingOptions({}, { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://c:4318/custom', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://other:1', OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/protobuf', OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' }),
    { endpoint: 'http://c:4318/custom', protocol: 'http/protobuf', samplingPercent: 1 }, 'the traces-specific variables win over the general ones')
  t.same(parseAgentOptions(base, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4317' }).tracing, { endpoint: 'http://c:4317/', protocol: 'grpc', samplingPercent: 1 })
  t.equal(parseTracingOptions({}, { OTEL_EXPORTER_OTLP_ENDPOINT: '' }), null, 'an empty variable is unset')
})

t.test('flags win over the environment', async (t) => {
  const env = { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://env:4318/v1/traces', OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf', OTEL_TRACES_SAMPLER_ARG: '0.5' }
  t.same(parseTracingOptions({ endpoint: 'http://flag:4317', protocol: 'grpc', sampling: '10' }, env), { endpoint: 'http://flag:4317/', protocol: 'grpc', samplingPercent: 10 })
  t.same(parseTracingOptions({ sampling: '7' }, env), { endpoint: 'http://env:4318/v1/traces', protocol: 'http/protobuf', samplingPercent: 7 })
})

t.test('refused, naming what is wrong', async (t) => {
  const cases: Array<[string[], Record<string, string>, RegExp]> = [
    [['--otlp-endpoint', 'collector:4317'], {}, /--otlp-endpoint "collector:4317" is invalid/],
    [['--otlp-endpoint', 'ftp://c:1'], {}, /--otlp-endpoint .* an http:\/\/ or https:\/\/ URL/],
    [['--otlp-endpoint', 'http://u:p@c:1'], {}, /without credentials/],
    [['--otlp-endpoint', 'http://c:4317', '--otlp-protocol', 'http/json'], {}, /--otlp-protocol "http\/json" is invalid: expected one of grpc, http\/protobuf/],
    [['--otlp-endpoint', 'http://c:4317', '--trace-sampling', '101'], {}, /--trace-sampling "101" is invalid/],
    [['--otlp-endpoint', 'http://c:4317', '--trace-sampling=-1'], {}, /--trace-sampling "-1" is invalid/],
    [['--otlp-endpoint', 'http://c:4317', '--trace-sampling', '5%'], {}, /--trace-sampling "5%" is invalid/],
    [['--trace-sampling', '5'], {}, /--trace-sampling and --otlp-protocol need an endpoint/],
    [[], { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4317', OTEL_TRACES_SAMPLER_ARG: '5' }, /\$OTEL_TRACES_SAMPLER_ARG \(a ratio 0-1\) "5" is invalid/],
    [[], { OTEL_EXPORTER_OTLP_ENDPOINT: 'nonsense' }, /\$OTEL_EXPORTER_OTLP_ENDPOINT "nonsense" is invalid/],
    [[], { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4317', OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' }, /\$OTEL_EXPORTER_OTLP_PROTOCOL "http\/json" is invalid/]
  ]
  for (const [flags, env, re] of cases) {
    t.throws(() => parseAgentOptions([...base, ...flags], env), { code: 'FERRY_ERR_INVALID_ARG', message: re }, `${flags.join(' ')} ${JSON.stringify(env)}`)
  }
})
