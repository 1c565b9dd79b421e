import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { REPO_ROOT } from '../../native/binding'

// The lab a mixed soak runs on: the example shop (examples/shop/shop.yaml) and, in its
// namespace, two pods of the soak's own — the load's client on node2 (idle; the load
// runs in it through `ferry lab exec`) and a bulk echo peer on node1 — and what the
// soak changes while it runs: a pod to create and delete, and the AuthorizationPolicy
// states it cycles through. Every state lets the load's pairs (shop → shop) through, so a
// request that fails while one is changed to another is the mesh's fault.

export const SHOP_MANIFEST = join(REPO_ROOT, 'examples', 'shop', 'shop.yaml')
export const SOAK_NAMESPACE = 'shop'
export const CLIENT_POD = 'soak-client'
export const PROGRAMS_DIR = join(REPO_ROOT, 'src', 'lab', 'soak', 'programs')
/** The config directory's file the policy changes write and delete. */
export const POLICY_FILE = 'soak-policy.yaml'

/** The soak's pods and Service; commands are absolute, so the file may live anywhere. */
export function soakManifest (): string {
  return `apiVersion: v1
kind: Pod
metadata: { name: ${CLIENT_POD}, namespace: ${SOAK_NAMESPACE}, labels: { app: ${CLIENT_POD} } }
spec:
  nodeName: node2
  serviceAccountName: ${CLIENT_POD}
  terminationGracePeriodSeconds: 1
  containers:
    - { name: client, image: node:20, command: [sleep, infinity] }
---
apiVersion: v1
kind: Pod
metadata: { name: soak-bulk, namespace: ${SOAK_NAMESPACE}, labels: { app: soak-bulk } }
spec:
  nodeName: node1
  serviceAccountName: soak-bulk
  terminationGracePeriodSeconds: 1
  containers:
    - name: bulk
      image: node:20
      command: [${JSON.stringify(process.execPath)}, ${JSON.stringify(join(PROGRAMS_DIR, 'bulk-server.js'))}]
      env: [{ name: PORT, value: "8080" }]
      ports: [{ name: http, containerPort: 8080 }]
---
apiVersion: v1
kind: Service
metadata: { name: soak-bulk, namespace: ${SOAK_NAMESPACE} }
spec:
  selector: { app: soak-bulk }
  ports: [{ name: http, port: 8080, targetPort: http }]
`
}

/** The pod created and deleted every period: meshed (enrolled, given a certificate), alternating nodes. */
export function churnPodManifest (index: number): string {
  return `apiVersion: v1
kind: Pod
metadata: { name: soak-churn-${index}, namespace: ${SOAK_NAMESPACE}, labels: { app: soak-churn } }
spec:
  nodeName: ${index % 2 === 0 ? 'node1' : 'node2'}
  serviceAccountName: soak-churn
  terminationGracePeriodSeconds: 1
  containers:
    - { name: main, image: busybox, command: [sleep, infinity] }
`
}

export interface PolicyState {
  readonly name: string
  /** The policy file's text; null: the file is deleted. */
  readonly yaml: string | null
  /** The summary /debug/config shows for the policy (src/policy/check.ts configView); null: absent. */
  readonly summary: string | null
}

/** The states, in the order the soak cycles through them: an ALLOW of the namespace's own callers, a DENY of a namespace no one is in, none. */
export const POLICY_STATES: readonly PolicyState[] = Object.freeze([
  { name: 'allow shop', yaml: policy('ALLOW', SOAK_NAMESPACE), summary: 'ALLOW' },
  { name: 'deny elsewhere', yaml: policy('DENY', 'soak-elsewhere'), summary: 'DENY' },
  { name: 'none', yaml: null, summary: null }
].map((s) => Object.freeze(s)))

function policy (action: 'ALLOW' | 'DENY', fromNamespace: string): string {
  return `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: soak-policy, namespace: ${SOAK_NAMESPACE} }
spec:
  action: ${action}
  rules:
    - from:
        - source: { namespaces: [${fromNamespace}] }
`
}

/** Writes the soak's manifest into `dir`; its path, to give `ferry lab up` after SHOP_MANIFEST. */
export function writeSoakManifest (dir: string): string {
  mkdirSync(dir, { recursive: true })
  const file = join(dir, 'soak.yaml')
  writeFileSync(file, soakManifest())
  return file
}
