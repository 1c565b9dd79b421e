import t from 'tap'
import { join } from 'node:path'
import { REPO, ferry, ferryOk } from '../helpers/cli'
import { agentGet } from '../helpers/agent-admin'
import { execInPod } from '../helpers/lab'
import { uniqueLabName } from '../helpers/names'

// The L7 test programs in pods of a two-node lab (test/fixtures/apps/l7-lab.yaml): the
// client on node1 reaches each server on node2 through Ferry, by Service name, and the
// node agents explain, in /debug/config and `ferry policy check --lab`, that L7 applies
// to each Service port in the protocol its Service declares (gRPC from appProtocol and
// from a port-name prefix, WebSocket's HTTP/1.1, detect for the server-first greeter).
// Guards the manifest the L7 end-to-end tests start from, and the L7 explanations as a
// lab agent gives them.

const lab = uniqueLabName('l7prog')
const MANIFEST = join(REPO, 'test/fixtures/apps/l7-lab.yaml')

t.setTimeout(300_000)
t.before(async () => { await ferryOk(['lab', 'up', '--name', lab, MANIFEST], { timeoutMs: 200_000 }) })
t.teardown(async () => { await ferry(['lab', 'down', lab], { timeoutMs: 60_000 }) })

async function inClient (cmd: string[]): Promise<any> {
  const r = await execInPod(lab, 'l7', 'client', cmd)
  if (r.code !== 0) throw new Error(`${cmd.join(' ')} exited ${r.code}: ${r.stderr}${r.stdout}`)
  return JSON.parse(r.stdout.trim().split('\n')[0])
}

t.test('each program answers across the nodes through Ferry', async (t) => {
  t.match(await inClient(['node', 'grpc-client.js', '--target', 'grpc-node:50051', '--method', 'bidi', '--messages', 'a,b', '--trailer', 'k=v']),
    { code: 0, trailers: { k: 'v' }, replies: [{ message: 'a', server: 'grpc-node' }, { message: 'b' }] }, 'Node gRPC client → Node server')
  t.match(await inClient(['/usr/bin/python3', 'grpc_client.py', '--target', 'grpc-node:50051', '--method', 'unary', '--status', '7', '--status-message', 'no']),
    { code: 7, details: 'no' }, 'Python gRPC client → Node server')
  t.match(await inClient(['node', 'grpc-client.js', '--target', 'grpc-py:50052', '--method', 'server-stream', '--count', '3']),
    { code: 0, replies: [{ seq: 1, server: 'grpc-py' }, { seq: 2 }, { seq: 3 }] }, 'Node gRPC client → Python server')
  t.match(await inClient(['node', 'greeter-client.js', '--host', 'greeter', '--port', '2525']), { ok: true, banner: '220 greeter ready' }, 'server-first greeter')
  t.match(await inClient(['node', 'ws-client.js', '--url', 'ws://ws:8081/']), { ok: true, server: 'ws', echoed: 6 }, 'WebSocket echo')
  t.match(await inClient(['node', 'http-client.js', '--url', 'http://http:8080/', '--requests', '4']), { ok: true, statuses: { 200: 4 } }, 'HTTP/1.1 keep-alive')
})

t.test('the agents say where L7 applies and in which protocol', async (t) => {
  const node2 = (await agentGet(lab, 'node2', '/debug/config')).body.l7
  const svc = (name: string): any => node2.services.find((s: any) => s.service === `l7/${name}`)
  t.match(svc('grpc-node'), { engaged: true, protocol: 'grpc', reason: /label ferry\.dev\/l7=enabled on namespace l7; protocol grpc \(appProtocol "grpc"\)/ })
  t.match(svc('grpc-py'), { engaged: true, protocol: 'grpc', reason: /port name "grpc-echo"/ })
  t.match(svc('ws'), { engaged: true, protocol: 'http1' })
  t.match(svc('greeter'), { engaged: true, protocol: 'detect' })
  t.match(svc('http'), { engaged: true, protocol: 'http1' })
  t.match(svc('nginx'), { engaged: true, protocol: 'http1' })
  t.match(svc('redis'), { engaged: true, protocol: 'detect' })
  t.match(node2.services.find((s: any) => s.service === 'l4/greeter'), { engaged: false }, 'namespace l4 does not ask for L7')
  const pods = new Set(node2.workloads.map((w: any) => w.pod))
  t.same([...pods].sort(), ['l4/greeter-l4', 'l4/redis-l4', 'l7/greeter', 'l7/grpc-node', 'l7/grpc-py', 'l7/http-b', 'l7/nginx-b', 'l7/redis', 'l7/ws'], 'node2 lists its own pods')
  t.match(node2.workloads.find((w: any) => w.pod === 'l7/grpc-py' && w.port === 50052), { engaged: true, protocol: 'grpc', reason: /service l7\/grpc-py port 50052: port name "grpc-echo"/ })

  const check = await ferry(['policy', 'check', '--lab', lab, '--node', 'node2', '--from', 'l7/client', '--to', 'l7/grpc-node:50051'])
  t.equal(check.code, 0, check.stderr)
  t.match(check.stdout, /source: service l7\/grpc-node port 50051: L7 engaged, grpc .*\n {2}destination: pod l7\/grpc-node port 50051: L7 engaged, grpc/)
})
