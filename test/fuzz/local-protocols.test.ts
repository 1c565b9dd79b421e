import fc from 'fast-check'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { CNI_ROUTES, parsePodRequest } from '../../src/cni/protocol'
import { decodeMessage, encodeMessage, HANDOFF_VERSION } from '../../src/handoff/protocol'
import { readSwitch } from '../../src/l7/switch'
import { readSavedConfig, SAVED_CONFIG_FORMAT } from '../../src/resources/saved-config'
import { anyJson, anyText, fuzzParams, mutate, mutations, outcome, outcomeAsync, total } from '../helpers/fuzz'

// Inputs that come from another process on the node rather than the network: the
// ferry-cni plugin's requests to the agent's CNI socket (src/cni/protocol.ts), the
// listening-socket handoff between an old and a new agent (src/handoff/protocol.ts), the
// agent's saved configuration (--config-cache, src/resources/saved-config.ts), and the
// `ferry.dev/l7` switch in annotations and labels (src/l7/switch.ts). Generators: valid
// requests and messages mutated field by field, arbitrary JSON and bytes.

const dns = fc.stringMatching(/^[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?$/)
const nearValue = fc.oneof(fc.constantFrom('', '/', 'a/b', '../x', '/proc/1/ns/net\u0000', 'eth0', 'eth0:1', 'a'.repeat(300), '10.0.0.1/24', 'fd00::1/129', '10.0.0.1/x', 0, -1, 1e12, null, true, [], {}), anyJson(2))

t.test('CNI requests: any body is a frozen request or FERRY_ERR_CNI naming the field', async (t) => {
  const valid = fc.record({
    containerId: fc.stringMatching(/^[a-f0-9]{12,64}$/),
    netns: fc.constantFrom('/var/run/netns/cni-1', '/proc/42/ns/net'),
    ifname: fc.constantFrom('eth0', 'net1'),
    namespace: dns,
    name: dns,
    uid: fc.uuid(),
    infraContainerId: fc.stringMatching(/^[a-f0-9]{12}$/),
    ips: fc.array(fc.oneof(fc.ipV4().map((a) => `${a}/24`), fc.ipV6().map((a) => `${a}/64`), fc.ipV4()), { maxLength: 3 }),
    timeoutMs: fc.integer({ min: 1, max: 300_000 })
  })
  const body = fc.oneof(
    { weight: 4, arbitrary: fc.tuple(valid, mutations(['containerId', 'netns', 'ifname', 'namespace', 'name', 'uid', 'ips', 'timeoutMs'], nearValue, { minLength: 0, maxLength: 3 })).map(([v, ms]) => mutate(v, ms)) },
    { weight: 1, arbitrary: anyJson(3) }
  )
  fc.assert(fc.property(fc.constantFrom(...Object.values(CNI_ROUTES)), body, (command, b) => {
    const o = outcome(['FERRY_ERR_CNI'], () => parsePodRequest(command, b))
    if (o.ok && (!Object.isFrozen(o.value) || !Number.isFinite(o.value.timeoutMs) || o.value.timeoutMs <= 0)) throw new Error(`accepted ${JSON.stringify(o.value)}`)
  }), fuzzParams(750))
  t.pass()
})

t.test('handoff messages: any payload decodes or is FERRY_ERR_HANDOFF; what is encoded decodes the same', async (t) => {
  const message = fc.oneof(
    fc.record({ v: fc.constant(HANDOFF_VERSION), type: fc.constant('fds'), keys: fc.array(fc.stringMatching(/^[a-z0-9:.-]{1,20}$/), { maxLength: 3 }), more: fc.boolean() }),
    fc.record({ v: fc.constant(HANDOFF_VERSION), type: fc.constant('error'), code: fc.constant('FERRY_ERR_HANDOFF'), message: anyText(40) }),
    fc.record({ v: fc.constant(HANDOFF_VERSION), type: fc.constantFrom('take', 'next', 'commit', 'done', 'hello') })
  )
  const payload = fc.oneof(
    fc.tuple(message, mutations(['v', 'type', 'keys', 'more', 'code', 'message'], nearValue, { minLength: 0, maxLength: 2 })).map(([m, ms]) => Buffer.from(JSON.stringify(mutate(m, ms)) ?? '')),
    fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)),
    anyJson(3).map((v) => Buffer.from(JSON.stringify(v) ?? ''))
  )
  fc.assert(fc.property(payload, fc.nat({ max: 4 }), (p, fds) => {
    const o = outcome(['FERRY_ERR_HANDOFF'], () => decodeMessage(p, fds))
    if (!o.ok) return
    const again = decodeMessage(encodeMessage(o.value), fds)
    if (JSON.stringify(again) !== JSON.stringify(o.value)) throw new Error(`${JSON.stringify(o.value)} re-decoded as ${JSON.stringify(again)}`)
  }), fuzzParams(750))
  t.pass()
})

t.test('the saved configuration: any file is a configuration or FERRY_ERR_CONFIG_STATE naming it', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-fuzz-saved-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  const path = join(dir, 'config-cache.json')
  const valid = fc.record({
    format: fc.constant(SAVED_CONFIG_FORMAT),
    savedAt: fc.constant('2026-12-08T00:00:00.000Z'),
    origin: fc.constant('controller 127.0.0.1:15012'),
    rootNamespace: fc.constantFrom('ferry-system', 'istio-system'),
    documents: fc.array(fc.record({ path: fc.constantFrom('/c/a.yaml', 'b'), text: anyText(40), line: fc.nat({ max: 100 }) }), { maxLength: 2 }),
    upstreamReports: fc.constant([]),
    meta: fc.dictionary(fc.constantFrom('version', 'controller'), fc.oneof(fc.nat(), anyText(10)), { maxKeys: 2 })
  })
  const text = fc.oneof(
    { weight: 4, arbitrary: fc.tuple(valid, mutations(['format', 'savedAt', 'origin', 'rootNamespace', 'documents', 'upstreamReports', 'meta', 'path', 'text', 'line'], nearValue, { minLength: 0, maxLength: 3 })).map(([v, ms]) => JSON.stringify(mutate(v, ms)) ?? '') },
    { weight: 1, arbitrary: anyText(100) }
  )
  await fc.assert(fc.asyncProperty(text, async (content) => {
    writeFileSync(path, content)
    const o = await outcomeAsync(['FERRY_ERR_CONFIG_STATE'], async () => await readSavedConfig(path))
    if (!o.ok && !o.error.message.includes(path)) throw new Error(`does not name the file: ${o.error.message}`)
  }), fuzzParams(300))
  t.pass()
})

t.test('the ferry.dev/l7 switch: any annotation value reads as enabled, disabled or an ignored invalid value', async (t) => {
  fc.assert(fc.property(fc.dictionary(fc.oneof(fc.constant('ferry.dev/l7'), anyText(10)), fc.oneof(fc.constantFrom('enabled', 'disabled', 'true', ''), anyText(80)), { maxKeys: 3 }), (values) => {
    const r = total(() => readSwitch(values, 'annotation', 'service app/web'))
    if (!['enabled', 'disabled', 'unset'].includes(r.state)) throw new Error(`state ${r.state}`)
    if (r.invalid !== null && r.invalid.length > 300) throw new Error('an unbounded message')
  }), fuzzParams(500))
  t.pass()
})
