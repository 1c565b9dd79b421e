import { spawn } from 'node:child_process'
import { constants } from 'node:os'
import { ferryError } from '../errors'
import { podProcessArgv } from './spawn'
import type { LabState } from './state'
import { netnsPath, type PlanPod } from './topology'

// `ferry lab exec`: a command in a pod — its cgroup, namespace, hosts file and
// container environment, so the mesh captures it like the pod's own processes — or in a
// node's or the underlay's namespace (network namespace only, like `nsenter`, so node
// tools still see /sys/fs/bpf). Standard streams are inherited; the exit code is passed
// through (128 + signal number when killed by a signal).

export type ExecTarget =
  | { readonly kind: 'pod', readonly namespace: string, readonly name: string, readonly container?: string }
  | { readonly kind: 'node', readonly name: string }
  | { readonly kind: 'underlay' }

export function findPod (state: LabState, namespace: string, name: string): PlanPod {
  const pod = state.plan.pods.find((p) => p.namespace === namespace && p.name === name)
  if (pod === undefined) {
    const known = state.plan.pods.map((p) => `${p.namespace}/${p.name}`).join(', ')
    throw ferryError('FERRY_ERR_POD_NOT_FOUND', `lab ${state.name} has no pod ${namespace}/${name} (pods: ${known === '' ? 'none' : known})`)
  }
  return pod
}

export function execArgv (state: LabState, target: ExecTarget, cmd: readonly string[]): string[] {
  if (cmd.length === 0) throw ferryError('FERRY_ERR_INVALID_ARG', 'no command given (put it after --)')
  switch (target.kind) {
    case 'pod': {
      const pod = findPod(state, target.namespace, target.name)
      const c = target.container === undefined ? pod.containers[0] : pod.containers.find((x) => x.name === target.container)
      if (c === undefined) {
        throw ferryError('FERRY_ERR_POD_NOT_FOUND', `pod ${pod.namespace}/${pod.name} has no container ${target.container ?? ''} (containers: ${pod.containers.map((x) => x.name).join(', ')})`)
      }
      const env: Record<string, string> = { ...c.env }
      if (process.env.TERM !== undefined) env.TERM = process.env.TERM
      return podProcessArgv(pod, env, cmd)
    }
    case 'node': {
      const node = state.plan.nodes.find((n) => n.name === target.name)
      if (node === undefined) {
        throw ferryError('FERRY_ERR_POD_NOT_FOUND', `lab ${state.name} has no node ${target.name} (nodes: ${state.plan.nodes.map((n) => n.name).join(', ')})`)
      }
      return ['nsenter', `--net=${netnsPath(state.plan.paths, node.netns)}`, '--', ...cmd]
    }
    case 'underlay':
      return ['nsenter', `--net=${netnsPath(state.plan.paths, state.plan.underlay.netns)}`, '--', ...cmd]
  }
}

/** Runs the command with inherited stdio; resolves to its exit code. */
export async function labExec (state: LabState, target: ExecTarget, cmd: readonly string[]): Promise<number> {
  const argv = execArgv(state, target, cmd)
  const cwd = target.kind === 'pod' ? findPod(state, target.namespace, target.name).containers[0].workingDir : process.cwd()
  return await new Promise((resolve, reject) => {
    const child = spawn(argv[0], argv.slice(1), { stdio: 'inherit', cwd })
    // Ctrl-C reaches the child through the terminal's process group; we outlive it to
    // report its exit code. A SIGTERM to us is passed on.
    const onInt = (): void => {}
    const onTerm = (): void => { child.kill('SIGTERM') }
    process.on('SIGINT', onInt)
    process.on('SIGTERM', onTerm)
    const done = (): void => { process.off('SIGINT', onInt); process.off('SIGTERM', onTerm) }
    child.on('error', (e) => { done(); reject(ferryError('FERRY_ERR_LAB', `cannot run ${argv[0]}: ${e.message}`, { cause: e })) })
    child.on('exit', (code, signal) => {
      done()
      resolve(code ?? 128 + (signal === null ? 0 : constants.signals[signal]))
    })
  })
}
