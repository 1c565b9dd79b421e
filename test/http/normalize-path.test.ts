import t from 'tap'
import { normalizePath, pathNormalizationOptions, pathNormalizer, PATH_NORMALIZATION_DEFAULTS, removeDotSegments } from '../../src/http/normalize-path'
import { compilePolicySet } from '../../src/policy/policy-set'
import type { RequestView } from '../../src/policy/request-view'
import { buildSnapshot } from '../../src/resources/loader'
import { ap } from '../policy/helpers'

// Path normalization before L7 authorization: the bypass attempts a `/admin*` DENY
// must catch, each option of Istio's, and what is refused.

const BYPASSES = ['//admin', '/./admin', '/%61dmin', '/public/../admin', '/admin/', '/public/..//admin', '/%2e%2e/admin', '/public%2F..%2Fadmin', '\\admin', '/public\\..\\admin', '/a/b/../../admin?x=1']

t.test('default (MERGE_SLASHES): every bypass attempt becomes /admin…, case kept', async (t) => {
  const expect: Record<string, string> = {
    '//admin': '/admin',
    '/./admin': '/admin',
    '/%61dmin': '/admin',
    '/public/../admin': '/admin',
    '/admin/': '/admin/',
    '/public/..//admin': '/admin',
    '/%2e%2e/admin': '/admin',
    '/public%2F..%2Fadmin': '/public%2F..%2Fadmin',
    '\\admin': '',
    '/public\\..\\admin': '/admin',
    '/a/b/../../admin?x=1': '/admin?x=1'
  }
  for (const raw of BYPASSES) {
    const r = normalizePath(raw)
    if (raw === '\\admin') t.same(r, { reject: 'path_not_origin_form' }, raw)
    else t.same(r, { path: expect[raw] }, raw)
  }
  t.same(normalizePath('/ADMIN'), { path: '/ADMIN' }, 'case-sensitive: /ADMIN stays (and a /admin* rule does not match it, as in Istio)')
  t.same(normalizePath('/a/%7euser/%e2%82%ac?q=%2f//x'), { path: '/a/~user/%E2%82%AC?q=%2f//x' }, 'unreserved decoded, other escapes upper-cased, the query as sent')
  t.same(normalizePath('/..'), { path: '/' }, 'never above the root')
  t.same(normalizePath('/a/.'), { path: '/a/' })
  t.same(normalizePath('/.well-known/x...y'), { path: '/.well-known/x...y' })
  t.same(normalizePath('*'), { path: '*' }, 'OPTIONS *')
  t.same(normalizePath('/caf\u00e9'), { path: '/caf%E9' }, 'bytes above 0x7E percent-encoded')
})

t.test('refused: not origin-form, control characters, "#", invalid percent-encodings', async (t) => {
  for (const raw of ['%2fadmin', 'admin', 'http://x/admin', '']) t.same(normalizePath(raw), { reject: 'path_not_origin_form' }, JSON.stringify(raw))
  for (const raw of ['/ad\u0000min', '/a b', '/a\tb', '/a#b', '/a?b\nc', '/a\u007f']) t.same(normalizePath(raw), { reject: 'path_invalid_character' }, JSON.stringify(raw))
  for (const raw of ['/%', '/%4', '/%zz', '/a%2']) t.same(normalizePath(raw), { reject: 'path_invalid_percent_encoding' }, raw)
  t.same(normalizePath('/%zz', { normalization: 'NONE', escapedSlashes: 'KEEP_UNCHANGED' }), { reject: 'path_invalid_percent_encoding' }, 'in every mode')
})

t.test('escaped slashes: KEEP_UNCHANGED, REJECT_REQUEST, UNESCAPE_AND_REDIRECT (refused), UNESCAPE_AND_FORWARD, DECODE_AND_MERGE_SLASHES', async (t) => {
  const raw = '/%2fadmin'
  t.same(normalizePath(raw), { path: '/%2Fadmin' }, 'kept escaped (upper-cased): not /admin to the policy or, per RFC 3986, to the application')
  t.same(normalizePath(raw, pathNormalizationOptions({ escapedSlashes: 'REJECT_REQUEST' })), { reject: 'path_escaped_slash' })
  t.same(normalizePath('/a%5Cb', pathNormalizationOptions({ escapedSlashes: 'UNESCAPE_AND_REDIRECT' })), { reject: 'path_escaped_slash' })
  t.same(normalizePath(raw, pathNormalizationOptions({ escapedSlashes: 'UNESCAPE_AND_FORWARD' })), { path: '/admin' })
  const decode = pathNormalizationOptions({ normalization: 'DECODE_AND_MERGE_SLASHES' })
  t.equal(decode.escapedSlashes, 'UNESCAPE_AND_FORWARD')
  t.same(normalizePath('/public%2F..%2Fadmin', decode), { path: '/admin' })
  t.same(normalizePath('/x%5C..%5Cadmin', decode), { path: '/admin' }, '%5C decoded to "\\", then a slash')
})

t.test('BASE lets //admin through (Istio\'s default); NONE changes nothing', async (t) => {
  const base = pathNormalizationOptions({ normalization: 'BASE' })
  t.same(normalizePath('//admin', base), { path: '//admin' })
  t.same(normalizePath('/public/../admin', base), { path: '/admin' })
  const none = pathNormalizationOptions({ normalization: 'NONE' })
  for (const raw of ['//admin', '/./admin', '/%61dmin', '/public/../admin', '/a\\b']) t.same(normalizePath(raw, none), { path: raw }, raw)
})

t.test('options: validated once, frozen; unknown keys and values refused by name', async (t) => {
  t.ok(Object.isFrozen(PATH_NORMALIZATION_DEFAULTS))
  t.same(PATH_NORMALIZATION_DEFAULTS, { normalization: 'MERGE_SLASHES', escapedSlashes: 'KEEP_UNCHANGED' })
  const o = pathNormalizationOptions({ normalization: 'BASE' })
  t.ok(Object.isFrozen(o))
  t.throws(() => pathNormalizationOptions({ normalization: 'merge_slashes' }), { code: 'FERRY_ERR_INVALID_ARG', message: /normalization "merge_slashes" is not one of NONE, BASE, MERGE_SLASHES, DECODE_AND_MERGE_SLASHES/ })
  t.throws(() => pathNormalizationOptions({ escapedSlashes: 'DROP' }), { code: 'FERRY_ERR_INVALID_ARG' })
  t.throws(() => pathNormalizationOptions({ mergeSlashes: true } as never), { message: /unknown option "mergeSlashes"/ })
  t.throws(() => pathNormalizationOptions({ normalization: 'DECODE_AND_MERGE_SLASHES', escapedSlashes: 'KEEP_UNCHANGED' }), { message: /contradicts/ })
  const f = pathNormalizer()
  t.same(f('//x'), { path: '/x' })
  t.equal(removeDotSegments('/a/b/c/./../../g'), '/a/g', 'RFC 3986 §5.4.2\'s example')
})

t.test('through the policy: DENY /admin* and ALLOW GET decide the normalized path', async (t) => {
  const set = compilePolicySet(buildSnapshot([{ path: '/p/a.yaml', text: ap('prod', 'deny-admin', 'action: DENY\nrules:\n- to:\n  - operation:\n      paths: ["/admin*"]') + ap('prod', 'allow-get', 'rules:\n- to:\n  - operation:\n      methods: ["GET"]') }], { origin: '/p', generation: 1 }))
  const decide = (raw: string): string => {
    const n = normalizePath(raw)
    if (!('path' in n)) return `400 ${n.reject}`
    const view: RequestView = { method: 'GET', path: n.path, host: 'db', header: () => undefined }
    const d = set.authz.evaluate({ source: { principal: 'cluster.local/ns/prod/sa/api' }, destination: { namespace: 'prod', labels: { app: 'db' }, port: 8080 }, request: view })
    return d.allowed ? '200' : `403 ${d.policy ?? d.basis}`
  }
  for (const raw of ['/admin', '//admin', '/./admin', '/%61dmin', '/public/../admin', '/admin/', '/admin?x', '/%2e%2e/admin']) t.equal(decide(raw), '403 prod/deny-admin', raw)
  t.equal(decide('/ADMIN'), '200', '/ADMIN is another path (case-sensitive, as Istio)')
  t.equal(decide('/public'), '200')
  t.equal(decide('%2fadmin'), '400 path_not_origin_form')
})
