import type { ChildProcess } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { execOk, sleep } from './exec'
import type { Lab } from './lab'

// What the peers (HAProxy, nginx's stream module) share: the Peer handle, their
// certificates and the readiness check. Each peer is the same cross-node two-hop
// mutual-TLS path, run in the node namespaces of the no-mesh lab.

export interface Peer {
  readonly pids: number[]
  /** The same processes by node (the L4 peers): node1's carry the connections outbound, node2's inbound. */
  readonly pidsByNode?: { readonly node1: number[], readonly node2: number[] }
  /** Where the client pod connects. */
  readonly url: (path: string) => string
  stop: () => Promise<void>
}

/** TLS 1.3 suites: OpenSSL's default list, the one Ferry's Node uses. */
export const TLS13_SUITES = 'TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256'

async function openssl (args: string[]): Promise<void> { await execOk('openssl', args, { timeoutMs: 30_000 }) }

/**
 * A CA and two leaf certificates (ECDSA P-256, serverAuth + clientAuth, SAN
 * DNS:<node>.bench) in `dir`: ca.pem, <node>.crt, <node>.key and <node>.pem (both, as
 * HAProxy takes them).
 */
export async function makePeerCerts (dir: string): Promise<void> {
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

/** Stops `children`: SIGTERM, then SIGKILL whatever is left after 200 ms. */
export function stopper (children: readonly ChildProcess[]): () => Promise<void> {
  return async () => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGTERM')
    await sleep(200)
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL')
  }
}

/** Waits (bounded) until a request from the client pod goes through both hops at `url`; else stops the peer and throws. */
export async function awaitPeer (lab: Lab, name: string, url: string, children: readonly ChildProcess[], stop: () => Promise<void>, logs: string): Promise<void> {
  for (let i = 0; i < 50; i++) {
    const r = await lab.execPod('bench', 'client', ['curl', '-sf', '-o', '/dev/null', '--max-time', '2', url], 10_000)
    if (r.code === 0) return
    if (children.some((c) => c.exitCode !== null)) break
    await sleep(200)
  }
  await stop()
  throw new Error(`${name} peer did not come up; see ${logs}`)
}
