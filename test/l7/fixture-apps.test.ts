import t, { type Test } from 'tap'
import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { request } from 'node:http'
import { join } from 'node:path'
import { createInterface } from 'node:readline'

// The programs L7 tests run in pods (test/fixtures/apps/), each checked here directly on
// loopback, without Ferry: what they print is what the mesh tests compare against, so a
// broken program must fail here rather than look like a proxy bug there.

const APPS = join(__dirname, '..', 'fixtures', 'apps')
const PYTHON = '/usr/bin/python3' // Debian's, with python3-grpcio
const { patternChunk } = require(join(APPS, 'pattern.js')) as { patternChunk: (offset: number, length: number) => Buffer }

/** Starts a server program with --port 0 and resolves with the port it printed. */
async function serve (t: Test, command: string, args: string[], env: Record<string, string> = {}): Promise<number> {
  const child: ChildProcess = spawn(command, [...args, '--port', '0'], { env: { ...process.env, POD_NAME: 'pod-under-test', ...env }, stdio: ['ignore', 'pipe', 'inherit'] })
  t.teardown(() => { child.kill('SIGKILL') })
  const lines = createInterface({ input: child.stdout! })
  return await new Promise((resolve, reject) => {
    const timer = setTimeout(() => { reject(new Error(`${args[0]}: not listening after 20 s`)) }, 20_000)
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`${args[0]} exited ${String(code)}`)) })
    lines.on('line', (line) => {
      const event = JSON.parse(line)
      if (event.event === 'listening') { clearTimeout(timer); resolve(event.port) }
    })
  })
}

/** Runs a client program; resolves with its JSON lines. */
async function run (command: string, args: string[]): Promise<any[]> {
  return await new Promise((resolve, reject) => {
    execFile(command, args, { timeout: 60_000, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (err !== null && stdout === '') { reject(new Error(`${args[0]}: ${err.message}\n${stderr}`)); return }
      resolve(stdout.trim().split('\n').map((l) => JSON.parse(l)))
    })
  })
}

const NODE_SERVER = [process.execPath, [join(APPS, 'grpc-server.js')]] as const
const PY_SERVER = [PYTHON, [join(APPS, 'grpc_server.py')]] as const
const NODE_CLIENT = [process.execPath, [join(APPS, 'grpc-client.js')]] as const
const PY_CLIENT = [PYTHON, [join(APPS, 'grpc_client.py')]] as const

for (const [serverName, [sCmd, sArgs]] of [['node', NODE_SERVER], ['python', PY_SERVER]] as const) {
  t.test(`gRPC: ${serverName} server, Node and Python clients agree on every kind of call, status and trailer`, async (t) => {
    const port = await serve(t, sCmd, [...sArgs])
    for (const [clientName, [cCmd, cArgs]] of [['node', NODE_CLIENT], ['python', PY_CLIENT]] as const) {
      const call = async (method: string, extra: string[] = []): Promise<any> => (await run(cCmd, [...cArgs, '--target', `127.0.0.1:${port}`, '--method', method, ...extra]))[0]
      const who = `${clientName} → ${serverName}`
      t.match(await call('unary', ['--message', 'hi', '--metadata', 'x-test=1', '--trailer', 'k=v']), { code: 0, trailers: { k: 'v' }, replies: [{ message: 'hi', seq: 1, server: 'pod-under-test', metadata: { 'x-test': '1' } }] }, `${who}: unary`)
      const unaryFail = await call('unary', ['--status', '7', '--status-message', 'no way', '--trailer', 'why=because'])
      t.match(unaryFail, { code: 7, details: 'no way', trailers: { why: 'because' }, replies: [] }, `${who}: unary ends with the status, message and trailers asked for`)
      const stream = await call('server-stream', ['--count', '4', '--payload-bytes', '100000', '--status', '5', '--status-message', 'gone', '--trailer', 'a=b'])
      t.match(stream, { code: 5, details: 'gone', trailers: { a: 'b' } }, `${who}: server stream status`)
      t.same(stream.replies.map((r: any) => [r.seq, r.payloadBytes]), [[1, 100000], [2, 100000], [3, 100000], [4, 100000]], `${who}: every streamed reply before the status`)
      t.match(await call('client-stream', ['--messages', 'a,b,c', '--trailer', 't=1']), { code: 0, trailers: { t: '1' }, replies: [{ message: 'a,b,c', seq: 3 }] }, `${who}: client stream`)
      const bidi = await call('bidi', ['--messages', 'x,y,z', '--payload-bytes', '70000'])
      t.same(bidi.replies.map((r: any) => [r.message, r.seq, r.payloadBytes]), [['x', 1, 70000], ['y', 2, 70000], ['z', 3, 70000]], `${who}: bidi echoes each message`)
      t.match(await call('bidi', ['--messages', 'x,y', '--status', '9', '--status-message', 'stop', '--trailer', 'c=d']), { code: 9, details: 'stop', trailers: { c: 'd' }, replies: [{ message: 'x' }] }, `${who}: bidi ends early with a status`)
      const repeated = await run(cCmd, [...cArgs, '--target', `127.0.0.1:${port}`, '--method', 'unary', '--repeat', '3'])
      t.equal(repeated.length, 3, `${who}: --repeat makes that many calls, one line each`)
    }
  })
}

t.test('WebSocket: echo of text and a 1 MiB binary message, and the server says who it is', async (t) => {
  const port = await serve(t, process.execPath, [join(APPS, 'ws-echo-server.js')])
  const [out] = await run(process.execPath, [join(APPS, 'ws-client.js'), '--url', `ws://127.0.0.1:${port}/`, '--count', '5', '--binary-bytes', String(1 << 20)])
  t.match(out, { ok: true, server: 'pod-under-test', echoed: 6, binaryBytes: 1 << 20 })
})

t.test('server-first greeter: the banner comes before the client sends anything, then lines are echoed', async (t) => {
  const port = await serve(t, process.execPath, [join(APPS, 'greeter-server.js')])
  const [out] = await run(process.execPath, [join(APPS, 'greeter-client.js'), '--host', '127.0.0.1', '--port', String(port), '--lines', '3'])
  t.match(out, { ok: true, banner: '220 pod-under-test ready', echoes: ['echo: line 1', 'echo: line 2', 'echo: line 3'] })
  t.type(out.bannerMs, 'number')
})

t.test('HTTP/1.1 echo: who answered, keep-alive on one connection, large bodies both ways', async (t) => {
  const port = await serve(t, process.execPath, [join(APPS, 'http-echo-server.js')])
  const [ka] = await run(process.execPath, [join(APPS, 'http-client.js'), '--url', `http://127.0.0.1:${port}/whoami`, '--requests', '10'])
  t.match(ka, { ok: true, requests: 10, statuses: { 200: 10 }, servers: { 'pod-under-test': 10 }, connections: 1 })

  const size = 8 * 1024 * 1024 + 13
  const expected = createHash('sha256')
  for (let off = 0; off < size; off += 65536) expected.update(patternChunk(off, Math.min(65536, size - off)))
  const want = expected.digest('hex')
  for (const length of ['0', '1']) {
    const got = await new Promise<{ sha: string, bytes: number, trailer: string | undefined, chunked: boolean }>((resolve, reject) => {
      request({ host: '127.0.0.1', port, path: `/bytes?n=${size}&length=${length}` }, (res) => {
        const h = createHash('sha256')
        let bytes = 0
        res.on('data', (c: Buffer) => { h.update(c); bytes += c.length })
        res.on('end', () => { resolve({ sha: h.digest('hex'), bytes, trailer: res.trailers['x-sha256'], chunked: res.headers['transfer-encoding'] === 'chunked' }) })
      }).on('error', reject).end()
    })
    t.match(got, { sha: want, bytes: size, chunked: length === '0' }, `download ${length === '1' ? 'with Content-Length' : 'chunked'}: every byte`)
    if (length === '0') t.equal(got.trailer, want, 'the chunked download ends with its sha256 as a trailer')
  }

  const upload = await new Promise<any>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method: 'POST', path: '/upload', headers: { expect: '100-continue' } }, (res) => {
      let text = ''
      res.on('data', (c) => { text += String(c) })
      res.on('end', () => { resolve(JSON.parse(text)) })
    })
    req.on('error', reject)
    req.on('continue', () => {
      let off = 0
      const next = (): void => {
        while (off < size) {
          const chunk = patternChunk(off, Math.min(65536, size - off))
          off += chunk.length
          if (!req.write(chunk)) { req.once('drain', next); return }
        }
        req.end()
      }
      next()
    })
  })
  t.match(upload, { server: 'pod-under-test', received: size, sha256: want }, 'chunked upload with Expect: 100-continue: every byte')
})
