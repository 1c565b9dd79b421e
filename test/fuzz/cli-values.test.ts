import fc from 'fast-check'
import t from 'tap'
import { parseAgentOptions } from '../../src/agent/options'
import { parseWorkerCount } from '../../src/agent/worker-count'
import { parseControllerOptions, parseListen } from '../../src/controller/options'
import { parseLabNodeTokens } from '../../src/controller/lab-node-tokens'
import { CERT_TTL, parseCertTtl } from '../../src/identity/cert-ttl'
import { formatDuration, parseDuration } from '../../src/identity/duration'
import { parseSettings, SETTINGS } from '../../src/install/settings'
import { anyJson, anyText, fuzzParams, outcome, pathological } from '../helpers/fuzz'

// The values people type: durations (every --*-timeout, --drain-grace, --cert-ttl),
// `ferry install --set KEY=VALUE`, worker counts, --listen, whole argv vectors of
// `ferry agent` and `ferry controller`, and the lab's node-token file the controller
// reads. Each either parses or is refused as FERRY_ERR_INVALID_ARG (FERRY_ERR_CONFIG for
// the file) naming the option and the value.

const INVALID = ['FERRY_ERR_INVALID_ARG'] as const

const number = fc.oneof(fc.nat({ max: 100_000 }).map(String), fc.tuple(fc.nat({ max: 999 }), fc.nat({ max: 999 })).map(([a, b]) => `${a}.${b}`), fc.constantFrom('0', '00', '1e3', '-1', '.5', '5.', 'Infinity', 'NaN', '9'.repeat(30)))
const unit = fc.constantFrom('ms', 's', 'm', 'h', 'd', '', 'us', 'S', 'H', 'µs', 'min', ' ')
const nearDuration = fc.oneof(
  fc.array(fc.tuple(number, unit).map(([n, u]) => n + u), { minLength: 1, maxLength: 5 }).map((parts) => parts.join('')),
  fc.tuple(fc.constantFrom('', ' ', '\t', '\n'), number, unit, fc.constantFrom('', ' ', '\n')).map(([a, n, u, b]) => a + n + u + b)
)

t.test('parseDuration: every text is milliseconds within its range, or FERRY_ERR_INVALID_ARG naming the option', async (t) => {
  const range: fc.Arbitrary<{ minMs?: number, maxMs?: number }> = fc.oneof(fc.constant({}), fc.record({ minMs: fc.nat({ max: 10_000 }), maxMs: fc.integer({ min: 10_000, max: 2 ** 40 }) }))
  fc.assert(fc.property(fc.oneof(nearDuration, anyText(40), pathological(['1', '1.', '1s', '0.0', '1h1', '9m'])), range, (text, r) => {
    const o = outcome(INVALID, () => parseDuration(text, 'ferry test: --fuzz', r))
    if (!o.ok) {
      if (!o.error.message.includes('--fuzz')) throw new Error(`message does not name the option: ${o.error.message}`)
      return
    }
    if (!Number.isSafeInteger(o.value) || o.value < (r.minMs ?? 0) || o.value > (r.maxMs ?? Infinity)) throw new Error(`"${text}" gave ${o.value}`)
  }), fuzzParams(1000))
  t.pass()
})

t.test('formatDuration → parseDuration round-trips every whole millisecond count', async (t) => {
  fc.assert(fc.property(fc.nat({ max: 2 ** 45 }), (ms) => {
    const back = parseDuration(formatDuration(ms), 'x')
    if (back !== ms) throw new Error(`${ms} → ${formatDuration(ms)} → ${back}`)
  }), fuzzParams(500))
  t.pass()
})

t.test('parseCertTtl: within CERT_TTL or refused', async (t) => {
  fc.assert(fc.property(fc.oneof(nearDuration, anyText(20)), (text) => {
    const o = outcome(INVALID, () => parseCertTtl(text, 'ferry agent: --cert-ttl'))
    if (o.ok && (o.value < CERT_TTL.minMs || o.value > CERT_TTL.maxMs)) throw new Error(`"${text}" gave ${o.value}`)
  }), fuzzParams(500))
  t.pass()
})

const settingKey = fc.oneof(fc.constantFrom(...Object.keys(SETTINGS)), fc.constantFrom('constructor', 'toString', '__proto__', 'hasOwnProperty', 'valueOf', 'image.tag', ''), anyText(12))
const settingValue = fc.oneof(nearDuration, anyText(30), fc.constantFrom('Always', 'IfNotPresent', 'Never', 'debug', '100m', '128Mi', '1.5', '-1', '0', '3', 'cluster.local', 'ferry-system', 'example.org', 'ghcr.io/x/y:1'))
const assignment = fc.oneof(fc.tuple(settingKey, fc.constantFrom('=', '', '=='), settingValue).map(([k, e, v]) => k + e + v), anyText(40))

t.test('ferry install --set: every KEY=VALUE list parses or is refused naming the key', async (t) => {
  fc.assert(fc.property(fc.array(assignment, { maxLength: 4 }), (list) => {
    const o = outcome(INVALID, () => parseSettings(list))
    if (o.ok) for (const k of o.value.keys()) if (!Object.hasOwn(SETTINGS, k)) throw new Error(`unknown key ${k} accepted`)
  }), fuzzParams(1000))
  t.pass()
})

t.test('worker counts and --listen', async (t) => {
  fc.assert(fc.property(fc.oneof(fc.integer({ min: -5, max: 2000 }).map(String), anyText(8)), (text) => {
    const o = outcome(INVALID, () => parseWorkerCount(text, 'ferry agent: --workers'))
    if (o.ok && (!Number.isInteger(o.value) || o.value < 1)) throw new Error(`"${text}" gave ${o.value}`)
  }), fuzzParams(500))
  const host = fc.oneof(fc.ipV4(), fc.ipV6().map((a) => `[${a}]`), fc.domain(), fc.constantFrom('[]', '[::1', 'a:b', ''))
  fc.assert(fc.property(fc.oneof(fc.tuple(host, fc.integer({ min: -1, max: 70000 })).map(([h, p]) => `${h}:${p}`), anyText(40), pathological(['a', '[', ':', '1'])), (text) => {
    const o = outcome(INVALID, () => parseListen(text))
    if (o.ok && (!Number.isInteger(o.value.port) || o.value.port > 65535 || o.value.host === '')) throw new Error(`"${text}" gave ${JSON.stringify(o.value)}`)
  }), fuzzParams(500))
  t.pass()
})

// Options that read nothing from the file system when parsed, each with near-valid values.
const AGENT_FLAGS: Record<string, fc.Arbitrary<string>> = {
  '--node': fc.oneof(fc.constantFrom('node-1', 'Node_1', ''), anyText(10)),
  '--cluster-file': fc.constantFrom('/tmp/cluster.json', '', 'rel/x.json'),
  '--drain-grace': nearDuration,
  '--admin-port': fc.oneof(fc.integer({ min: -1, max: 70000 }).map(String), anyText(6)),
  '--ready-port': fc.oneof(fc.integer({ min: -1, max: 70000 }).map(String), anyText(6)),
  '--log-level': fc.constantFrom('info', 'debug', 'loud', ''),
  '--cluster-name': fc.oneof(fc.constantFrom('Kubernetes', 'c 1'), anyText(10)),
  '--cluster-domain': fc.oneof(fc.domain(), anyText(10)),
  '--config-source': fc.constantFrom('controller', 'dir', ''),
  '--ca-address': fc.oneof(fc.constantFrom('127.0.0.1:15012', '[::1]:15012', 'x'), anyText(10)),
  '--trust-domain': fc.oneof(fc.domain(), anyText(10)),
  '--cert-ttl': nearDuration,
  '--tunnel-port': fc.oneof(fc.integer({ min: -1, max: 70000 }).map(String), anyText(6)),
  '--sockmap': fc.constantFrom('on', 'off', 'yes', ''),
  '--workers': fc.oneof(fc.integer({ min: -1, max: 300 }).map(String), anyText(4)),
  '--cni-timeout': nearDuration,
  '--otlp-endpoint': fc.oneof(fc.webUrl(), anyText(10)),
  '--bogus': anyText(5)
}
const CONTROLLER_FLAGS: Record<string, fc.Arbitrary<string>> = {
  '--data-dir': fc.constantFrom('/tmp/ferry-fuzz-ca', '', 'rel'),
  '--listen': fc.oneof(fc.constantFrom('127.0.0.1:0', '[::1]:15012', ':1'), anyText(10)),
  '--trust-domain': fc.oneof(fc.domain(), anyText(10)),
  '--cert-ttl': nearDuration,
  '--lab-nodes': fc.constantFrom('/tmp/tokens.json', ''),
  '--cluster-file': fc.constantFrom('/tmp/cluster.json', ''),
  '--token-audience': anyText(10),
  '--agent-service-account': fc.oneof(fc.constantFrom('ferry-agent', 'ns:sa', 'a:b:c', ':'), anyText(10)),
  '--root-namespace': fc.oneof(fc.constantFrom('ferry-system', 'Bad_NS'), anyText(10)),
  '--serving-name': fc.oneof(fc.domain(), fc.ipV4(), anyText(10)),
  '--log-level': fc.constantFrom('info', 'loud'),
  '--bogus': anyText(5)
}

function argv (flags: Record<string, fc.Arbitrary<string>>, booleans: readonly string[]): fc.Arbitrary<string[]> {
  const pair = fc.oneof(
    fc.constantFrom(...Object.keys(flags)).chain((f) => flags[f].map((v) => [f, v])),
    fc.constantFrom(...Object.keys(flags)).chain((f) => flags[f].map((v) => [`${f}=${v}`])),
    fc.constantFrom(...booleans).map((b) => [b]),
    anyText(10).map((x) => [x])
  )
  return fc.array(pair, { maxLength: 8 }).map((pairs) => pairs.flat())
}

t.test('ferry agent: any argv gives frozen options or FERRY_ERR_INVALID_ARG', async (t) => {
  fc.assert(fc.property(argv(AGENT_FLAGS, ['--kubernetes']), fc.option(fc.constantFrom('node-1', 'BAD NAME')), (args, node) => {
    const o = outcome(INVALID, () => parseAgentOptions(args, node === null ? {} : { NODE_NAME: node }))
    if (o.ok && !Object.isFrozen(o.value)) throw new Error('options not frozen')
  }), fuzzParams(750))
  t.pass()
})

t.test('ferry controller: any argv gives frozen options or FERRY_ERR_INVALID_ARG', async (t) => {
  fc.assert(fc.property(argv(CONTROLLER_FLAGS, ['--kubernetes']), (args) => {
    const o = outcome(INVALID, () => parseControllerOptions(args))
    if (o.ok && !Object.isFrozen(o.value)) throw new Error('options not frozen')
  }), fuzzParams(750))
  t.pass()
})

t.test('the lab node-token file: any text maps tokens to nodes or is refused as FERRY_ERR_CONFIG', async (t) => {
  const doc = fc.record({
    kind: fc.oneof(fc.constant('FerryLabNodeTokens'), anyText(10)),
    tokens: fc.oneof(fc.dictionary(fc.oneof(fc.base64String({ minLength: 4, maxLength: 44 }), anyText(10)), fc.oneof(fc.constantFrom('node-1', 'Node 1', ''), anyText(10)), { maxKeys: 4 }), anyJson(2))
  }, { requiredKeys: [] })
  fc.assert(fc.property(fc.oneof(doc.map((d) => JSON.stringify(d)), anyJson(3).map((d) => JSON.stringify(d) ?? ''), anyText(60)), (text) => {
    outcome(['FERRY_ERR_CONFIG'], () => parseLabNodeTokens(text, '/tmp/tokens.json'))
  }), fuzzParams(750))
  t.pass()
})
