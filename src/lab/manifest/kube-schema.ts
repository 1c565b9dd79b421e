import { Namespace } from 'kubernetes-models/v1/Namespace'
import { Node } from 'kubernetes-models/v1/Node'
import { Pod } from 'kubernetes-models/v1/Pod'
import { Service } from 'kubernetes-models/v1/Service'

import { type KubeModel, type SchemaIssue, validateStrict } from '../../kubernetes/kube-schema-strict'

// Validation of the lab's manifests against the real Kubernetes OpenAPI schemas, with
// unknown fields rejected as the API server's strict field validation does.

export type { SchemaIssue }

/** The kinds the lab accepts, with their apiVersion and schema. */
export const KUBE_KINDS: Readonly<Record<string, { apiVersion: string, model: KubeModel, namespaced: boolean }>> = Object.freeze({
  Node: { apiVersion: 'v1', model: Node, namespaced: false },
  Namespace: { apiVersion: 'v1', model: Namespace, namespaced: false },
  Pod: { apiVersion: 'v1', model: Pod, namespaced: true },
  Service: { apiVersion: 'v1', model: Service, namespaced: true }
})

export function validateAgainstSchema (kind: string, value: unknown): SchemaIssue[] {
  const entry = KUBE_KINDS[kind]
  if (entry === undefined) throw new Error(`no schema for kind ${kind}`)
  return validateStrict(entry.model, value)
}
