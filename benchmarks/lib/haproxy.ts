import { type ChildProcess, spawn } from 'node:child_process'
import { mkdirSync, openSync, closeSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { execOk, sleep } from './exec'
import type { Lab } from './lab'

// The peer: the same cross-node two-hop mutual-TLS path built from HAProxy, run in the
// node namespaces of the no-mesh lab:
//
//   client pod ──TCP──▶ haproxy node1 (OUT_PORT) ══mTLS 1.3══▶ haproxy node2 (TLS_PORT) ──TCP──▶ server pod
//
// Configured as HAProxy's documentation recommends for this job: TLS 1.3 only, ECDSA
// P-256 certificates from one throwaway CA, client certificates required and verified
// (and the server's name), TLS session reuse on (HAProxy's default on `server` lines;
// tickets on `bind`), one thread per core, mode tcp. Same cipher suites as Ferry's Node
// (OpenSSL's TLS 1.3 default list).

export const OUT_PORT = 18080
export const TLS_PORT = 18443
const SUITES = 'TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256'

export interface Peer {
  readonly pids: number[]
  /** Where the client pod connects. */
  readonly url: (path: string) => string
  stop: () => Promise<void>
}

async function openssl (args: string[]): Promise<void> { await execOk('openssl', args, { timeoutMs: 30_000 }) }

/** A CA and two leaf certificates (ECDSA P-256), written as HAProxy's combined PEMs. */
async function makeCerts (dir: string): Promise<void> {
  const p = (f: string): string => join(dir, f)
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes']
  await openssl(['req', '-x509', ...ec, '-keyout', p('ca.key'), '-out', p('ca.pem'), '-days', '2', '-subj', '/CN=bench-ca'])
  for (const name of ['node1', 'node2']) {
    await openssl(['req', ...ec, '-keyout', p(`${name}.key`), '-out', p(`${name}.csr`), '-subj', `/CN=${name}.bench`])
    writeFileSync(p(`${name}.ext`), `subjectAltName=DNS:${name}.bench\nextendedKeyUsage=serverAuth,clientAuth\n`)
    await openssl(['x509', '-req', '-in', p(`${name}.csr`), '-CA', p('ca.pem'), '-CAkey', p('ca.key'), '-CAcreateserial', '-days', '2', '-extfile', p(`${name}.ext`), '-out', p(`${name}.crt`)])
    await execOk('sh', ['-c', `cat "${p(`${name}.crt`)}" "${p(`${name}.key`)}" > "${p(`${name}.pem`)}"`], { timeoutMs: 5000 })
  }
}

function globalSection (threads: number): string {
  return `global
  nbthread ${threads}
  maxconn 8000
  ssl-default-bind-options ssl-min-ver TLSv1.3
  ssl-default-bind-ciphersuites ${SUITES}
  ssl-default-server-options ssl-min-ver TLSv1.3
  ssl-default-server-ciphersuites ${SUITES}
  tune.ssl.cachesize 20000
defaults
  mode tcp
  timeout connect 5s
  timeout client 300s
  timeout server 300s
  maxconn 8000
`
}

export function clientSideConfig (dir: string, threads: number, listen: string, node2: string): string {
  return `${globalSection(threads)}
frontend out
  bind ${listen}:${OUT_PORT}
  default_backend tunnel
backend tunnel
  server node2 ${node2}:${TLS_PORT} ssl crt ${join(dir, 'node1.pem')} ca-file ${join(dir, 'ca.pem')} verify required verifyhost node2.bench sni str(node2.bench)
`
}

export function serverSideConfig (dir: string, threads: number, listen: string, pod: string, podPort: number): string {
  return `${globalSection(threads)}
frontend tunnel
  bind ${listen}:${TLS_PORT} ssl crt ${join(dir, 'node2.pem')} ca-file ${join(dir, 'ca.pem')} verify required
  default_backend pod
backend pod
  server pod ${pod}:${podPort}
`
}

function spawnIn (netnsPath: string, cfg: string, log: string): ChildProcess {
  const fd = openSync(log, 'a')
  try {
    return spawn('nsenter', [`--net=${netnsPath}`, '--', 'haproxy', '-db', '-f', cfg], { stdio: ['ignore', fd, fd] })
  } finally { closeSync(fd) }
}

export async function startPeer (lab: Lab, workDir: string, threads: number, target: { pod: string, namespace: string, port: number }): Promise<Peer> {
  const dir = join(workDir, 'haproxy')
  mkdirSync(dir, { recursive: true })
  await makeCerts(dir)
  const n1 = lab.node('node1').ipv4
  const n2 = lab.node('node2').ipv4
  writeFileSync(join(dir, 'node1.cfg'), clientSideConfig(dir, threads, n1, n2))
  writeFileSync(join(dir, 'node2.cfg'), serverSideConfig(dir, threads, n2, lab.pod(target.namespace, target.pod).ipv4, target.port))
  const children = [spawnIn(lab.netnsPath('node1'), join(dir, 'node1.cfg'), join(dir, 'node1.log')),
    spawnIn(lab.netnsPath('node2'), join(dir, 'node2.cfg'), join(dir, 'node2.log'))]
  const stop = async (): Promise<void> => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGTERM')
    await sleep(200)
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL')
  }
  // Ready when a request goes through both hops from the client pod (bounded).
  for (let i = 0; i < 50; i++) {
    const r = await lab.execPod('bench', 'client', ['curl', '-sf', '-o', '/dev/null', '--max-time', '2', `http://${n1}:${OUT_PORT}/1k`], 10_000)
    if (r.code === 0) {
      const pids = children.map((c) => c.pid).filter((p): p is number => p !== undefined)
      return { pids, url: (path) => `http://${n1}:${OUT_PORT}${path}`, stop }
    }
    if (children.some((c) => c.exitCode !== null)) break
    await sleep(200)
  }
  await stop()
  throw new Error(`haproxy peer did not come up; see ${dir}/node*.log`)
}
