import t from 'tap'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { listText, namespaceObj, podObj, serviceObj } from '../discovery/fixture'
import { ferry, REPO } from '../helpers/cli'

// `ferry policy` as a user runs it: the built CLI (npm run build:ts), real files.

const EXAMPLES = join(REPO, 'examples', 'policies')

function tmp (t: { teardown: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-policy-cli-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  return dir
}

function clusterFile (dir: string): string {
  const file = join(dir, 'cluster.json')
  writeFileSync(file, listText([
    namespaceObj('dev'),
    namespaceObj('prod'),
    podObj({ name: 'web', namespace: 'dev', ips: ['10.244.0.5', 'fd00:244::5'], serviceAccountName: 'web', labels: { app: 'web' } }),
    podObj({ name: 'api', namespace: 'prod', ips: ['10.244.1.7'], serviceAccountName: 'api', labels: { app: 'api' } }),
    podObj({ name: 'db-0', namespace: 'prod', ips: ['10.244.1.9'], serviceAccountName: 'db', labels: { app: 'db' }, deployment: 'db', ports: [{ name: 'pg', containerPort: 5432 }] }),
    serviceObj({ name: 'db', namespace: 'prod', clusterIPs: ['10.96.0.20'], selector: { app: 'db' }, ports: [{ name: 'postgres', port: 15432, targetPort: 'pg' }] })
  ]))
  return file
}

t.test('help lists the command and its forms', async (t) => {
  const help = await ferry(['policy', '--help'])
  t.equal(help.code, 0)
  t.match(help.stdout, /check --dir DIR --from SOURCE --to DEST \[--cluster-file FILE\] \[--json\]/)
  t.match((await ferry(['--help'])).stdout, /policy\s+check a connection against authorization policies/)
  const unknown = await ferry(['policy', 'enforce'])
  t.equal(unknown.code, 2)
  t.match(unknown.stderr, /ferry policy: unknown command "enforce"/)
})

t.test('check explains the example: dev → prod denied (exit 3), prod → prod allowed (exit 0)', async (t) => {
  const denied = await ferry(['policy', 'check', '--dir', EXAMPLES, '--from', 'cluster.local/ns/dev/sa/web', '--to', 'prod/app=db:5432'])
  t.equal(denied.code, 3, denied.stderr)
  t.match(denied.stdout, /^DENIED {2}identity spiffe:\/\/cluster.local\/ns\/dev\/sa\/web \(no address\)\n/)
  t.match(denied.stdout, /decided by {2}DENY policy prod\/deny-dev-to-prod, rule 0 {2}\(.*deny-dev-to-prod.yaml:21\)/)
  t.match(denied.stdout, /because {5}spec.rules\[0\].from\[0\].source.namespaces: source namespace "dev" matches namespaces\[0\] "dev" {2}\(.*deny-dev-to-prod.yaml:23\)/)
  t.match(denied.stdout, /mtls {8}STRICT \(default\)/)
  const allowed = await ferry(['policy', 'check', '--dir', EXAMPLES, '--from', 'spiffe://cluster.local/ns/prod/sa/api', '--to', 'prod/app=db:5432'])
  t.equal(allowed.code, 0, allowed.stderr)
  t.match(allowed.stdout, /^ALLOWED/)
  t.match(allowed.stdout, /decided by {2}default: no DENY policy matched and no ALLOW policy applies/)
  t.match(allowed.stdout, /✗ from\[0\].source.namespaces: source namespace "prod" matches none of namespaces \["dev"\]/)
})

t.test('check --json is the explanation object', async (t) => {
  const r = await ferry(['policy', 'check', '--dir', EXAMPLES, '--from', 'cluster.local/ns/dev/sa/web', '--to', 'prod/app=db:5432', '--json'])
  t.equal(r.code, 3)
  const out = JSON.parse(r.stdout)
  t.equal(out.allowed, false)
  t.match(out.results[0].explanation, {
    allowed: false,
    decision: { basis: 'deny-matched', policy: 'prod/deny-dev-to-prod', rule: 0, fields: ['spec.rules[0].from[0].source.namespaces'] },
    decidedBy: [{ field: 'spec.rules[0].from[0].source.namespaces', matched: true, location: { line: 23 } }],
    request: { source: { namespace: 'dev' }, destination: { namespace: 'prod', labels: { app: 'db' }, port: 5432 } }
  })
})

t.test('pods and services are looked up in --cluster-file; a service is checked at its target port', async (t) => {
  const cluster = clusterFile(tmp(t))
  const r = await ferry(['policy', 'check', '--dir', EXAMPLES, '--cluster-file', cluster, '--from', 'dev/web', '--to', 'prod/db:postgres'])
  t.equal(r.code, 3, r.stderr)
  t.match(r.stdout, /^DENIED {2}pod dev\/web \(spiffe:\/\/cluster.local\/ns\/dev\/sa\/web, 10.244.0.5\)\n {5}→ {3}service prod\/db:15432 → pod db-0 \(workload db\) port 5432\n/)
  const byIp = await ferry(['policy', 'check', '--dir', EXAMPLES, '--cluster-file', cluster, '--from', '10.244.1.7', '--to', 'prod/db-0:5432', '--json'])
  t.equal(byIp.code, 0, byIp.stderr)
  t.match(JSON.parse(byIp.stdout), { allowed: true, source: 'pod prod/api (spiffe://cluster.local/ns/prod/sa/api, 10.244.1.7)' })
})

t.test('errors carry their FERRY_ERR_* code', async (t) => {
  const dir = tmp(t)
  const cluster = clusterFile(dir)
  const cases: Array<[string[], RegExp]> = [
    [['--from', 'dev/web', '--to', 'prod/app=db:5432'], /^ferry: FERRY_ERR_INVALID_ARG: ferry policy check: --from dev\/web names a pod or service: give --cluster-file/],
    [['--cluster-file', cluster, '--from', 'dev/nope', '--to', 'prod/app=db:5432'], /^ferry: FERRY_ERR_WORKLOAD_NOT_FOUND: ferry policy check: --from dev\/nope: no pod nope in namespace dev/],
    [['--cluster-file', cluster, '--from', 'dev/web', '--to', 'prod/db:80'], /^ferry: FERRY_ERR_WORKLOAD_NOT_FOUND: .*service prod\/db has no port 80 \(ports: postgres\)/],
    [['--from', 'cluster.local/ns/dev/sa/web', '--to', 'prod-db'], /^ferry: FERRY_ERR_INVALID_ARG: ferry policy check: --to "prod-db" is invalid/],
    [['--from', 'cluster.local/ns/Dev/sa/web', '--to', 'prod/app=db:5432'], /^ferry: FERRY_ERR_SPIFFE_ID: /],
    [['--from', 'cluster.local/ns/dev/sa/web'], /^ferry: FERRY_ERR_INVALID_ARG: ferry policy: --to is required/],
    [['--from', 'cluster.local/ns/dev/sa/web', '--to', 'prod/app=db:5432', '--root-namespace', 'Not Valid'], /^ferry: FERRY_ERR_INVALID_ARG: ferry policy: --root-namespace/]
  ]
  for (const [args, stderr] of cases) {
    const r = await ferry(['policy', 'check', '--dir', EXAMPLES, ...args])
    t.equal(r.code, 1, args.join(' '))
    t.match(r.stderr, stderr, args.join(' '))
  }
})

t.test('validate: each object with its state (exit 1 when one is refused); check decides with the rest', async (t) => {
  const ok = await ferry(['policy', 'validate', '--dir', EXAMPLES])
  t.equal(ok.code, 0, ok.stderr)
  t.match(ok.stdout, /valid \(2 files, root namespace ferry-system; 2 accepted, 0 degraded, 0 refused\)\n {2}accepted {2}AuthorizationPolicy prod\/deny-dev-to-prod {2}DENY {2}security.istio.io\/v1\n {2}accepted {2}AuthorizationPolicy shop\/deny-dev-to-shop {2}DENY {2}security.istio.io\/v1\n/)
  const dir = tmp(t)
  writeFileSync(join(dir, 'degraded.yaml'), 'apiVersion: security.istio.io/v1beta1\nkind: AuthorizationPolicy\nmetadata: { name: x, namespace: prod }\nspec:\n  action: DENY\n  rules:\n  - from:\n    - source:\n        namespaces: ["dev"]\n    when:\n    - key: request.auth.claims[x]\n      values: ["1"]\n')
  writeFileSync(join(dir, 'refused.yaml'), 'apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: { name: y, namespace: prod }\nspec:\n  action: ALLOW\n  rules:\n  - from:\n    - source:\n        principal: ["x"]\n')
  const bad = await ferry(['policy', 'validate', '--dir', dir])
  t.equal(bad.code, 1, 'an object refused: exit 1')
  t.match(bad.stdout, /not valid \(2 files, root namespace ferry-system; 0 accepted, 1 degraded, 1 refused\)/)
  t.match(bad.stdout, `  degraded  AuthorizationPolicy prod/x  DENY  security.istio.io/v1beta1\n      ${join(dir, 'degraded.yaml')}:11: AuthorizationPolicy prod/x: spec.rules[0].when[0]: not supported by Ferry: key "request.auth.claims[x]"`)
  t.match(bad.stdout, /rule 0 of this DENY policy is applied without it: it matches more connections, so it denies more/)
  t.match(bad.stdout, `  refused   AuthorizationPolicy prod/y  security.istio.io/v1\n      ${join(dir, 'refused.yaml')}:9: AuthorizationPolicy prod/y: spec.rules[0].from[0].source.principal: unknown field`)
  t.match(bad.stdout, '      → nothing of it is in force (no earlier valid version)')

  // Guards per-object admission in `check --dir`: the refused ALLOW is not in force (it
  // would close prod), the degraded DENY is, without its `when`.
  const check = await ferry(['policy', 'check', '--dir', dir, '--from', 'cluster.local/ns/dev/sa/web', '--to', 'prod/app=db:5432'])
  t.equal(check.code, 3, `denied by the degraded DENY (exit 3): ${check.stderr}`)
  t.match(check.stdout, /decided by {2}DENY policy prod\/x, rule 0/)
  t.match(check.stdout, /degraded {4}DENY prod\/x rule 0: applied without spec\.rules\[0\]\.when\[0\] \(Ferry cannot check them\)/)
  t.match(check.stderr, `refused, not in force: ${join(dir, 'refused.yaml')}:9: AuthorizationPolicy prod/y: spec.rules[0].from[0].source.principal: unknown field`)
  const other = await ferry(['policy', 'check', '--dir', dir, '--from', 'cluster.local/ns/stage/sa/web', '--to', 'prod/app=db:5432'])
  t.equal(other.code, 0, 'stage is not denied, and no ALLOW applies (the refused one is not in force)')
})

t.test('check --path --method --header --host decides an HTTP request; without them, a connection (L7 conditions not evaluated)', async (t) => {
  const dir = tmp(t)
  writeFileSync(join(dir, 'l7.yaml'), [
    'apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: { name: deny-admin, namespace: prod }\nspec:\n  action: DENY\n  rules:\n  - to:\n    - operation:\n        paths: ["/admin*"]\n',
    'apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: { name: allow-get, namespace: prod }\nspec:\n  rules:\n  - to:\n    - operation:\n        methods: ["GET"]\n    when:\n    - key: request.headers[x-team]\n      notValues: ["blocked"]\n'
  ].join('---\n'))
  const check = async (...extra: string[]): Promise<{ code: number, stdout: string, stderr: string }> =>
    await ferry(['policy', 'check', '--dir', dir, '--from', 'cluster.local/ns/prod/sa/api', '--to', 'prod/app=db:8080', ...extra])

  const admin = await check('--path', '/admin', '--method', 'GET')
  t.equal(admin.code, 3, admin.stderr)
  t.match(admin.stdout, /^DENIED {2}identity spiffe:\/\/cluster\.local\/ns\/prod\/sa\/api/)
  t.match(admin.stdout, /request {5}GET \/admin\n/)
  t.match(admin.stdout, /decided by {2}DENY policy prod\/deny-admin, rule 0 {2}\(\S*l7\.yaml:\d+\)/)
  t.match(admin.stdout, /because {5}spec\.rules\[0\]\.to\[0\]\.operation\.paths: request path "\/admin" matches paths\[0\] "\/admin\*"/)

  const bypass = await check('--path', '/public/..//%61dmin')
  t.equal(bypass.code, 3)
  t.match(bypass.stdout, /path "\/public\/\.\.\/\/%61dmin" is normalized to "\/admin" \(MERGE_SLASHES\)/)

  const ok = await check('--path', '/public', '--header', 'X-Team: a', '--host', 'db.prod')
  t.equal(ok.code, 0, ok.stdout)
  t.match(ok.stdout, /request {5}GET \/public \(host db\.prod\)/)
  t.match(ok.stdout, /decided by {2}ALLOW policy prod\/allow-get, rule 0/)
  t.equal((await check('--path', '/public', '--header', 'x-team:blocked')).code, 3, 'the header condition decides')
  t.equal((await check('--path', '/public', '--method', 'POST')).code, 3)

  const conn = await check()
  t.equal(conn.code, 3)
  t.match(conn.stdout, /request {5}a connection \(no HTTP request: L7 conditions are not evaluated\)/)
  t.match(conn.stdout, /because {5}without its L7 conditions the rule has none left/)
  t.match(conn.stdout, /not checked spec\.rules\[0\]\.to\[0\]\.operation\.paths: an L7 condition, counted as matching/)

  const json = await check('--path', '/admin', '--json')
  const body = JSON.parse(json.stdout)
  t.match(body, { allowed: false, request: { method: 'GET', path: '/admin', rawPath: '/admin', host: '' }, results: [{ explanation: { decision: { policy: 'prod/deny-admin', basis: 'deny-matched' }, request: { http: { method: 'GET', path: '/admin' } } } }] })

  const refused = await check('--path', '/a%zz')
  t.equal(refused.code, 1)
  t.match(refused.stderr, /FERRY_ERR_INVALID_ARG.*--path "\/a%zz": the proxy refuses this path with 400 \(path_invalid_percent_encoding\)|--path "\/a%zz": the proxy refuses this path with 400 \(path_invalid_percent_encoding\)/)
})
