import { writeFileSync } from 'node:fs'

// A kubeconfig file pointing at a test's stand-in API server (plain http on loopback, a
// bearer token): what agents and the Kubernetes client read with --kubeconfig.

export function writeTestKubeconfig (path: string, server: string, token: string): string {
  writeFileSync(path, JSON.stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'test', cluster: { server, 'insecure-skip-tls-verify': true } }],
    users: [{ name: 'agent', user: { token } }],
    contexts: [{ name: 'test', context: { cluster: 'test', user: 'agent' } }],
    'current-context': 'test'
  }))
  return path
}
