import type { KubeObject } from './kustomize'

// What a ServiceAccount may do according to the rendered RBAC objects, flattened to
// "group/resource verb" grants ("" is the core group), and the least-privilege rules
// Ferry's manifests keep: no wildcards, no write verbs for the agent beyond the few it is
// allowed (creating Events about pods, and the review objects that authenticate callers of
// its debug endpoints: they change nothing), no Secrets for anyone but through
// resourceNames, no escalation verbs, nothing bound that is not declared.

export interface Grant {
  readonly group: string
  readonly resource: string
  readonly verb: string
  /** Restricted to these names (empty: any object). */
  readonly resourceNames: readonly string[]
  /** Where it comes from: "ClusterRole ferry-agent". */
  readonly from: string
}

interface Rule { apiGroups?: string[], resources?: string[], verbs?: string[], resourceNames?: string[], nonResourceURLs?: string[] }
interface Binding { roleRef: { kind: string, name: string }, subjects?: Array<{ kind: string, name: string, namespace?: string }> }

const WRITE_VERBS = new Set(['create', 'update', 'patch', 'delete', 'deletecollection'])
const ESCALATION_VERBS = new Set(['escalate', 'bind', 'impersonate'])

/** Every grant bound to the ServiceAccount namespace/name. */
export function grantsOf (objects: readonly KubeObject[], sa: { namespace: string, name: string }): Grant[] {
  const grants: Grant[] = []
  for (const b of objects) {
    if (b.kind !== 'ClusterRoleBinding' && b.kind !== 'RoleBinding') continue
    const binding = b as unknown as KubeObject & Binding
    const bound = (binding.subjects ?? []).some((s) => s.kind === 'ServiceAccount' && s.name === sa.name && (s.namespace ?? b.metadata.namespace) === sa.namespace)
    if (!bound) continue
    const role = objects.find((r) => r.kind === binding.roleRef.kind && r.metadata.name === binding.roleRef.name &&
      (r.kind === 'ClusterRole' || r.metadata.namespace === b.metadata.namespace))
    if (role === undefined) continue
    for (const rule of ((role as any).rules ?? []) as Rule[]) {
      for (const group of rule.apiGroups ?? []) {
        for (const resource of rule.resources ?? []) {
          for (const verb of rule.verbs ?? []) {
            grants.push({ group, resource, verb, resourceNames: rule.resourceNames ?? [], from: `${role.kind} ${role.metadata.name}` })
          }
        }
      }
    }
  }
  return grants
}

/** "group/resource verb" strings, sorted: the shape tests compare against. */
export function grantSet (grants: readonly Grant[]): string[] {
  return [...new Set(grants.map((g) => `${g.group === '' ? 'core' : g.group}/${g.resource} ${g.verb}${g.resourceNames.length > 0 ? ` [${g.resourceNames.join(',')}]` : ''}`))].sort()
}

/** A ServiceAccount that must only read, but for `writes` ("group/resource verb", core as "core"). */
export interface ReadMostly { readonly namespace: string, readonly name: string, readonly writes?: readonly string[] }

/** Least-privilege problems in every Role and ClusterRole, and in the bindings. */
export function rbacProblems (objects: readonly KubeObject[], readOnly: readonly ReadMostly[]): string[] {
  const problems: string[] = []
  for (const r of objects) {
    if (r.kind !== 'ClusterRole' && r.kind !== 'Role') continue
    for (const [i, rule] of (((r as any).rules ?? []) as Rule[]).entries()) {
      const at = `${r.kind} ${r.metadata.name} rules[${i}]`
      for (const field of ['apiGroups', 'resources', 'verbs', 'resourceNames'] as const) {
        if ((rule[field] ?? []).some((x) => x.includes('*'))) problems.push(`${at}: a wildcard in ${field}`)
      }
      if (rule.nonResourceURLs !== undefined) problems.push(`${at}: nonResourceURLs are not needed by Ferry`)
      for (const verb of rule.verbs ?? []) if (ESCALATION_VERBS.has(verb)) problems.push(`${at}: escalation verb ${verb}`)
      if ((rule.resources ?? []).includes('secrets') && (rule.resourceNames ?? []).length === 0) problems.push(`${at}: Secrets without resourceNames`)
    }
  }
  for (const b of objects) {
    if (b.kind !== 'ClusterRoleBinding' && b.kind !== 'RoleBinding') continue
    const ref = (b as unknown as Binding).roleRef
    if (!objects.some((r) => r.kind === ref.kind && r.metadata.name === ref.name)) problems.push(`${b.kind} ${b.metadata.name}: binds ${ref.kind} ${ref.name}, which is not declared`)
    for (const s of (b as unknown as Binding).subjects ?? []) {
      if (s.kind !== 'ServiceAccount') problems.push(`${b.kind} ${b.metadata.name}: binds ${s.kind} ${s.name}; Ferry binds only its ServiceAccounts`)
      else if (!objects.some((o) => o.kind === 'ServiceAccount' && o.metadata.name === s.name && o.metadata.namespace === s.namespace)) {
        problems.push(`${b.kind} ${b.metadata.name}: binds ServiceAccount ${s.namespace ?? '?'}/${s.name}, which is not declared`)
      }
    }
  }
  for (const sa of readOnly) {
    for (const g of grantsOf(objects, sa)) {
      const allowed = (sa.writes ?? []).includes(`${g.group === '' ? 'core' : g.group}/${g.resource} ${g.verb}`)
      if (WRITE_VERBS.has(g.verb) && !allowed) problems.push(`ServiceAccount ${sa.namespace}/${sa.name} must only read, but ${g.from} grants ${g.verb} on ${g.resource}`)
      if (g.resource === 'secrets') problems.push(`ServiceAccount ${sa.namespace}/${sa.name} must not read Secrets, but ${g.from} grants ${g.verb} on them`)
    }
  }
  return problems
}
