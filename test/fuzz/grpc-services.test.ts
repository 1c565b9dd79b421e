import * as grpc from '@grpc/grpc-js'
import fc from 'fast-check'
import { EventEmitter } from 'node:events'
import { X509Certificate } from 'node:crypto'
import t from 'tap'
import { Registry } from 'prom-client'
import { ConfigStream } from '../../src/agent/config-stream'
import type { Authenticator } from '../../src/controller/authn'
import type { Authorizer } from '../../src/controller/authz'
import { certificateServiceHandlers } from '../../src/controller/ca-service'
import { configProtos, type ConfigSnapshotMessage } from '../../src/controller/config-protos'
import { ConfigStreamService } from '../../src/controller/config-service'
import { fromReportMessages } from '../../src/controller/config-wire'
import { CertificateIssuer } from '../../src/controller/issuer'
import { createRootCa } from '../../src/controller/root-ca'
import { createCsr } from '../../src/identity/csr'
import { generateWorkloadKey } from '../../src/identity/keys'
import { systemClock } from '../../src/identity/clock'
import { caProtos } from '../../src/identity/protos'
import { spiffeIdOf } from '../../src/identity/spiffe-id'
import { createLogger } from '../../src/telemetry/logger'
import { anyJson, anyText, fuzzParams, total } from '../helpers/fuzz'

// The controller's gRPC services, what they do with a decoded request: the CA's
// CreateCertificate (istio.v1.auth.IstioCertificateService) and the configuration
// stream (ferry.config.v1.ConfigService/Stream, both ends: the controller reading agents'
// ACK/NACKs, the agent reading snapshots). Messages are generated field by field, and
// as arbitrary bytes through the very codec the server uses (the service definition's
// deserializer; bytes it cannot decode are answered by grpc-js itself).
//
// Properties: the CA answers a certificate whose only SAN is the requested identity, or a
// refusal with its status and a "FERRY_ERR_*: reason" message — never INTERNAL, never an
// exception; a stream message never throws and leaves a valid state; the agent answers
// every snapshot with an ACK or a NACK with reasons.

const log = createLogger({ name: 'fuzz', level: 'silent' })
const TRUST_DOMAIN = 'cluster.local'
const NODE = 'n1'

/** Tokens "good" → node n1; "flaky" → cannot be checked; anything else refused. */
const authenticator: Authenticator = {
  kind: 'fuzz',
  async authenticate (token) {
    if (token === 'good') return { ok: true, caller: { node: NODE, principal: 'fuzz:n1' } }
    if (token === 'flaky') return { ok: false, reason: 'the token review did not answer', unavailable: true }
    return { ok: false, reason: 'unknown token' }
  },
  close () {}
}
/** Node n1 runs the pods of namespace "app" (any service account) in this trust domain. */
const authorizer: Authorizer = {
  authorize (caller, id) {
    if (id.trustDomain !== TRUST_DOMAIN) return { allowed: false, reason: `trust domain "${id.trustDomain}" is not this CA's` }
    return caller.node === NODE && id.namespace === 'app' ? { allowed: true } : { allowed: false, reason: `no pod of ${id.namespace}/${id.serviceAccount} on ${caller.node}` }
  },
  async whenLoaded () {},
  close () {}
}

const dnsLabel = fc.stringMatching(/^[a-z]([-a-z0-9]{0,12}[a-z0-9])?$/)
const trustDomain = fc.oneof(fc.constant(TRUST_DOMAIN), fc.constantFrom('example.org', 'evil.local'))

t.test('CreateCertificate: every request is a certificate for its SAN, or a FERRY_ERR_* refusal', async (t) => {
  const root = await createRootCa(TRUST_DOMAIN, Date.now() - 86_400_000)
  const issuer = new CertificateIssuer(root)
  const handlers = certificateServiceHandlers({ authenticator, authorizer, issuer, maxTtlMs: 3_600_000, clock: systemClock, log })
  const def = caProtos().certificateService.CreateCertificate
  // A few real keys (key generation is the slow part): CSRs are made per case with them.
  const keys = await Promise.all([1, 2, 3].map(async () => await generateWorkloadKey()))

  const call = async (request: unknown, token: string | null): Promise<{ err: grpc.ServiceError | null, value?: { cert_chain: string[] } }> => {
    const metadata = new grpc.Metadata()
    if (token !== null) metadata.set('authorization', token)
    return await new Promise((resolve) => {
      handlers.CreateCertificate({ request, metadata, getPeer: () => 'ipv4:127.0.0.1:1' } as any, (err: any, value: any) => { resolve({ err, value }) })
    })
  }

  const validCsr = fc.tuple(fc.nat({ max: keys.length - 1 }), trustDomain, fc.oneof(fc.constant('app'), dnsLabel), dnsLabel)
    .map(([k, td, ns, sa]) => ({ key: keys[k], id: spiffeIdOf(td, ns, sa) }))
  const csrText = fc.oneof(
    { weight: 4, arbitrary: validCsr.map((c) => ({ kind: 'valid' as const, ...c })) },
    { weight: 2, arbitrary: fc.tuple(validCsr, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 3 })).map(([c, flips]) => ({ kind: 'flipped' as const, ...c, flips })) },
    { weight: 1, arbitrary: fc.oneof(anyText(200), fc.uint8Array({ maxLength: 600 }).map((b) => `-----BEGIN CERTIFICATE REQUEST-----\n${Buffer.from(b).toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`)).map((text) => ({ kind: 'text' as const, text })) }
  )
  const validity = fc.oneof(fc.constantFrom(0, 1, 3600, 86_400 * 365, -1, 2 ** 53, Number.MAX_SAFE_INTEGER), fc.integer(), fc.double())
  const token = fc.oneof({ weight: 6, arbitrary: fc.constant('Bearer good') }, { weight: 1, arbitrary: fc.constantFrom(null, 'Bearer flaky', 'Bearer bad', 'good', 'Bearer ', 'bearer good', 'Bearer good extra') })
  const struct = fc.option(fc.dictionary(fc.constantFrom('ClusterID', 'ImpersonatedIdentity', 'x'), fc.oneof(fc.record({ stringValue: anyText(10) }), fc.record({ numberValue: fc.double() }), fc.record({ boolValue: fc.boolean() })), { maxKeys: 2 }).map((fields) => ({ fields })), { nil: undefined })
  const transport = fc.constantFrom('object', 'wire') as fc.Arbitrary<'object' | 'wire'>

  await fc.assert(fc.asyncProperty(csrText, validity, token, struct, transport, async (c, validityDuration, tok, metadata, via) => {
    let csr: string
    if (c.kind === 'text') csr = c.text
    else {
      csr = await createCsr(c.key, c.id)
      if (c.kind === 'flipped') {
        const der = Buffer.from(csr.replace(/-----[^-]+-----|\s/g, ''), 'base64')
        for (const [at, v] of c.flips) der[at % der.length] = v
        csr = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`
      }
    }
    let request: unknown = { csr, validity_duration: validityDuration, metadata }
    // Through the server's codec: what the handler sees is what protobuf made of the bytes.
    if (via === 'wire') request = def.requestDeserialize(def.requestSerialize({ csr, validity_duration: Number.isSafeInteger(validityDuration) ? validityDuration : 0, metadata }))
    const { err, value } = await call(request, tok)
    if (err === null) {
      if (c.kind === 'text') throw new Error('a certificate for a CSR that is not one')
      const chain = value?.cert_chain ?? []
      if (chain.length !== 2) throw new Error(`a chain of ${chain.length}`)
      const leaf = new X509Certificate(chain[0])
      if (c.kind === 'valid' && leaf.subjectAltName !== `URI:${c.id.uri}`) throw new Error(`issued for ${leaf.subjectAltName} not ${c.id.uri}`)
      if (c.kind === 'valid' && (c.id.trustDomain !== TRUST_DOMAIN || c.id.namespace !== 'app')) throw new Error(`a foreign identity was issued: ${c.id.uri}`)
      return
    }
    if (err.code === grpc.status.INTERNAL) throw new Error(`INTERNAL: ${err.details}`)
    if (!/^FERRY_ERR_[A-Z_]+: ./.test(err.details)) throw new Error(`refusal without a code: ${err.details}`)
    if (c.kind === 'valid' && tok === 'Bearer good' && Number(validityDuration) >= 0 && (c.id.trustDomain === TRUST_DOMAIN && c.id.namespace === 'app')) throw new Error(`a valid request refused: ${err.details}`)
    if (c.kind === 'valid' && tok === 'Bearer good' && Number(validityDuration) >= 0 && err.code !== grpc.status.PERMISSION_DENIED) throw new Error(`a foreign identity refused with ${grpc.status[err.code]}: ${err.details}`)
  }), fuzzParams(25))
  t.pass()
})

t.test('CreateCertificate: arbitrary bytes through the server codec are refused or answered with a FERRY_ERR_* status', async (t) => {
  const root = await createRootCa(TRUST_DOMAIN, Date.now() - 86_400_000)
  const handlers = certificateServiceHandlers({ authenticator, authorizer, issuer: new CertificateIssuer(root), maxTtlMs: 3_600_000, clock: systemClock, log })
  const def = caProtos().certificateService.CreateCertificate
  await fc.assert(fc.asyncProperty(fc.uint8Array({ maxLength: 300 }), async (bytes) => {
    let request: unknown
    try {
      request = total(() => def.requestDeserialize(Buffer.from(bytes)))
    } catch (err) {
      if ((err as Error).message.includes('a hang')) throw err
      return // grpc-js answers INTERNAL "Error deserializing request" itself
    }
    const metadata = new grpc.Metadata()
    metadata.set('authorization', 'Bearer good')
    const err = await new Promise<any>((resolve) => { handlers.CreateCertificate({ request, metadata, getPeer: () => 'x' } as any, (e: any) => { resolve(e) }) })
    if (err === null) throw new Error('random bytes got a certificate')
    if (err.code === grpc.status.INTERNAL || !/^FERRY_ERR_[A-Z_]+: ./.test(err.details)) throw new Error(`${grpc.status[err.code]}: ${err.details}`)
  }), fuzzParams(150))
  t.pass()
})

class FakeDuplex extends EventEmitter {
  readonly written: unknown[] = []
  cancelled = false
  constructor (readonly metadata: grpc.Metadata) { super() }
  getPeer (): string { return 'ipv4:127.0.0.1:2' }
  write (m: unknown): boolean { this.written.push(m); return true }
  end (): void {}
  cancel (): void {}
}

const agentMessage = fc.oneof(
  fc.record({ ack: fc.record({ version: fc.oneof(fc.nat(), fc.constantFrom(0, 2 ** 53, -1)), refused: fc.array(anyText(50), { maxLength: 60 }) }, { requiredKeys: ['version'] }) }),
  fc.record({ nack: fc.record({ version: fc.nat(), reasons: fc.array(anyText(50), { maxLength: 60 }) }, { requiredKeys: [] }) }),
  fc.constant({})
)

t.test('ConfigService/Stream: any agent message, decoded or built, leaves the stream in a valid state', async (t) => {
  const service = new ConfigStreamService({ authenticator, log, registry: new Registry(), instance: 'fuzz' }, true)
  t.teardown(() => { service.close() })
  const metadata = new grpc.Metadata()
  metadata.set('authorization', 'Bearer good')
  const call = new FakeDuplex(metadata)
  service.handlers().Stream(call as any, undefined as any)
  await new Promise((resolve) => setTimeout(resolve, 10))
  service.publish({ version: 3, origin: 'fuzz', rootNamespace: 'ferry-system', documents: [], refused: [] } as any)
  const def = configProtos().configService.Stream
  fc.assert(fc.property(fc.oneof(agentMessage.map((m) => ({ m, bytes: null })), fc.uint8Array({ maxLength: 200 }).map((bytes) => ({ m: null, bytes }))), ({ m, bytes }) => {
    let msg: unknown = m
    if (bytes !== null) {
      try { msg = def.requestDeserialize(Buffer.from(bytes)) } catch { return }
    } else {
      msg = def.requestDeserialize(def.requestSerialize(m))
    }
    total(() => call.emit('data', msg))
    const [state] = service.agents()
    if (state === undefined || !['pending', 'acked', 'nacked'].includes(state.state)) throw new Error(`stream state ${JSON.stringify(state)}`)
  }), fuzzParams(500))
  t.pass()
})

t.test('the agent answers every configuration snapshot with an ACK or a NACK with reasons', async (t) => {
  const root = await createRootCa(TRUST_DOMAIN, Date.now() - 86_400_000)
  const stream = new ConfigStream({ address: '127.0.0.1:1', caRootsPem: root.certPem, token: () => 'x', log, registry: new Registry() })
  t.teardown(() => { stream.close() })
  const call = new FakeDuplex(new grpc.Metadata())
  ;(stream as any).call = call
  const def = configProtos().configService.Stream
  const doc = fc.record({
    name: fc.oneof(fc.constantFrom('/c/a.yaml', ''), anyText(20)),
    text: fc.oneof(fc.constantFrom('apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: { name: a, namespace: app }\nspec: { action: DENY, rules: [{}] }\n', '', '- '.repeat(3000), 'kind: List\napiVersion: v1\nitems: [1, 2]\n'), anyText(100)),
    line: fc.oneof(fc.nat(), fc.constant(2 ** 40))
  }, { requiredKeys: [] })
  const report = fc.record({ object: anyText(20), key: anyText(10), api_version: anyText(10), file: anyText(10), line: fc.nat(), in_force: fc.constantFrom('none', 'earlier-version', 'x'), note: anyText(10), refusal: fc.constantFrom('invalid', 'conflict', ''), issues: fc.array(fc.record({ file: anyText(5), line: fc.nat(), object: anyText(5), field: anyText(5), message: anyText(20) }), { maxLength: 3 }) }, { requiredKeys: [] })
  const snapshot = fc.record({ version: fc.oneof(fc.nat(), fc.constant(0)), controller: anyText(10), origin: anyText(10), root_namespace: fc.oneof(fc.constantFrom('ferry-system', 'istio-system', '', 'Bad NS'), anyText(10)), documents: fc.array(doc, { maxLength: 3 }), refused: fc.array(report, { maxLength: 3 }) }, { requiredKeys: [] })
  fc.assert(fc.property(fc.oneof(snapshot.map((s) => def.responseDeserialize(def.responseSerialize(s))), fc.uint8Array({ maxLength: 300 }).map((b) => { try { return def.responseDeserialize(Buffer.from(b)) } catch { return null } })), (msg) => {
    if (msg === null) return
    call.written.length = 0
    total(() => (stream as any).onSnapshotMessage(call, msg as ConfigSnapshotMessage))
    const [answer] = call.written as any[]
    if (answer?.ack === undefined && !(Array.isArray(answer?.nack?.reasons) && answer.nack.reasons.length > 0 && answer.nack.reasons.every((r: unknown) => typeof r === 'string' && r !== ''))) throw new Error(`answer ${JSON.stringify(answer)}`)
  }), fuzzParams(150))
  t.pass()
})

t.test('refused-object reports from the wire are bounded and typed, whatever they hold', async (t) => {
  fc.assert(fc.property(fc.oneof(anyJson(4), fc.array(anyJson(3), { maxLength: 5 })), (list) => {
    const reports = total(() => fromReportMessages(list as any))
    for (const r of reports) if (typeof r.object !== 'string' || typeof r.file !== 'string' || !Number.isSafeInteger(r.line) || r.state !== 'refused') throw new Error(JSON.stringify(r))
  }), fuzzParams(500))
  t.pass()
})

