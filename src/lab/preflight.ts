import { accessSync, constants, existsSync, statSync } from 'node:fs'
import { isAbsolute, join, resolve } from 'node:path'
import { ferryError } from '../errors'
import { REPO_ROOT } from '../native'
import { LAB_PATH } from './container-env'
import { manifestError, type ManifestIssue } from './manifest/issues'
import type { LabPod, LabSpec } from './manifest/spec'
import { labNamesOverlap } from './names'
import type { LabPlan, PlanPod } from './topology'

// Checks against this host, made after the manifests are valid and before anything is
// created: the tools the lab drives, each container's command and working directory,
// a built Ferry (the kubelets, and with the mesh the agents, run it), and no other lab
// claiming the same names.

export const HOST_TOOLS = ['sh', 'env', 'ip', 'nsenter', 'sysctl'] as const

/** `needBuiltFerry`: the kubelets and agents run from dist/ (false when the caller supplies its own way to run Ferry). */
export function preflight (spec: LabSpec, plan: LabPlan, otherLabs: readonly string[], needBuiltFerry = true): void {
  const missing = HOST_TOOLS.filter((t) => findExecutable(t, LAB_PATH) === null)
  if (missing.length > 0) throw ferryError('FERRY_ERR_LAB', `the lab needs ${missing.join(', ')} on this host (PATH=${LAB_PATH})`)

  const issues = containerIssues(spec.pods, plan.pods)
  if (issues.length > 0) throw manifestError(issues)

  if (needBuiltFerry && !existsSync(join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js'))) {
    throw ferryError('FERRY_ERR_LAB', `the lab's kubelets${plan.mesh ? ' and agents' : ''} need a built Ferry (${join(REPO_ROOT, 'dist')} is missing): run \`npm run build\``)
  }
  for (const plugin of new Set(plan.nodes.flatMap((n) => n.cni.plugins.map((p) => p.path)))) {
    if (!existsSync(plugin)) throw ferryError('FERRY_ERR_LAB', `the CNI plugin ${plugin} is missing${plugin.endsWith('/ferry-cni') ? ': run `npm run build` (it builds build/cni/ferry-cni)' : ''}`)
  }
  for (const other of otherLabs) {
    if (other === plan.name) {
      throw ferryError('FERRY_ERR_LAB_EXISTS', `a lab named "${other}" (or its leftovers) exists: run \`ferry lab down ${other}\` first`)
    }
    if (labNamesOverlap(other, plan.name)) {
      throw ferryError('FERRY_ERR_LAB_EXISTS', `lab "${other}" is up and its names would overlap those of "${plan.name}" (one is the other plus "-…"): choose another name`)
    }
  }
}

/** Each container's working directory and command exist on this host (pods and their plans, index for index). */
export function containerIssues (pods: readonly LabPod[], planned: readonly PlanPod[]): ManifestIssue[] {
  const issues: ManifestIssue[] = []
  pods.forEach((pod, i) => {
    pod.containers.forEach((c, j) => {
      const where = { file: pod.origin.file, line: pod.origin.line, object: `Pod ${pod.namespace}/${pod.name}` }
      if (!isDirectory(c.workingDir)) {
        issues.push({ ...where, path: ['spec', 'containers', j, 'workingDir'], message: `${c.workingDir} is not a directory on this host` })
        return
      }
      const cmd = planned[i].containers[j].argv[0]
      const found = cmd.includes('/') ? (isExecutable(resolve(c.workingDir, cmd)) ? cmd : null) : findExecutable(cmd, planned[i].containers[j].env.PATH ?? LAB_PATH)
      if (found === null) issues.push({ ...where, path: ['spec', 'containers', j, 'command', 0], message: `"${cmd}" is not an executable on this host${cmd.includes('/') && !isAbsolute(cmd) ? ` (relative to ${c.workingDir})` : ''}` })
    })
  })
  return issues
}

export function findExecutable (cmd: string, path: string): string | null {
  for (const dir of path.split(':')) {
    if (dir === '') continue
    const full = join(dir, cmd)
    if (isExecutable(full)) return full
  }
  return null
}

function isExecutable (p: string): boolean {
  try {
    accessSync(p, constants.X_OK)
    return statSync(p).isFile()
  } catch {
    return false
  }
}

function isDirectory (p: string): boolean {
  try {
    return statSync(p).isDirectory()
  } catch {
    return false
  }
}
