import { type ChildProcess, spawn } from 'node:child_process'
import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Lab } from './lab'
import { awaitPeer, makePeerCerts, stopper, TLS13_SUITES, type Peer } from './peer'

// The L7 peer: nginx as an HTTP reverse proxy on both nodes, with the same mutual TLS
// between them as the other peers, in the no-mesh lab's node namespaces:
//
//   client pod ──HTTP/1.1──▶ nginx node1 (HTTP_PORT) ══HTTPS, mTLS 1.3══▶ nginx node2 (HTTPS_PORT) ──HTTP/1.1──▶ server pod
//   client pod ──h2c gRPC──▶ nginx node1 (GRPC_PORT) ══gRPC over TLS, mTLS══▶ nginx node2 (GRPCS_PORT) ──h2c──▶ gRPC pod
//
// As a user would configure nginx for the job: HTTP/1.1 with upstream keep-alive pools
// on both hops (`keepalive` + `proxy_http_version 1.1` + an empty Connection header), TLS
// session reuse, the client certificate required and verified on node2, the server's
// certificate and name verified on node1; gRPC with `grpc_pass` and HTTP/2 on every hop,
// its upstream connections kept alive too (an `upstream` block with `keepalive`: without
// one nginx opens a connection, and on node1 a TLS handshake, per call).
// Access logs off (Ferry's benchmark runs log every request too, so this favours nginx).

export const HTTP_PORT = 19180
export const HTTPS_PORT = 19543
export const GRPC_PORT = 19181
export const GRPCS_PORT = 19544

function mainSection (dir: string, node: string, workers: number): string {
  return `worker_processes ${workers};
pid ${join(dir, `${node}.pid`)};
error_log ${join(dir, `${node}.log`)} warn;
events { worker_connections 8192; }
`
}

function tlsClient (dir: string, prefix: 'proxy' | 'grpc'): string {
  return `    ${prefix}_ssl_protocols TLSv1.3;
    ${prefix}_ssl_conf_command Ciphersuites ${TLS13_SUITES};
    ${prefix}_ssl_certificate ${join(dir, 'node1.crt')};
    ${prefix}_ssl_certificate_key ${join(dir, 'node1.key')};
    ${prefix}_ssl_trusted_certificate ${join(dir, 'ca.pem')};
    ${prefix}_ssl_verify on;
    ${prefix}_ssl_name node2.bench;
    ${prefix}_ssl_server_name on;
    ${prefix}_ssl_session_reuse on;
`
}

function tlsServer (dir: string): string {
  return `    ssl_protocols TLSv1.3;
    ssl_conf_command Ciphersuites ${TLS13_SUITES};
    ssl_certificate ${join(dir, 'node2.crt')};
    ssl_certificate_key ${join(dir, 'node2.key')};
    ssl_client_certificate ${join(dir, 'ca.pem')};
    ssl_verify_client on;
    ssl_session_cache shared:benchhttp:10m;
    ssl_session_tickets on;
`
}

const HTTP_COMMON = `  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path /tmp/ferry-bench-nginx-body;
  proxy_temp_path /tmp/ferry-bench-nginx-proxy;
`

export function clientSideHttpConfig (dir: string, workers: number, listen: string, node2: string): string {
  return `${mainSection(dir, 'node1', workers)}
http {
${HTTP_COMMON}
  upstream node2_https { server ${node2}:${HTTPS_PORT}; keepalive 256; }
  upstream node2_grpcs { server ${node2}:${GRPCS_PORT}; keepalive 256; }
  server {
    listen ${listen}:${HTTP_PORT};
    location / {
      proxy_pass https://node2_https;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
${tlsClient(dir, 'proxy')}    }
  }
  server {
    listen ${listen}:${GRPC_PORT} http2;
    location / {
      grpc_pass grpcs://node2_grpcs;
${tlsClient(dir, 'grpc')}    }
  }
}
`
}

export function serverSideHttpConfig (dir: string, workers: number, listen: string, target: { http: string, grpc: string }): string {
  return `${mainSection(dir, 'node2', workers)}
http {
${HTTP_COMMON}
  upstream pod_http { server ${target.http}; keepalive 256; }
  upstream pod_grpc { server ${target.grpc}; keepalive 256; }
  server {
    listen ${listen}:${HTTPS_PORT} ssl;
${tlsServer(dir)}    location / {
      proxy_pass http://pod_http;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }
  }
  server {
    listen ${listen}:${GRPCS_PORT} ssl http2;
${tlsServer(dir)}    location / {
      grpc_pass grpc://pod_grpc;
    }
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

export interface HttpPeer extends Peer {
  /** Where the client pod sends gRPC (h2c). */
  readonly grpcAuthority: string
}

/** Starts the L7 peer for `http` (the HTTP/1.1 server pod and port) and `grpc` (the gRPC server pod and port). */
export async function startNginxHttpPeer (lab: Lab, workDir: string, workers: number,
  http: { pod: string, namespace: string, port: number }, grpc: { pod: string, namespace: string, port: number }): Promise<HttpPeer> {
  const dir = join(workDir, 'nginx-http')
  mkdirSync(join(dir, 'logs'), { recursive: true })
  await makePeerCerts(dir)
  const n1 = lab.node('node1').ipv4
  const n2 = lab.node('node2').ipv4
  writeFileSync(join(dir, 'node1.conf'), clientSideHttpConfig(dir, workers, n1, n2))
  writeFileSync(join(dir, 'node2.conf'), serverSideHttpConfig(dir, workers, n2, {
    http: `${lab.pod(http.namespace, http.pod).ipv4}:${http.port}`,
    grpc: `${lab.pod(grpc.namespace, grpc.pod).ipv4}:${grpc.port}`
  }))
  const children = [spawnIn(lab.netnsPath('node1'), dir, join(dir, 'node1.conf'), join(dir, 'node1.out')),
    spawnIn(lab.netnsPath('node2'), dir, join(dir, 'node2.conf'), join(dir, 'node2.out'))]
  const stop = stopper(children)
  const url = (path: string): string => `http://${n1}:${HTTP_PORT}${path}`
  await awaitPeer(lab, 'nginx http', url('/1k'), children, stop, `${dir}/node*.log`)
  const masters = children.map((c) => c.pid).filter((p): p is number => p !== undefined)
  return { pids: [...masters, ...masters.flatMap(childrenOf)], url, stop, grpcAuthority: `${n1}:${GRPC_PORT}` }
}
