import { type ChildProcess, spawn } from 'node:child_process'
import { mkdirSync, openSync, closeSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Lab } from './lab'
import { TLS13_SUITES, awaitPeer, makePeerCerts, stopper, type Peer } from './peer'

export type { Peer } from './peer'

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
const SUITES = TLS13_SUITES

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
  await makePeerCerts(dir)
  const n1 = lab.node('node1').ipv4
  const n2 = lab.node('node2').ipv4
  writeFileSync(join(dir, 'node1.cfg'), clientSideConfig(dir, threads, n1, n2))
  writeFileSync(join(dir, 'node2.cfg'), serverSideConfig(dir, threads, n2, lab.pod(target.namespace, target.pod).ipv4, target.port))
  const children = [spawnIn(lab.netnsPath('node1'), join(dir, 'node1.cfg'), join(dir, 'node1.log')),
    spawnIn(lab.netnsPath('node2'), join(dir, 'node2.cfg'), join(dir, 'node2.log'))]
  const stop = stopper(children)
  const url = (path: string): string => `http://${n1}:${OUT_PORT}${path}`
  await awaitPeer(lab, 'haproxy', url('/1k'), children, stop, `${dir}/node*.log`)
  const pids = children.map((c) => c.pid).filter((p): p is number => p !== undefined)
  return { pids, pidsByNode: { node1: pids.slice(0, 1), node2: pids.slice(1, 2) }, url, stop }
}
