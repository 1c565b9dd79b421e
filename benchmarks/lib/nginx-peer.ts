import { type ChildProcess, spawn } from 'node:child_process'
import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Lab } from './lab'
import { awaitPeer, makePeerCerts, stopper, TLS13_SUITES, type Peer } from './peer'

// The second peer: the same two-hop mutual-TLS path from nginx's stream module
// (Debian libnginx-mod-stream), in the no-mesh lab's node namespaces:
//
//   client pod ──TCP──▶ nginx node1 (OUT_PORT) ══mTLS 1.3══▶ nginx node2 (TLS_PORT) ──TCP──▶ server pod
//
// As nginx's documentation has it for this job: TLS 1.3 only, ECDSA P-256 certificates
// from one throwaway CA, the client certificate required and verified on node2, the
// server's certificate and name verified on node1, session reuse on (proxy_ssl_session_reuse,
// a shared session cache and tickets), one worker per core, tcp_nodelay (the stream
// default). Same certificates and suites as the HAProxy peer.

export const OUT_PORT = 19080
export const TLS_PORT = 19443
export const NGINX_STREAM_MODULE = '/usr/lib/nginx/modules/ngx_stream_module.so'
const MODULE = NGINX_STREAM_MODULE
/**
 * Each worker's open files: the idle10k benchmark holds 10,000 connections through each
 * node's nginx, two sockets each (the pod's and the other node's), spread over its workers;
 * 20,000 is this host's hard limit, which a worker cannot raise.
 */
const PEER_OPEN_FILES = 20_000

function mainSection (dir: string, node: string, workers: number): string {
  return `load_module ${MODULE};
worker_processes ${workers};
pid ${join(dir, `${node}.pid`)};
error_log ${join(dir, `${node}.log`)} warn;
worker_rlimit_nofile ${PEER_OPEN_FILES};
events { worker_connections ${PEER_OPEN_FILES - 1024}; }
`
}

export function clientSideConfig (dir: string, workers: number, listen: string, node2: string): string {
  return `${mainSection(dir, 'node1', workers)}
stream {
  server {
    listen ${listen}:${OUT_PORT};
    proxy_pass ${node2}:${TLS_PORT};
    proxy_ssl on;
    proxy_ssl_protocols TLSv1.3;
    proxy_ssl_conf_command Ciphersuites ${TLS13_SUITES};
    proxy_ssl_certificate ${join(dir, 'node1.crt')};
    proxy_ssl_certificate_key ${join(dir, 'node1.key')};
    proxy_ssl_trusted_certificate ${join(dir, 'ca.pem')};
    proxy_ssl_verify on;
    proxy_ssl_name node2.bench;
    proxy_ssl_server_name on;
    proxy_ssl_session_reuse on;
  }
}
`
}

export function serverSideConfig (dir: string, workers: number, listen: string, pod: string, podPort: number): string {
  return `${mainSection(dir, 'node2', workers)}
stream {
  server {
    listen ${listen}:${TLS_PORT} ssl;
    ssl_protocols TLSv1.3;
    ssl_conf_command Ciphersuites ${TLS13_SUITES};
    ssl_certificate ${join(dir, 'node2.crt')};
    ssl_certificate_key ${join(dir, 'node2.key')};
    ssl_client_certificate ${join(dir, 'ca.pem')};
    ssl_verify_client on;
    ssl_session_cache shared:bench:10m;
    ssl_session_tickets on;
    proxy_pass ${pod}:${podPort};
  }
}
`
}

function spawnIn (netnsPath: string, dir: string, cfg: string, log: string): ChildProcess {
  const fd = openSync(log, 'a')
  try {
    return spawn('nsenter', [`--net=${netnsPath}`, '--', 'nginx', '-p', dir, '-c', cfg, '-g', 'daemon off;'], { stdio: ['ignore', fd, fd] })
  } finally { closeSync(fd) }
}

/** The master's worker processes (its children), whose CPU is the proxy's. */
function childrenOf (pid: number): number[] {
  const out: number[] = []
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8')
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid) out.push(Number(d))
    } catch { /* exited meanwhile */ }
  }
  return out
}

export async function startNginxPeer (lab: Lab, workDir: string, workers: number, target: { pod: string, namespace: string, port: number }): Promise<Peer> {
  const dir = join(workDir, 'nginx-stream')
  mkdirSync(join(dir, 'logs'), { recursive: true })
  await makePeerCerts(dir)
  const n1 = lab.node('node1').ipv4
  const n2 = lab.node('node2').ipv4
  writeFileSync(join(dir, 'node1.conf'), clientSideConfig(dir, workers, n1, n2))
  writeFileSync(join(dir, 'node2.conf'), serverSideConfig(dir, workers, n2, lab.pod(target.namespace, target.pod).ipv4, target.port))
  const children = [spawnIn(lab.netnsPath('node1'), dir, join(dir, 'node1.conf'), join(dir, 'node1.out')),
    spawnIn(lab.netnsPath('node2'), dir, join(dir, 'node2.conf'), join(dir, 'node2.out'))]
  const stop = stopper(children)
  const url = (path: string): string => `http://${n1}:${OUT_PORT}${path}`
  await awaitPeer(lab, 'nginx stream', url('/1k'), children, stop, `${dir}/node*.log`)
  const masters = children.map((c) => c.pid).filter((p): p is number => p !== undefined)
  const byNode = (i: number): number[] => masters[i] === undefined ? [] : [masters[i], ...childrenOf(masters[i])]
  return { pids: [...masters, ...masters.flatMap(childrenOf)], pidsByNode: { node1: byNode(0), node2: byNode(1) }, url, stop }
}
