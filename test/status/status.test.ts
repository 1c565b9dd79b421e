import t from 'tap'
import { createServer } from 'node:net'
import { statusCommand } from '../../src/cli/status-command'
import { addressAgentEndpoint } from '../../src/lab/agent-admin'
import { formatMeshStatus } from '../../src/status/format'
import type { MeshStatus } from '../../src/status/mesh-status'
import { readNodeStatus } from '../../src/status/node-status'

// `ferry status` without a lab: what the text shows of a failing renewal, an agent that
// does not answer, and bad arguments. The lab end to end is test/e2e/controller-outage.test.ts.

const STATUS: MeshStatus = {
  mesh: 'lab demo',
  at: '2026-12-08T03:00:00.000Z',
  nodes: [
    {
      node: 'node1',
      endpoint: 'node1 of lab demo',
      reachable: true,
      ready: true,
      notReady: [],
      pods: [{ namespace: 'app', name: 'client' }],
      pendingPods: 0,
      configGeneration: 3,
      clusterGeneration: 7,
      certificates: [{
        spiffeId: 'spiffe://cluster.local/ns/app/sa/client',
        serial: 'AB12',
        notAfter: '2026-12-08T03:00:40.000Z',
        expiresInSeconds: 40,
        expired: false,
        nextAttemptAt: '2026-12-08T03:00:04.000Z',
        lastAttempt: { at: '2026-12-08T02:59:58.000Z', ok: false },
        failures: { count: 5, since: '2026-12-08T02:59:30.000Z', code: 'FERRY_ERR_CA_UNAVAILABLE', error: 'CreateCertificate at 172.30.0.254:15012: UNAVAILABLE: No connection established' }
      }]
    },
    { node: 'node2', endpoint: 'node2 of lab demo', reachable: false, error: 'cannot connect (ECONNREFUSED)', ready: false, notReady: [], pods: [], pendingPods: 0, configGeneration: null, clusterGeneration: null, certificates: null }
  ]
}

t.test('the text shows each node, and a failing renewal with its count, start, error and the expiry it races', async (t) => {
  const text = formatMeshStatus(STATUS)
  t.match(text, /^NODE\s+READY\s+PODS\s+CONFIG GEN\s+CLUSTER GEN\s+NOTE$/m)
  t.match(text, /^node1\s+yes\s+1\s+3\s+7$/m)
  t.match(text, /^node2\s+\?\s+-\s+-\s+-\s+unreachable: cannot connect \(ECONNREFUSED\)$/m)
  t.match(text, /node1\s+spiffe:\/\/cluster\.local\/ns\/app\/sa\/client\s+AB12\s+2026-12-08T03:00:40\.000Z \(in 40s\)\s+2026-12-08T02:59:58\.000Z failed\s+FAILING: 5 failure\(s\) since 2026-12-08T02:59:30\.000Z, next 2026-12-08T03:00:04\.000Z, last FERRY_ERR_CA_UNAVAILABLE: CreateCertificate/)
})

t.test('an agent that does not answer is a row saying so', async (t) => {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  await new Promise<void>((resolve) => server.close(() => { resolve() }))
  const s = await readNodeStatus('n1', addressAgentEndpoint(`127.0.0.1:${port}`), { timeoutMs: 2000 })
  t.equal(s.reachable, false)
  t.match(s.error, /cannot connect \(ECONNREFUSED\)/)
  t.equal(s.certificates, null)
})

t.test('bad arguments', async (t) => {
  await t.rejects(statusCommand(['--output', 'yaml']), { code: 'FERRY_ERR_INVALID_ARG', message: /--output must be text or json/ })
  await t.rejects(statusCommand(['--timeout', 'soon']), { code: 'FERRY_ERR_INVALID_ARG' })
  await t.rejects(statusCommand(['--bogus']), { code: 'ERR_PARSE_ARGS_UNKNOWN_OPTION' })
})
