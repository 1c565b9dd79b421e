import t from 'tap'
import { createHash, randomBytes } from 'node:crypto'
import { createWriteStream, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pod } from '../helpers/lab'
import { uniqueLabName } from '../helpers/names'
import { jsonFrom, l7LabDown, l7LabUp, L7_LAB_UP_MS, runIn } from '../helpers/l7-lab'

// HTTP/1.1 through Ferry's L7 proxy, for real: the two-node lab of the L7 test programs
// (test/fixtures/apps/l7-lab.yaml, namespace `l7`: ferry.dev/l7 enabled), unmodified curl,
// a plain Node HTTP/1.1 server (http-echo-server.js, one pod on each node) and nginx (one
// pod on each node). Keep-alive requests on ONE client connection must be balanced per
// request over the endpoints on both nodes (an L4 proxy pins the connection to one);
// large bodies must pass whole both ways, chunked and with Expect: 100-continue; and an
// Upgrade to WebSocket must pass through as a tunnel.

const lab = uniqueLabName('l7prx')
const work = mkdtempSync(join(tmpdir(), 'ferry-l7-proxy-'))
const MiB = 1024 * 1024
const GiB = 1024 * MiB
/** Bounds on the large transfers: a proxy that stalls fails here, not at the suite's timeout. */
const UPLOAD_MS = 120_000
const DOWNLOAD_MS = 240_000

t.setTimeout(L7_LAB_UP_MS + UPLOAD_MS * 2 + DOWNLOAD_MS + 180_000)
t.before(async () => { await l7LabUp(lab) })
t.teardown(async () => {
  await l7LabDown(lab)
  rmSync(work, { recursive: true, force: true })
})

/**
 * curl of `urls` in ONE invocation (so one connection, reused for each URL), each body
 * thrown away; per transfer the status, how many connections it opened (0: reused) and
 * who answered.
 */
async function curlMany (urls: string[]): Promise<Array<{ status: number, connects: number, servedBy: string }>> {
  const args = ['curl', '-sS', '--max-time', '30', '-w', '%{http_code} %{num_connects} %header{x-served-by}\\n']
  for (const u of urls) args.push('-o', '/dev/null', u)
  const r = await runIn(lab, 'l7', 'client', args, 45_000)
  if (r.code !== 0) throw new Error(`curl exited ${r.code}: ${r.stderr}${r.stdout}`)
  return r.stdout.trim().split('\n').map((line) => {
    const [status, connects, servedBy] = line.split(' ')
    return { status: Number(status), connects: Number(connects), servedBy: servedBy ?? '' }
  })
}

const count = (xs: readonly string[]): Record<string, number> => xs.reduce<Record<string, number>>((m, x) => ({ ...m, [x]: (m[x] ?? 0) + 1 }), {})

t.test('curl: keep-alive requests on one connection are balanced over the Node servers on both nodes', async (t) => {
  const urls = Array.from({ length: 8 }, (_, i) => `http://http:8080/req-${i}`)
  const got = await curlMany(urls)
  t.equal(got.length, 8, 'a line per request')
  t.ok(got.every((g) => g.status === 200), `every answer 200 (${got.map((g) => g.status).join(',')})`)
  t.equal(got.reduce((n, g) => n + g.connects, 0), 1, 'one connection for all eight requests (curl reused it)')
  const servers = count(got.map((g) => g.servedBy))
  t.same(Object.keys(servers).sort(), ['http-a', 'http-b'], `answered by the pods on node1 and node2 (${JSON.stringify(servers)})`)
})

t.test('a Node keep-alive client: 20 requests on one socket, balanced over both nodes', async (t) => {
  const out = await jsonFrom(lab, 'l7', 'client', ['node', 'http-client.js', '--url', 'http://http:8080/who', '--requests', '20'])
  t.match(out, { ok: true, requests: 20, statuses: { 200: 20 }, connections: 1 }, JSON.stringify(out))
  t.same(Object.keys(out.servers).sort(), ['http-a', 'http-b'], `both pods answered (${JSON.stringify(out.servers)})`)
  t.ok(out.servers['http-a'] >= 5 && out.servers['http-b'] >= 5, 'round robin: each pod a fair share')
})

t.test('curl → nginx through Ferry: keep-alive requests balanced over the nginx pods on both nodes', async (t) => {
  const ipsOf = (name: string): string[] => pod(lab, 'l7', name).ips
  const who = (ip: string): string => ipsOf('nginx-a').includes(ip) ? 'nginx-a' : ipsOf('nginx-b').includes(ip) ? 'nginx-b' : `unknown ${ip}`
  const got = await curlMany(Array.from({ length: 8 }, (_, i) => `http://nginx/page-${i}`))
  t.ok(got.every((g) => g.status === 200), `every answer 200 (${got.map((g) => g.status).join(',')})`)
  t.equal(got.reduce((n, g) => n + g.connects, 0), 1, 'one client connection')
  const servers = count(got.map((g) => who(g.servedBy)))
  t.same(Object.keys(servers).sort(), ['nginx-a', 'nginx-b'], `both nginx pods answered (${JSON.stringify(servers)})`)
  const body = await runIn(lab, 'l7', 'client', ['curl', '-sS', '--max-time', '10', 'http://nginx/'])
  t.equal(body.code, 0, body.stderr)
  t.match(body.stdout, /^nginx \S+\n$/, 'nginx\'s own answer, unchanged')
})

/** A file of `bytes` random bytes in the test's directory (the pods share the host's filesystem), and its sha256. */
async function randomFile (name: string, bytes: number): Promise<{ path: string, sha256: string }> {
  const path = join(work, name)
  const hash = createHash('sha256')
  const out = createWriteStream(path)
  for (let off = 0; off < bytes; off += MiB) {
    const chunk = randomBytes(Math.min(MiB, bytes - off))
    hash.update(chunk)
    if (!out.write(chunk)) await new Promise<void>((resolve) => out.once('drain', () => resolve()))
  }
  await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => err == null ? resolve() : reject(err)))
  return { path, sha256: hash.digest('hex') }
}

t.test('uploads of 100 MiB arrive whole: chunked, and with Content-Length, both after Expect: 100-continue', async (t) => {
  const file = await randomFile('upload.bin', 100 * MiB)
  for (const [how, extra] of [['chunked', ['-H', 'Transfer-Encoding: chunked']], ['Content-Length', []]] as const) {
    // curl -T sends PUT with `Expect: 100-continue` for a body this large and waits for
    // the interim answer (or 1 s) before sending it: -v shows that it came.
    const r = await runIn(lab, 'l7', 'client', ['curl', '-sS', '-v', '--max-time', String(UPLOAD_MS / 1000), '-T', file.path, ...extra, 'http://http:8080/upload'], UPLOAD_MS + 10_000)
    t.equal(r.code, 0, `${how}: curl exited 0 (${r.stderr.slice(-500)})`)
    const answer = JSON.parse(r.stdout)
    t.match(answer, { received: 100 * MiB, sha256: file.sha256 }, `${how}: every byte arrived (answered by ${String(answer.server)}, ${(r.ms / 1000).toFixed(1)} s)`)
    t.match(r.stderr, /Expect: 100-continue/, `${how}: curl asked to continue`)
    t.match(r.stderr, /HTTP\/1\.1 100 Continue/, `${how}: and was told to`)
    if (how === 'chunked') t.match(r.stderr, /Transfer-Encoding: chunked/, 'the body went chunked')
  }
})

t.test('a 1 GiB chunked download arrives whole', async (t) => {
  // The expected digest of the server's pattern (test/fixtures/apps/pattern.js), computed here.
  const { patternChunk } = require('../fixtures/apps/pattern.js') as { patternChunk: (offset: number, length: number) => Buffer }
  const hash = createHash('sha256')
  for (let off = 0; off < GiB; off += 65536) hash.update(patternChunk(off, 65536))
  const want = hash.digest('hex')
  // The body through sha256sum; the headers (and the chunked body's trailers) to a file;
  // curl's status and byte count to stderr.
  const headers = join(work, 'download-headers.txt')
  const r = await runIn(lab, 'l7', 'client', ['sh', '-c',
    `curl -sS -D ${headers} -w '%{stderr}%{http_code} %{size_download}' --max-time ${DOWNLOAD_MS / 1000} 'http://http:8080/bytes?n=${GiB}' | sha256sum`], DOWNLOAD_MS + 10_000)
  const dumped = existsSync(headers) ? readFileSync(headers, 'utf8') : ''
  t.equal(r.code, 0, r.stderr.slice(-500))
  t.match(r.stderr, new RegExp(`200 ${GiB}$`), 'curl: 200, every byte counted')
  t.equal(r.stdout.split(' ')[0], want, `every byte, in order (${(r.ms / 1000).toFixed(1)} s, from ${/x-served-by: (\S+)/i.exec(dumped)?.[1] ?? '?'})`)
  t.match(dumped, /transfer-encoding: chunked/i, 'chunked')
  const trailer = /x-sha256: ([0-9a-f]{64})/i.exec(dumped)?.[1]
  if (trailer === undefined) t.comment('the server\'s x-sha256 trailer did not reach curl (a proxy may drop HTTP/1.1 trailers)')
  else t.equal(trailer, want, 'the server\'s trailer arrived and agrees')
})

t.test('a WebSocket echo passes through an L7 port (Upgrade as a tunnel)', async (t) => {
  const out = await jsonFrom(lab, 'l7', 'client', ['node', 'ws-client.js', '--url', 'ws://ws:8081/', '--count', '5', '--binary-bytes', String(MiB)])
  t.match(out, { ok: true, server: 'ws', echoed: 6, binaryBytes: MiB }, JSON.stringify(out))
})
