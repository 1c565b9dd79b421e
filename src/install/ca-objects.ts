import { CA_FILES } from '../controller/ca-store'
import { createRootCa } from '../controller/root-ca'
import type { KubeObject } from './kustomize'
import { INSTALL_NAMESPACE } from './settings'

// `ferry install --generate-ca`: a new CA root as the two objects the manifests expect,
//   Secret    ferry-ca-root       root-key.pem + root-cert.pem (the controller's --data-dir)
//   ConfigMap ferry-ca-root-cert  root-cert.pem (what agents trust the controller with)
// made in this process with the controller's own code. Apply them once: a second run
// makes a different root, and certificates of the first would stop verifying.

export const CA_SECRET = 'ferry-ca-root'
export const CA_CONFIGMAP = 'ferry-ca-root-cert'

export async function caObjects (trustDomain: string, now: number = Date.now()): Promise<KubeObject[]> {
  const root = await createRootCa(trustDomain, now)
  const labels = { 'app.kubernetes.io/part-of': 'ferry' }
  return [
    {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: CA_SECRET, namespace: INSTALL_NAMESPACE, labels },
      type: 'Opaque',
      data: {
        [CA_FILES.key]: Buffer.from(root.keyPem).toString('base64'),
        [CA_FILES.cert]: Buffer.from(root.certPem).toString('base64')
      }
    },
    {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: CA_CONFIGMAP, namespace: INSTALL_NAMESPACE, labels },
      data: { [CA_FILES.cert]: root.certPem }
    }
  ]
}
