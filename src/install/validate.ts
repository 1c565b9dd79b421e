import { CustomResourceDefinition } from 'kubernetes-models/apiextensions.k8s.io/v1/CustomResourceDefinition'
import { DaemonSet } from 'kubernetes-models/apps/v1/DaemonSet'
import { Deployment } from 'kubernetes-models/apps/v1/Deployment'
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget'
import { ClusterRole } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRole'
import { ClusterRoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRoleBinding'
import { Role } from 'kubernetes-models/rbac.authorization.k8s.io/v1/Role'
import { RoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding'
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap'
import { Namespace } from 'kubernetes-models/v1/Namespace'
import { ResourceQuota } from 'kubernetes-models/v1/ResourceQuota'
import { Secret } from 'kubernetes-models/v1/Secret'
import { Service } from 'kubernetes-models/v1/Service'
import { ServiceAccount } from 'kubernetes-models/v1/ServiceAccount'
import { type FieldPath, formatFieldPath, type KubeModel, type StrictOptions, validateStrict } from '../kubernetes/kube-schema-strict'
import { describe, type KubeObject } from './kustomize'
import { structuralIssues } from './structural'

// Everything `ferry install` prints is checked before it is printed, and the tests check
// every overlay the same way:
//   1. the Kubernetes OpenAPI schema of its kind (kubernetes-models), unknown fields
//      rejected as the API server's strict field validation would;
//   2. a few rules the API server enforces in code rather than in the schema, which
//      these manifests come close to (privileged-only mount propagation, privilege
//      escalation with SYS_ADMIN, selectors that match their template, volume and port
//      references, DNS names);
//   3. CRD schemas are structural.

export interface ManifestProblem {
  readonly object: string
  readonly path: string
  readonly message: string
}

const MODELS: Readonly<Record<string, KubeModel>> = Object.freeze({
  'v1/Namespace': Namespace,
  'v1/ResourceQuota': ResourceQuota,
  'v1/ServiceAccount': ServiceAccount,
  'v1/ConfigMap': ConfigMap,
  'v1/Secret': Secret,
  'v1/Service': Service,
  'apps/v1/Deployment': Deployment,
  'apps/v1/DaemonSet': DaemonSet,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  'rbac.authorization.k8s.io/v1/ClusterRole': ClusterRole,
  'rbac.authorization.k8s.io/v1/ClusterRoleBinding': ClusterRoleBinding,
  'rbac.authorization.k8s.io/v1/Role': Role,
  'rbac.authorization.k8s.io/v1/RoleBinding': RoleBinding,
  'apiextensions.k8s.io/v1/CustomResourceDefinition': CustomResourceDefinition
})

/**
 * CRD schemas (JSONSchemaProps) are checked by structural.ts, key by key: kubernetes-models
 * neither recurses into them nor knows the x-kubernetes-* keys. It also drops every
 * property named "description" (additionalPrinterColumns[].description is real).
 */
const STRICT_OPTIONS: Readonly<Record<string, StrictOptions>> = Object.freeze({
  CustomResourceDefinition: {
    opaque: (path: FieldPath) => path.length === 5 && path[0] === 'spec' && path[1] === 'versions' && path[3] === 'schema' && path[4] === 'openAPIV3Schema',
    alsoKnown: new Set(['description'])
  }
})

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/
const DNS_SUBDOMAIN = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/
/** Kinds whose names must be DNS labels (they become DNS names or path segments). */
const LABEL_NAMED = new Set(['Namespace', 'Service'])

export function validateManifests (objects: readonly KubeObject[]): ManifestProblem[] {
  const problems: ManifestProblem[] = []
  for (const o of objects) {
    const what = describe(o)
    const add = (path: string, message: string): void => { problems.push({ object: what, path, message }) }
    const model = MODELS[`${o.apiVersion}/${o.kind}`]
    if (model === undefined) { add('(object)', `no schema for ${o.apiVersion} ${o.kind} in Ferry's validator`); continue }
    for (const issue of validateStrict(model, o, STRICT_OPTIONS[o.kind] ?? {})) add(formatFieldPath(issue.path), issue.message)
    const name = o.metadata.name
    if (!(LABEL_NAMED.has(o.kind) ? DNS_LABEL : DNS_SUBDOMAIN).test(name)) add('metadata.name', `"${name}" is not a valid ${LABEL_NAMED.has(o.kind) ? 'DNS label' : 'DNS subdomain'}`)
    if (o.metadata.namespace !== undefined && !DNS_LABEL.test(o.metadata.namespace)) add('metadata.namespace', `"${o.metadata.namespace}" is not a DNS label`)
    if (o.kind === 'Deployment' || o.kind === 'DaemonSet') workloadRules(o, add)
    if (o.kind === 'CustomResourceDefinition') {
      for (const [i, v] of (((o.spec as any)?.versions ?? []) as any[]).entries()) {
        for (const s of structuralIssues(v?.schema?.openAPIV3Schema ?? {})) add(`spec.versions[${i}].schema.${s.path}`, `not structural: ${s.message}`)
      }
    }
  }
  return problems
}

export function formatProblems (problems: readonly ManifestProblem[]): string {
  return problems.map((p) => `${p.object}: ${p.path}: ${p.message}`).join('\n')
}

type Add = (path: string, message: string) => void

function workloadRules (o: KubeObject, add: Add): void {
  const spec = o.spec as any
  const template = spec?.template ?? {}
  const labels = (template.metadata?.labels ?? {}) as Record<string, string>
  for (const [k, v] of Object.entries((spec?.selector?.matchLabels ?? {}) as Record<string, string>)) {
    if (labels[k] !== v) add('spec.selector', `matchLabels ${k}=${v} does not match the template's labels`)
  }
  const pod = template.spec ?? {}
  const volumes = new Set(((pod.volumes ?? []) as any[]).map((v) => v.name))
  const seen = new Set<string>()
  for (const field of ['initContainers', 'containers'] as const) {
    for (const [i, c] of ((pod[field] ?? []) as any[]).entries()) {
      const at = `spec.template.spec.${field}[${i}]`
      if (seen.has(c.name)) add(`${at}.name`, `container name "${c.name}" is used twice`)
      seen.add(c.name)
      containerRules(c, at, pod.hostNetwork === true, volumes, add)
    }
  }
}

function containerRules (c: any, at: string, hostNetwork: boolean, volumes: Set<string>, add: Add): void {
  const sc = c.securityContext ?? {}
  const privileged = sc.privileged === true
  const adds = (sc.capabilities?.add ?? []) as string[]
  if (sc.allowPrivilegeEscalation === false && (privileged || adds.includes('SYS_ADMIN') || adds.includes('CAP_SYS_ADMIN'))) {
    add(`${at}.securityContext.allowPrivilegeEscalation`, 'cannot be false for a privileged container or one with SYS_ADMIN (the API server refuses it)')
  }
  for (const [j, m] of ((c.volumeMounts ?? []) as any[]).entries()) {
    if (!volumes.has(m.name)) add(`${at}.volumeMounts[${j}].name`, `no volume named "${m.name}"`)
    if (m.mountPropagation === 'Bidirectional' && !privileged) add(`${at}.volumeMounts[${j}].mountPropagation`, 'Bidirectional is allowed only in privileged containers')
  }
  const portNames = new Set(((c.ports ?? []) as any[]).map((p) => p.name).filter((n) => n !== undefined))
  for (const [j, p] of ((c.ports ?? []) as any[]).entries()) {
    if (hostNetwork && p.hostPort !== undefined && p.hostPort !== p.containerPort) add(`${at}.ports[${j}].hostPort`, 'must equal containerPort with hostNetwork')
  }
  for (const probe of ['readinessProbe', 'livenessProbe', 'startupProbe'] as const) {
    const port = c[probe]?.httpGet?.port ?? c[probe]?.tcpSocket?.port ?? c[probe]?.grpc?.port
    if (typeof port === 'string' && !portNames.has(port)) add(`${at}.${probe}`, `refers to port "${port}", which the container does not name`)
  }
}
