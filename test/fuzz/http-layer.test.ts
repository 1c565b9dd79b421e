import fc from 'fast-check'
import t from 'tap'
import { withPath } from '../../src/http/admit'
import { grpcStatusIn, grpcStatusOfHttp } from '../../src/http/grpc-status'
import { endToEndHeaders } from '../../src/http/hop-by-hop'
import { ESCAPED_SLASHES_ACTIONS, normalizePath, PATH_NORMALIZATIONS, pathNormalizationOptions } from '../../src/http/normalize-path'
import { pathOnly } from '../../src/http/request-view'
import { classify } from '../../src/http/sniff'
import { blockContains, parseBlock, parseIP } from '../../src/policy/ip-block'
import { durationMs } from '../../src/routing/duration'
import { hostOnly } from '../../src/routing/location'
import { formatB3Single, formatTraceparent, HEADERS, readB3Multi, readB3Single, readIncoming, readW3C } from '../../src/telemetry/tracing/trace-context'
import { anyText, fuzzParams, outcome, pathological, total } from '../helpers/fuzz'

// The pieces of HTTP that Ferry parses itself (Node's llhttp and nghttp2 parse the
// messages): the request path's normalization (what policies match and applications
// receive), protocol sniffing of the first bytes of an undeclared port, trace context
// (W3C traceparent, B3 single and multi), grpc-status, hop-by-hop headers, the Host
// header's host, route durations, and the peer addresses and CIDR blocks of ipBlocks.
// All are on the data path: they must return — a verdict, null or a refusal reason —
// for any input, promptly, never throw.

const hex = (n: number): fc.Arbitrary<string> => fc.stringMatching(new RegExp(`^[0-9a-f]{${n}}$`))
const pathChar = fc.constantFrom('/', '.', '..', '%2e', '%2E', '%2f', '%2F', '%5c', '%5C', '\\', 'a', 'b', '%41', '%', '%G1', '%c3%a9', 'é', '?', '#', ' ', '\t', '*', ';', '//', '~', '%00', '\u0000', '%25')
const target = fc.oneof(
  { weight: 4, arbitrary: fc.array(pathChar, { maxLength: 20 }).map((p) => `/${p.join('')}`) },
  { weight: 1, arbitrary: fc.array(pathChar, { maxLength: 20 }).map((p) => p.join('')) },
  { weight: 1, arbitrary: anyText(80) },
  { weight: 1, arbitrary: pathological(['/..', '/.', '//', '%2e%2e/', '/a', '%']).map((p) => `/${p}`) }
)
const pathOptions = fc.tuple(fc.constantFrom(...PATH_NORMALIZATIONS), fc.constantFrom(...ESCAPED_SLASHES_ACTIONS))
  .filter(([n, e]) => n !== 'DECODE_AND_MERGE_SLASHES' || e === 'UNESCAPE_AND_FORWARD')
  .map(([normalization, escapedSlashes]) => pathNormalizationOptions({ normalization, escapedSlashes }))

t.test('normalizePath: any request-target is a clean path or a stable refusal reason; a normalized path is a fixed point', async (t) => {
  const REASONS = new Set(['path_not_origin_form', 'path_invalid_character', 'path_invalid_percent_encoding', 'path_escaped_slash'])
  fc.assert(fc.property(target, pathOptions, (raw, opts) => {
    const n = total(() => normalizePath(raw, opts))
    if ('reject' in n) {
      if (!REASONS.has(n.reject)) throw new Error(`reason ${n.reject}`)
      return
    }
    const p = n.path
    if (p === '*') return
    if (!p.startsWith('/')) throw new Error(`${raw} → ${p}: not origin-form`)
    // eslint-disable-next-line no-control-regex
    if (/[\u0000-\u0020\u007f#]/.test(p)) throw new Error(`${JSON.stringify(raw)} → ${JSON.stringify(p)}: a control character, space or #`)
    if (opts.normalization === 'NONE') return
    const path = pathOnly(p)
    if (/(^|\/)\.\.?(\/|$)/.test(path)) throw new Error(`${raw} → ${p}: a dot segment is left`)
    if (opts.normalization !== 'BASE' && path.includes('//')) throw new Error(`${raw} → ${p}: "//" is left`)
    const again = normalizePath(p, opts)
    if (!('path' in again) || again.path !== p) throw new Error(`not a fixed point: ${JSON.stringify(raw)} → ${JSON.stringify(p)} → ${JSON.stringify(again)}`)
  }), fuzzParams(1000))
  t.pass()
})

t.test('pathNormalizationOptions: any option object is frozen options or FERRY_ERR_CONFIG naming the option', async (t) => {
  fc.assert(fc.property(fc.dictionary(fc.constantFrom('normalization', 'escapedSlashes', 'other'), fc.oneof(fc.constantFrom(...PATH_NORMALIZATIONS, ...ESCAPED_SLASHES_ACTIONS), fc.anything()), { maxKeys: 3 }), (input) => {
    outcome(['FERRY_ERR_CONFIG', 'FERRY_ERR_INVALID_ARG'], () => pathNormalizationOptions(input))
  }), fuzzParams(250))
  t.pass()
})

t.test('sniffing the first bytes: a verdict or "more", promptly; a request line and the HTTP/2 preface are recognized', async (t) => {
  const METHODS = ['GET', 'POST', 'PRI', 'OPTIONS', 'CONNECT', 'G€T', '']
  const requestish = fc.tuple(fc.constantFrom(...METHODS), fc.constantFrom(' '), fc.oneof(fc.constantFrom('/', '*', '/a?b', 'http://x/'), anyText(10)), fc.constantFrom(' HTTP/1.1', ' HTTP/1.0', ' HTTP/2.0', ' HTTP/1.1 ', ''), fc.constantFrom('\r\n', '\n', '\r', '', '\r\nHost: x\r\n\r\n'))
    .map((parts) => Buffer.from(parts.join(''), 'latin1'))
  const preface = fc.nat({ max: 24 }).map((n) => Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1').subarray(0, n))
  fc.assert(fc.property(fc.oneof(requestish, preface, fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)), pathological(['A', 'GET ', '/', ' ']).map((s) => Buffer.from(s))), fc.integer({ min: 16, max: 65536 }), (buf, maxLine) => {
    const r = total(() => classify(buf, maxLine))
    if (r !== 'more' && r !== null && !(['http', 'l4'] as const).includes(r.kind)) throw new Error(`verdict ${JSON.stringify(r)}`)
  }), fuzzParams(1500))
  t.same(classify(Buffer.from('GET /x HTTP/1.1\r\n'), 8192), { kind: 'http', version: 'http1' })
  t.same(classify(Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), 8192), { kind: 'http', version: 'http2' })
})

const traceHeaderValue = fc.oneof(
  fc.tuple(hex(2), hex(32), hex(16), hex(2), fc.constantFrom('', '-x', '-')).map(([v, a, b, f, rest]) => `${v}-${a}-${b}-${f}${rest}`),
  fc.tuple(fc.oneof(hex(16), hex(32), hex(15)), hex(16), fc.constantFrom('', '-1', '-0', '-d', '-x'), fc.constantFrom('', '-' + '0'.repeat(16), '-abc')).map((p) => p.join('-').replace(/--/g, '-')),
  fc.constantFrom('0', '1', 'd', 'true', 'false', '', ' 1 ', '00-' + '0'.repeat(32) + '-' + '1'.repeat(16) + '-01'),
  anyText(60),
  pathological(['0-', 'a', '-', 'f'])
)
const headerBag = fc.dictionary(fc.constantFrom(...Object.values(HEADERS)), fc.oneof(traceHeaderValue, fc.array(traceHeaderValue, { maxLength: 2 })), { maxKeys: 5 })

t.test('trace context: any headers give a valid context or null; what Ferry writes reads back the same', async (t) => {
  fc.assert(fc.property(headerBag, (h) => {
    for (const read of [readW3C, readB3Single, readB3Multi, readIncoming]) {
      const c = total(() => read(h as any))
      if (c === null) continue
      if (c.traceId !== null && !/^[0-9a-f]{32}$/.test(c.traceId)) throw new Error(`trace id ${c.traceId}`)
      if (c.spanId !== null && !/^[0-9a-f]{16}$/.test(c.spanId)) throw new Error(`span id ${c.spanId}`)
      if ((c.traceId === null) !== (c.spanId === null)) throw new Error('half a context')
    }
  }), fuzzParams(1500))
  fc.assert(fc.property(hex(32).filter((x) => !/^0+$/.test(x)), hex(16).filter((x) => !/^0+$/.test(x)), fc.boolean(), fc.boolean(), (traceId, spanId, sampled, debug) => {
    const out = { traceId, spanId, parentSpanId: null, sampled: sampled || debug, debug, traceState: null }
    const w = readW3C({ traceparent: formatTraceparent(out) })
    const b = readB3Single({ b3: formatB3Single(out) })
    if (w?.traceId !== traceId || w.spanId !== spanId || w.sampled !== out.sampled) throw new Error(`traceparent ${formatTraceparent(out)} read as ${JSON.stringify(w)}`)
    if (b?.traceId !== traceId || b.spanId !== spanId || b.sampled !== out.sampled || b.debug !== debug) throw new Error(`b3 ${formatB3Single(out)} read as ${JSON.stringify(b)}`)
  }), fuzzParams(500))
  t.pass()
})

t.test('headers: grpc-status, hop-by-hop, Host, request targets', async (t) => {
  const HOP = ['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer', 'proxy-authenticate', 'proxy-authorization', 'http2-settings', 'host']
  const name = fc.oneof(fc.constantFrom(...HOP, 'x-a', 'x-b', ':path', 'grpc-status', '__proto__', 'constructor'), fc.stringMatching(/^[a-z-]{1,8}$/))
  const value = fc.oneof(anyText(20), fc.constantFrom('trailers', 'x-a, X-B', 'close', '0', '16', '1e1', ' 2 ', '-0'), fc.array(anyText(5), { maxLength: 2 }))
  fc.assert(fc.property(fc.dictionary(name, value, { maxKeys: 6 }), (h) => {
    const out = total(() => endToEndHeaders(h as any))
    for (const k of Object.keys(out)) if (k !== 'te' && (HOP.includes(k) || k.startsWith(':'))) throw new Error(`${k} forwarded`)
    const named = typeof h.connection === 'string' ? h.connection.toLowerCase().split(',').map((s) => s.trim()) : []
    for (const k of named) if (k !== 'te' && Object.hasOwn(out, k)) throw new Error(`${k}, named by connection, forwarded`)
    const s = total(() => grpcStatusIn(h))
    if (s !== null && !Number.isInteger(s)) throw new Error(`grpc-status ${String(s)}`)
  }), fuzzParams(1000))
  fc.assert(fc.property(fc.integer({ min: 0, max: 1000 }), (status) => {
    const g = total(() => grpcStatusOfHttp(status))
    if (!Number.isInteger(g) || g < 0 || g > 16) throw new Error(`${status} → ${g}`)
  }), fuzzParams(150))
  fc.assert(fc.property(fc.oneof(anyText(40), fc.tuple(fc.oneof(fc.domain(), fc.ipV6().map((a) => `[${a}]`), fc.ipV4()), fc.option(fc.nat({ max: 70000 }))).map(([h, p]) => p === null ? h : `${h}:${p}`)), target, (host, raw) => {
    if (typeof total(() => hostOnly(host)) !== 'string') throw new Error('host')
    const p = total(() => pathOnly(raw))
    if (total(() => withPath(raw, p)) !== raw) throw new Error(`withPath(${raw}, pathOnly) is not ${raw}`)
  }), fuzzParams(1000))
  t.pass()
})

t.test('route durations and ipBlocks addresses: total, promptly; valid ones round-trip', async (t) => {
  fc.assert(fc.property(fc.oneof(fc.array(fc.tuple(fc.nat({ max: 10_000 }).map(String), fc.constantFrom('h', 'm', 's', 'ms', '', 'us')).map(([n, u]) => n + u), { minLength: 1, maxLength: 5 }).map((p) => p.join('')), anyText(20), pathological(['1', '1.', '1s', '9m'])), (text) => {
    const ms = total(() => durationMs(text))
    if (!Number.isNaN(ms) && (!Number.isInteger(ms) || ms < 0)) throw new Error(`${text} → ${ms}`)
  }), fuzzParams(1000))
  const block = fc.oneof(
    fc.tuple(fc.ipV4(), fc.option(fc.integer({ min: -1, max: 33 }))).map(([a, p]) => p === null ? a : `${a}/${p}`),
    fc.tuple(fc.ipV6(), fc.option(fc.integer({ min: -1, max: 129 }))).map(([a, p]) => p === null ? a : `${a}/${p}`),
    anyText(40), pathological(['1.', ':', '::', 'f:', '0'])
  )
  fc.assert(fc.property(block, fc.oneof(fc.ipV4(), fc.ipV6(), anyText(20)), (b, ip) => {
    const parsed = total(() => parseBlock(b))
    const addr = total(() => parseIP(ip))
    if (addr !== null && addr.some((w) => !Number.isInteger(w) || w < 0 || w > 0xffffffff)) throw new Error(`${ip} → ${addr.join(',')}`)
    if (parsed !== null && addr !== null) total(() => blockContains(parsed, addr))
  }), fuzzParams(750))
  fc.assert(fc.property(fc.oneof(fc.ipV4(), fc.ipV6()), (ip) => {
    const words = parseIP(ip)
    const block = parseBlock(ip)
    if (words === null || block === null) throw new Error(`${ip} not parsed`)
    if (!ip.toLowerCase().startsWith('::ffff:') && !blockContains(block, words)) throw new Error(`${ip} not in its own block`)
  }), fuzzParams(500))
  t.pass()
})
