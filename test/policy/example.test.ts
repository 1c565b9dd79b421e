import t from 'tap'
import { join } from 'node:path'
import { compilePolicySet } from '../../src/policy/policy-set'
import { loadResourceDirectory } from '../../src/resources/loader'
import { request } from './helpers'

// examples/policies is the seed's case: workloads in dev cannot reach services in prod
// (and, for the shop lab, where the shop plays production, in shop).

t.test('examples/policies: dev cannot reach prod; everything else is untouched', async (t) => {
  const set = compilePolicySet(await loadResourceDirectory(join(__dirname, '..', '..', 'examples', 'policies')))
  const decide = (principal: string, to: string, labels: Record<string, string>, port: number): boolean =>
    set.authz.evaluate(request({ principal, to, labels, port })).allowed
  for (const [labels, port] of [[{ app: 'db' }, 5432], [{ app: 'web' }, 8080], [{}, 22]] as Array<[Record<string, string>, number]>) {
    t.notOk(decide('cluster.local/ns/dev/sa/web', 'prod', labels, port), `dev → prod ${JSON.stringify(labels)}:${port} denied`)
    t.notOk(decide('cluster.local/ns/dev/sa/default', 'prod', labels, port), 'any service account of dev')
    t.ok(decide('cluster.local/ns/prod/sa/api', 'prod', labels, port), 'prod → prod allowed')
    t.ok(decide('cluster.local/ns/dev/sa/web', 'dev', labels, port), 'dev → dev allowed')
    t.ok(decide('cluster.local/ns/staging/sa/web', 'prod', labels, port), 'other namespaces → prod allowed')
    t.notOk(decide('cluster.local/ns/dev/sa/client', 'shop', labels, port), 'dev → shop denied')
    t.ok(decide('cluster.local/ns/shop/sa/web', 'shop', labels, port), 'shop → shop allowed')
  }
  t.match(set.authz.evaluate(request({ principal: 'spiffe://cluster.local/ns/dev/sa/web', to: 'prod' })), {
    basis: 'deny-matched', policy: 'prod/deny-dev-to-prod', rule: 0, fields: ['spec.rules[0].from[0].source.namespaces']
  })
})
