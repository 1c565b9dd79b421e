import { randomBytes } from 'node:crypto'
import { chmodSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { dirname } from 'node:path'
import { stringify } from 'yaml'
import type { PlanKubernetesApi } from './topology'

// The lab's credentials for its API server (--kubernetes-api): a bearer token (the
// server's --token-file) and the kubeconfig the agents are given (--kubeconfig), both
// mode 0600 in the state dir's tokens/ (0700), made once at `up` so a restarted server
// or agent finds the same ones; `down` removes them with the state dir. The server is
// plain HTTP inside the underlay namespace — the kubeconfig says so
// (insecure-skip-tls-verify is how client-node accepts an http:// server).

const SECRET_MODE = 0o600

export function writeLabKubeconfig (api: PlanKubernetesApi, lab: string): void {
  mkdirSync(dirname(api.tokenFile), { recursive: true, mode: 0o700 })
  const token = randomBytes(32).toString('base64url')
  writeSecret(api.tokenFile, `${token}\n`)
  const name = `ferry-lab-${lab}`
  writeSecret(api.kubeconfig, stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name, cluster: { server: `http://${api.address}:${api.port}`, 'insecure-skip-tls-verify': true } }],
    users: [{ name: 'ferry-agent', user: { token } }],
    contexts: [{ name, context: { cluster: name, user: 'ferry-agent' } }],
    'current-context': name
  }))
}

export function readLabApiToken (path: string): string {
  return readFileSync(path, 'utf8').trim()
}

function writeSecret (path: string, text: string): void {
  const tmp = `${path}.tmp-${process.pid}`
  writeFileSync(tmp, text, { mode: SECRET_MODE })
  chmodSync(tmp, SECRET_MODE)
  renameSync(tmp, path)
}
