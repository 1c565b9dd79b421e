import { Agent, createServer, request, type IncomingMessage, type ServerResponse } from 'node:http'
import { connect as h2connect, createServer as h2server, type ClientHttp2Session } from 'node:http2'
import t from 'tap'
import type { RouteResult } from '../../src/routing/model'
import { startEngine, type Teardown } from '../helpers/http-harness'
import { edits, ruleNamed, testPlan, type PlanLog } from '../helpers/plans'

// A route carried out by the engine, HTTP/1.1 and HTTP/2: local answers (404 NR,
// redirect, fault abort FI), a plan's rewrite and header edits both ways, the fault delay
// (DI), mirrors; the record's route name and attempt count.

/** An HTTP/1.1 (or h2c) server that answers with what it received; `host` is the Host or :authority. */
async function echo (t: Teardown, name: string, seen: Array<{ url: string, headers: IncomingMessage['headers'], body: string }> = [], version: 'http1' | 'http2' = 'http1'): Promise<number> {
  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    let body = ''
    req.setEncoding('utf8')
    req.on('data', (c: string) => { body += c })
    req.on('end', () => {
      if (req.headers.host === undefined) req.headers.host = req.headers[':authority'] as string
      seen.push({ url: req.url ?? '', headers: req.headers, body })
      res.setHeader('x-served-by', name)
      res.setHeader('x-drop-me', 'yes')
      res.end(JSON.stringify({ name, url: req.url, headers: req.headers, body }))
    })
  }
  const server = version === 'http2' ? h2server(handler as any) : createServer(handler)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const sessions = new Set<any>()
  server.on('session', (s: any) => { sessions.add(s) })
  t.teardown(async () => {
    if ('closeAllConnections' in server) server.closeAllConnections()
    for (const s of sessions) s.destroy()
    await new Promise((resolve) => server.close(resolve))
  })
  return (server.address() as { port: number }).port
}

function get (port: number, path: string, opts: { method?: string, body?: string, headers?: Record<string, string> } = {}): Promise<{ status: number, headers: IncomingMessage['headers'], body: any }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method: opts.method ?? 'GET', headers: opts.headers, agent: new Agent() }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => { text += c })
      res.on('end', () => {
        let body: any = text
        try { body = JSON.parse(text) } catch {}
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body })
      })
    })
    req.on('error', reject)
    req.end(opts.body)
  })
}

function h2get (t: Teardown, port: number, headers: Record<string, string>): Promise<{ headers: Record<string, unknown>, body: string }> {
  const s: ClientHttp2Session = h2connect(`http://127.0.0.1:${port}`)
  t.teardown(() => { s.close() })
  return new Promise((resolve, reject) => {
    const st = s.request({ ':method': 'GET', ...headers }, { endStream: true })
    let h: Record<string, unknown> = {}
    let body = ''
    st.setEncoding('utf8')
    st.on('response', (rh) => { h = rh })
    st.on('data', (c: string) => { body += c })
    st.on('end', () => { resolve({ headers: h, body }) })
    st.on('error', reject)
  })
}

for (const version of ['http1', 'http2'] as const) {
  t.test(`${version}: local answers — no route 404 NR, redirect, fault abort FI`, async (t) => {
    const a = await echo(t, 'a')
    const answers: RouteResult[] = [
      { kind: 'not_found', routes: { kind: 'HTTPRoute', objects: [], entries: [] } },
      { kind: 'redirect', rule: ruleNamed('HTTPRoute test/r rule 1'), status: 301, location: 'http://elsewhere.example/moved' },
      { kind: 'abort', rule: ruleNamed('VirtualService test/v rule 0'), httpStatus: 418, grpcStatus: null, flag: 'FI' }
    ]
    let i = 0
    const fx = await startEngine(t, { version, endpoints: [a], route: () => answers[i++] })
    const results = version === 'http1'
      ? [await get(fx.port, '/x'), await get(fx.port, '/y'), await get(fx.port, '/z')].map((r) => ({ status: r.status, location: r.headers.location, body: r.body }))
      : await (async () => {
        const out = []
        for (const p of ['/x', '/y', '/z']) {
          const r = await h2get(t, fx.port, { ':path': p })
          out.push({ status: r.headers[':status'], location: r.headers.location, body: r.body })
        }
        return out
      })()
    t.match(results, [{ status: 404, body: 'route not found' }, { status: 301, location: 'http://elsewhere.example/moved', body: '' }, { status: 418, body: 'fault filter abort' }])
    t.match(fx.records.map((r) => [r.responseCode, r.responseFlags, r.routeName ?? null, r.upstream]), [[404, 'NR', null, null], [301, '-', 'HTTPRoute test/r rule 1', null], [418, 'FI', 'VirtualService test/v rule 0', null]])
  })

  t.test(`${version}: a plan's rewrite, request and response header edits, route name and attempts on the record`, async (t) => {
    const seen: Array<{ url: string, headers: IncomingMessage['headers'], body: string }> = []
    const a = await echo(t, 'a', seen, version)
    const fx = await startEngine(t, {
      version,
      endpoints: [],
      route: (view, record) => {
        t.equal(view.query, 'q=1&r=2', 'routing sees the raw query')
        t.equal(view.path, '/old/path', 'and the path without it')
        return {
          kind: 'forward',
          plan: testPlan({
            ports: [a],
            path: '/new/path?q=1&r=2',
            authority: 'rewritten.example',
            requestHeaders: [edits({ set: [['x-set', 'one']], add: [['x-add', 'more']], remove: ['x-gone'] }), edits({ set: [['x-second', 'b']] })],
            responseHeaders: [edits({ set: [['x-resp', 'added']], remove: ['x-drop-me'] })]
          }, record).plan
        }
      }
    })
    const headers = { 'x-set': 'zero', 'x-add': 'first', 'x-gone': 'bye' }
    const r = version === 'http1'
      ? await get(fx.port, '/old/path?q=1&r=2', { headers })
      : await h2get(t, fx.port, { ':path': '/old/path?q=1&r=2', ...headers }).then((x) => ({ status: x.headers[':status'], headers: x.headers as any, body: JSON.parse(x.body) }))
    t.equal(r.status, 200)
    t.equal(seen[0].url, '/new/path?q=1&r=2', 'path rewritten')
    t.equal(seen[0].headers.host, 'rewritten.example', 'authority rewritten')
    t.equal(seen[0].headers['x-set'], 'one')
    t.equal(seen[0].headers['x-add'], 'first,more')
    t.equal(seen[0].headers['x-gone'], undefined)
    t.equal(seen[0].headers['x-second'], 'b')
    t.equal(r.headers['x-resp'], 'added')
    t.equal(r.headers['x-drop-me'], undefined)
    t.equal(r.headers['x-served-by'], 'a')
    t.match(fx.records[0], { responseCode: 200, responseFlags: '-', routeName: 'HTTPRoute test/route rule 0', attempts: 1, path: '/new/path?q=1&r=2', upstream: { port: a } })
  })
}

t.test('fault delay: the request waits plan.delayMs before its first attempt (flag DI)', async (t) => {
  const a = await echo(t, 'a')
  const fx = await startEngine(t, { version: 'http1', endpoints: [], route: (_v, record) => ({ kind: 'forward', plan: testPlan({ ports: [a], delayMs: 300 }, record).plan }) })
  const t0 = Date.now()
  const r = await get(fx.port, '/')
  const took = Date.now() - t0
  t.equal(r.status, 200)
  t.ok(took >= 290, `delayed ${took} ms`)
  t.equal(fx.records[0].responseFlags, 'DI')
})

t.test('no endpoint for the plan: 503 UH; its pool is full: 503 UO "upstream overflow"', async (t) => {
  let refuse: 'UH' | 'UO' = 'UH'
  const fx = await startEngine(t, { version: 'http1', endpoints: [], route: (_v, record) => ({ kind: 'forward', plan: testPlan({ ports: [1], refuse }, record).plan }) })
  const r1 = await get(fx.port, '/')
  refuse = 'UO'
  const r2 = await get(fx.port, '/')
  t.match([r1.status, r1.body, r2.status, r2.body], [503, 'no healthy upstream', 503, 'upstream overflow'])
  t.match(fx.records.map((r) => r.responseFlags), ['UH', 'UO'])
})

t.test('mirrors: a copy with the body goes to the mirror (authority "-shadow"), its answer dropped; a body over 64 KiB is not mirrored', async (t) => {
  const seenMain: Array<{ url: string, headers: IncomingMessage['headers'], body: string }> = []
  const seenMirror: Array<{ url: string, headers: IncomingMessage['headers'], body: string }> = []
  const a = await echo(t, 'a', seenMain)
  const m = await echo(t, 'mirror', seenMirror)
  const logs: PlanLog[] = []
  const fx = await startEngine(t, {
    version: 'http1',
    endpoints: [],
    route: (_v, record) => {
      const p = testPlan({ ports: [a], mirrors: [m], requestHeaders: [edits({ set: [['x-edited', '1']] })] }, record)
      logs.push(p.log)
      return { kind: 'forward', plan: p.plan }
    }
  })
  const r = await get(fx.port, '/m', { method: 'POST', body: 'hello mirror', headers: { host: 'svc.test:8080', 'content-type': 'text/plain' } })
  t.equal(r.body.name, 'a')
  await new Promise((resolve) => setTimeout(resolve, 200))
  t.equal(seenMirror.length, 1)
  t.match(seenMirror[0], { url: '/m', body: 'hello mirror', headers: { host: 'svc.test-shadow:8080', 'x-edited': '1' } })
  const big = 'x'.repeat(100 * 1024)
  const r2 = await get(fx.port, '/big', { method: 'POST', body: big })
  t.equal(r2.status, 200)
  t.equal(seenMain[1].body.length, big.length, 'the request itself gets its whole body')
  await new Promise((resolve) => setTimeout(resolve, 200))
  t.equal(seenMirror.length, 1, 'no copy of a body that was not held whole')
  t.same(logs[1].mirrored, [])
})
