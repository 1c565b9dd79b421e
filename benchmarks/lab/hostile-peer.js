'use strict'
// A verified peer that tries to make a node hold as much as it can, for the `memory`
// benchmark (benchmarks/cases/memory.ts). Run in node1's network namespace, it obtains a
// genuine SVID for one of node1's pods from the lab's CA (with node1's token), then opens
// SESSIONS tunnel sessions to node2:15008, each with STREAMS CONNECT streams to AUTHORITY
// (a pod that never reads), and writes PER_STREAM_MIB into every stream as fast as node2
// lets it, reading nothing; refused streams are opened again (up to 3 times). It holds
// for HOLD_SECONDS, prints {"sessions","opened","refused","written"} and exits.
//
//   node hostile-peer.js DIST NODE_ADDR EXPECTED AUTHORITY ROOT_CERT CLIENT_ID CA_ADDR TOKEN_FILE SESSIONS STREAMS PER_STREAM_MIB HOLD_SECONDS
const { readFileSync } = require('node:fs')
const { join } = require('node:path')
const http2 = require('node:http2')
const tls = require('node:tls')
const [dist, nodeAddress, expected, authority, rootCertFile, clientId, caAddress, tokenFile, sessionsText, streamsText, perStreamText, holdText] = process.argv.slice(2)
const need = (p) => require(join(dist, 'src', p))
const { generateWorkloadKey } = need('identity/keys.js')
const { createCsr } = need('identity/csr.js')
const { parseSpiffeId } = need('identity/spiffe-id.js')
const { svidFromChain } = need('identity/svid.js')
const { CaClient, tokenFromFile } = need('identity/ca-client.js')
const { tunnelClientOptions } = need('identity/tls-options.js')
const { sniOf } = need('tunnel/sni.js')

const SESSIONS = Math.min(Number(sessionsText), 50)
const STREAMS = Math.min(Number(streamsText), 100)
const PER_STREAM = Math.min(Number(perStreamText), 64) * 1024 * 1024
const HOLD_MS = Math.min(Number(holdText), 60) * 1000
const CHUNK = Buffer.alloc(64 * 1024, 0x61)
const stats = { sessions: 0, opened: 0, refused: 0, written: 0 }

async function labSvid (id, labRoot) {
  const client = new CaClient({ address: caAddress, caRootsPem: labRoot, token: tokenFromFile(tokenFile), callTimeoutMs: 5000 })
  try {
    const key = await generateWorkloadKey()
    return svidFromChain(await client.createCertificate(await createCsr(key, id), 600), key, id, Date.now())
  } finally {
    client.close()
  }
}

function session (svid) {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ ...tunnelClientOptions(svid), host: nodeAddress, port: 15008, servername: sniOf(expected) })
    socket.once('error', reject)
    socket.once('secureConnect', () => {
      const h2 = http2.connect(`https://${nodeAddress}:15008`, { createConnection: () => socket })
      h2.on('error', () => {})
      stats.sessions++
      resolve(h2)
    })
  })
}

function stream (h2, retries) {
  if (h2.closed || h2.destroyed) return
  const s = h2.request({ ':method': 'CONNECT', ':authority': authority }, { endStream: false })
  s.on('error', () => {})
  let sent = 0
  const write = () => {
    while (sent < PER_STREAM && !s.destroyed) {
      sent += CHUNK.length
      stats.written += CHUNK.length
      if (!s.write(CHUNK)) { s.once('drain', write); return }
    }
  }
  s.once('response', (headers) => { if (headers[':status'] === 200) { stats.opened++; write() } })
  s.once('close', () => {
    if (s.rstCode !== http2.constants.NGHTTP2_REFUSED_STREAM) return
    stats.refused++
    if (retries > 0) setTimeout(() => stream(h2, retries - 1), 100)
  })
}

;(async () => {
  const labRoot = readFileSync(rootCertFile, 'utf8')
  const svid = await labSvid(parseSpiffeId(clientId), labRoot)
  const sessions = []
  for (let i = 0; i < SESSIONS; i++) sessions.push(await session(svid))
  for (const h2 of sessions) for (let i = 0; i < STREAMS; i++) stream(h2, 3)
  await new Promise((resolve) => setTimeout(resolve, HOLD_MS))
  process.stdout.write(JSON.stringify(stats) + '\n')
  for (const h2 of sessions) h2.destroy()
  process.exit(0)
})().catch((err) => { process.stdout.write(JSON.stringify({ error: String(err && err.stack) }) + '\n'); process.exit(1) })
