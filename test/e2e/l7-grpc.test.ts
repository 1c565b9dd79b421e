import t from 'tap'
import { uniqueLabName } from '../helpers/names'
import { jsonFrom, jsonLinesFrom, l7LabDown, l7LabUp, L7_LAB_UP_MS } from '../helpers/l7-lab'

// gRPC through Ferry's L7 proxy, for real: the two-node lab of the L7 test programs
// (test/fixtures/apps/l7-lab.yaml), the client pod on node1, the servers on node2 — an
// @grpc/grpc-js server (Service grpc-node, declared by appProtocol: grpc) and Debian's
// python3-grpcio one (Service grpc-py, declared by the port name grpc-echo) — called by
// the @grpc/grpc-js client and the python3-grpcio client, every pair. Every kind of call
// (unary, server-, client-, bidi-streaming) must come back as the server sent it: the
// replies, the status code and message, and the trailing metadata, also when the call
// fails. HTTP/2 stays HTTP/2 end to end, so trailers and streams survive both proxies;
// and the calls of one channel (one HTTP/2 connection) to a Service with a server on each
// node (grpc-pool) are balanced call by call.

const lab = uniqueLabName('l7grpc')
const CLIENTS = {
  node: ['node', 'grpc-client.js'],
  python: ['/usr/bin/python3', 'grpc_client.py']
} as const
const SERVERS = {
  node: { target: 'grpc-node:50051', pod: 'grpc-node' },
  python: { target: 'grpc-py:50052', pod: 'grpc-py' }
} as const

t.setTimeout(L7_LAB_UP_MS + 600_000)
t.before(async () => { await l7LabUp(lab) })
t.teardown(async () => { await l7LabDown(lab) })

for (const [serverName, server] of Object.entries(SERVERS)) {
  for (const [clientName, client] of Object.entries(CLIENTS)) {
    t.test(`${clientName} client (node1) → ${serverName} server (node2): every kind of call, its status and trailers`, async (t) => {
      const call = async (method: string, extra: string[] = []): Promise<any> =>
        await jsonFrom(lab, 'l7', 'client', [...client, '--target', server.target, '--method', method, ...extra], 60_000)

      t.match(await call('unary', ['--message', 'hi', '--metadata', 'x-test=1', '--trailer', 'k=v']),
        { code: 0, trailers: { k: 'v' }, replies: [{ message: 'hi', seq: 1, server: server.pod, metadata: { 'x-test': '1' } }] },
        'unary: the reply, the request\'s metadata as the server saw it, the trailers')
      t.match(await call('unary', ['--status', '7', '--status-message', 'no way', '--trailer', 'why=because']),
        { code: 7, details: 'no way', trailers: { why: 'because' }, replies: [] },
        'unary that fails: status 7, its message and trailing metadata preserved')
      t.match(await call('unary', ['--status', '14', '--status-message', 'try later']),
        { code: 14, details: 'try later', replies: [] }, 'unary ending UNAVAILABLE from the server is the server\'s, not the proxy\'s')

      const stream = await call('server-stream', ['--count', '4', '--payload-bytes', '100000', '--status', '5', '--status-message', 'gone', '--trailer', 'a=b'])
      t.match(stream, { code: 5, details: 'gone', trailers: { a: 'b' } }, 'server stream ends with its status and trailers')
      t.same(stream.replies.map((r: any) => [r.seq, r.payloadBytes]), [[1, 100000], [2, 100000], [3, 100000], [4, 100000]], 'every streamed reply, in order, before the status')

      // 16 MiB in 256 KiB messages: the proxies must honour HTTP/2 flow control both ways.
      const big = await call('server-stream', ['--count', '64', '--payload-bytes', String(256 * 1024)])
      t.equal(big.code, 0, `a 16 MiB server stream ends OK (${String(big.details)})`)
      t.same(big.replies.map((r: any) => r.seq), Array.from({ length: 64 }, (_, i) => i + 1), 'all 64 replies, in order')
      t.ok(big.replies.every((r: any) => r.payloadBytes === 256 * 1024), 'each whole')

      t.match(await call('client-stream', ['--messages', 'a,b,c', '--trailer', 't=1']),
        { code: 0, trailers: { t: '1' }, replies: [{ message: 'a,b,c', seq: 3 }] }, 'client stream: every request arrived, one reply')
      t.match(await call('client-stream', ['--messages', 'a,b', '--status', '3', '--status-message', 'bad input', '--trailer', 'field=b']),
        { code: 3, details: 'bad input', trailers: { field: 'b' } }, 'client stream that fails: INVALID_ARGUMENT with its trailers')

      const bidi = await call('bidi', ['--messages', 'x,y,z', '--payload-bytes', '70000', '--trailer', 'c=d'])
      t.match(bidi, { code: 0, trailers: { c: 'd' } }, 'bidi ends OK with its trailers')
      t.same(bidi.replies.map((r: any) => [r.message, r.seq, r.payloadBytes]), [['x', 1, 70000], ['y', 2, 70000], ['z', 3, 70000]], 'bidi echoes each message')
      t.match(await call('bidi', ['--messages', 'x,y', '--status', '9', '--status-message', 'stop', '--trailer', 'e=f']),
        { code: 9, details: 'stop', trailers: { e: 'f' }, replies: [{ message: 'x' }] }, 'bidi ends early with FAILED_PRECONDITION and its trailers')

      // Many calls on one channel: one HTTP/2 connection from the client, streams on it.
      const repeated = await jsonLinesFrom(lab, 'l7', 'client', [...client, '--target', server.target, '--method', 'unary', '--repeat', '20', '--message', 'again'], 60_000)
      t.equal(repeated.length, 20, '20 calls on one channel')
      t.ok(repeated.every((r) => r.code === 0 && r.replies[0]?.message === 'again'), 'each answered OK')
    })
  }
}

for (const [clientName, client] of Object.entries(CLIENTS)) {
  t.test(`${clientName} client: calls on ONE channel are balanced per call over the servers on both nodes`, async (t) => {
    // grpc-pool: the Node servers on node1 (grpc-node-a) and node2 (grpc-node). A gRPC
    // client keeps one HTTP/2 connection per channel; an L4 proxy pins it to one server.
    const calls = await jsonLinesFrom(lab, 'l7', 'client', [...client, '--target', 'grpc-pool:50051', '--method', 'unary', '--repeat', '12', '--message', 'who'], 60_000)
    t.equal(calls.length, 12, '12 calls')
    t.ok(calls.every((c) => c.code === 0), `each OK (${calls.map((c) => c.code).join(',')})`)
    const servers = calls.reduce<Record<string, number>>((m, c) => ({ ...m, [c.replies[0]?.server]: (m[c.replies[0]?.server] ?? 0) + 1 }), {})
    t.same(Object.keys(servers).sort(), ['grpc-node', 'grpc-node-a'], `both nodes' servers answered (${JSON.stringify(servers)})`)
  })
}
