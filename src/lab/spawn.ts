import { type ChildProcess, spawn } from 'node:child_process'
import { closeSync, mkdirSync, openSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { HEAP } from '../config/env'
import { ferryError } from '../errors'
import { REPO_ROOT } from '../native'
import { formatDuration } from '../identity/duration'
import { labConfigCache, labConfigDir } from './policies'
import { netnsPath, type LabPlan, type LabTracing, type PlanContainer, type PlanController, type PlanKubernetesApi, type PlanNode, type PlanPod } from './topology'

// Starting the lab's long-lived processes: pod containers, node agents and kubelets,
// and the lab's certificate authority (one `ferry controller`, in the underlay
// namespace). Each is detached (its own session, so it outlives the CLI and ignores the
// terminal's Ctrl-C), writes to its own log file, and enters its cgroup *before* its
// namespaces:
//
//   sh -c 'echo $$ > "$0" && exec "$@"' CGROUP/cgroup.procs  <rest of argv>
//
// The shell joins the cgroup, then execs (the pid stays the same) into
//   pods:   ip netns exec NETNS env -i VAR=… CMD ARGS  — `ip netns exec` bind-mounts
//           /etc/netns/NETNS/{hosts,resolv.conf}; it also remounts /sys, which hides
//           /sys/fs/cgroup/unified, hence the cgroup first;
//   agents: nsenter --net=NETNS -- node bin/ferry.js agent …  — only the network
//           namespace changes, so the agent keeps /sys/fs/bpf and /sys/fs/cgroup;
//   the controller: the same, in the underlay's namespace;
//   kubelets: the same as agents, in <node cgroup>/kubelet;
//   with --kubernetes-api, also the lab's API server (the same, in the underlay's
//   namespace) and a sandbox ("pause") process per pod: nsenter --net=NETNS -- sleep
//   infinity, in the pod's sandbox scope, holding the pod's network namespace as the
//   runtime's pause container does — the process agents find pods by.
// If the cgroup is gone (a `down` raced us), the `echo` fails and nothing starts.

const JOIN_CGROUP = 'echo $$ > "$0" && exec "$@"'

/** argv that runs `rest` inside `cgroup`. */
export function inCgroupArgv (cgroup: string, rest: readonly string[]): string[] {
  return ['sh', '-c', JOIN_CGROUP, join(cgroup, 'cgroup.procs'), ...rest]
}

/** argv of a pod process: cgroup (a container's own, or the pod's), then netns with the pod's hosts file, then a clean env. */
export function podProcessArgv (pod: PlanPod, env: Readonly<Record<string, string>>, argv: readonly string[], cgroup: string = pod.cgroup): string[] {
  return inCgroupArgv(cgroup, ['ip', 'netns', 'exec', pod.netns, 'env', '-i', ...Object.entries(env).map(([k, v]) => `${k}=${v}`), ...argv])
}

/** argv of a pod's sandbox process (--kubernetes-api): its scope, the pod's netns, nothing else. */
export function sandboxArgv (plan: LabPlan, pod: PlanPod): string[] {
  return inCgroupArgv(pod.sandboxCgroup ?? pod.cgroup, ['nsenter', `--net=${netnsPath(plan.paths, pod.netns)}`, '--', 'sleep', 'infinity'])
}

/** How the lab runs `ferry`: this Node and the repository's bin/ferry.js. */
export function defaultFerryArgv (): string[] {
  return [process.execPath, join(REPO_ROOT, 'bin', 'ferry.js')]
}

export function agentArgv (plan: LabPlan, node: PlanNode, ferry: readonly string[] = defaultFerryArgv()): string[] {
  const ca = plan.controller ?? null
  const token = node.caTokenFile ?? null
  const api = plan.kubernetesApi
  return inCgroupArgv(node.agentCgroup, [
    'nsenter', `--net=${netnsPath(plan.paths, node.netns)}`, '--',
    ...ferry, 'agent',
    '--node', node.name,
    ...(api == null
      ? ['--cluster-file', plan.clusterFile]
      : ['--kubernetes', '--kubeconfig', api.kubeconfig, '--host-proc', '/proc', '--cgroup-root', plan.paths.cgroup2]),
    '--pin-root', node.pinRoot,
    // The node's kubelet (src/lab/kubelet/) makes every probe connection from this cgroup:
    // the agent admits those to the ports a pod's probes name, even into STRICT pods.
    ...(node.kubeletCgroup === undefined ? [] : ['--kubelet-cgroup', node.kubeletCgroup]),
    // The cluster paths end to end (--kubernetes-api): policies come from the controller's
    // configuration stream, which watches the lab's config directory; otherwise each agent
    // watches that directory itself.
    ...(api != null && ca !== null && token !== null ? ['--config-source', 'controller'] : ['--config-dir', labConfigDir(plan)]),
    // Each agent keeps its last good configuration: a restarted agent enforces it at once.
    '--config-cache', labConfigCache(plan, node.name),
    // The node's ferry-cni plugin (chained in its conflist) asks this agent to enroll a
    // meshed pod before the lab starts its containers.
    ...(node.ferryCni == null ? [] : ['--cni-socket', node.ferryCni.socket, '--cni-state-file', node.ferryCni.stateFile, '--cni-timeout', formatDuration(node.ferryCni.timeoutMs), '--cni-log-file', node.ferryCni.log]),
    ...(ca === null || token === null
      ? []
      : ['--ca-address', `${ca.address}:${ca.port}`, '--ca-root', ca.rootCert, '--ca-token-file', token,
          '--trust-domain', ca.trustDomain, '--cert-ttl', formatDuration(ca.certTtlMs)]),
    ...(plan.sockmap === false ? ['--sockmap', 'off'] : []),
    ...(plan.workers === undefined ? [] : ['--workers', String(plan.workers)]),
    ...(plan.drainGraceMs === undefined ? [] : ['--drain-grace', formatDuration(plan.drainGraceMs)]),
    ...tracingArgv(plan.tracing),
    ...(plan.adminTokenFile == null ? [] : ['--admin-token-file', plan.adminTokenFile]),
    // A new agent of the node takes the listening sockets over from the one running
    // (`ferry lab restart --node NODE --signal TERM`: the DaemonSet's surge rollout).
    '--handoff-socket', labHandoffSocket(plan, node),
    '--log-level', 'info'
  ])
}

/** The agents' tracing flags (`ferry lab up --otlp-endpoint …`). */
function tracingArgv (t: LabTracing | undefined): string[] {
  if (t === undefined) return []
  return [
    '--otlp-endpoint', t.endpoint,
    ...(t.protocol === undefined ? [] : ['--otlp-protocol', t.protocol]),
    ...(t.samplingPercent === undefined ? [] : ['--trace-sampling', String(t.samplingPercent)])
  ]
}

/** Where a node's agents hand their listening sockets over: <lab dir>/<node>/handoff.sock. */
export function labHandoffSocket (plan: LabPlan, node: PlanNode): string {
  return join(plan.stateDir, node.name, 'handoff.sock')
}

export function controllerArgv (plan: LabPlan, ca: PlanController, ferry: readonly string[] = defaultFerryArgv()): string[] {
  return inCgroupArgv(ca.cgroup, [
    'nsenter', `--net=${netnsPath(plan.paths, plan.underlay.netns)}`, '--',
    ...ferry, 'controller',
    '--data-dir', ca.dataDir,
    '--lab-nodes', ca.tokensFile,
    '--cluster-file', plan.clusterFile,
    ...(plan.kubernetesApi != null ? ['--config-dir', labConfigDir(plan)] : []),
    '--listen', `${ca.address}:${ca.port}`,
    '--serving-name', ca.address,
    '--trust-domain', ca.trustDomain,
    '--cert-ttl', formatDuration(ca.certTtlMs),
    '--log-level', 'info'
  ])
}

export function apiServerArgv (plan: LabPlan, api: PlanKubernetesApi, ferry: readonly string[] = defaultFerryArgv()): string[] {
  return inCgroupArgv(api.cgroup, [
    'nsenter', `--net=${netnsPath(plan.paths, plan.underlay.netns)}`, '--',
    ...ferry, 'lab', 'api-server',
    '--cluster-file', plan.clusterFile,
    '--listen', `${api.address}:${api.port}`,
    '--token-file', api.tokenFile
  ])
}

/**
 * The node's kubelet: in its own cgroup (every probe connection comes from it) and the
 * node's network namespace, reading the lab's state and cluster files.
 */
export function kubeletArgv (plan: LabPlan, node: PlanNode, ferry: readonly string[] = defaultFerryArgv()): string[] {
  return inCgroupArgv(node.kubeletCgroup, [
    'nsenter', `--net=${netnsPath(plan.paths, node.netns)}`, '--',
    ...ferry, 'lab', 'kubelet',
    '--state-file', plan.stateFile,
    '--node', node.name
  ])
}

export function spawnKubelet (plan: LabPlan, node: PlanNode, ferry?: readonly string[]): ChildProcess {
  return spawnDetached(kubeletArgv(plan, node, ferry), node.kubeletLog, REPO_ROOT, agentEnv(process.env))
}

export function spawnContainer (pod: PlanPod, c: PlanContainer): ChildProcess {
  return spawnDetached(podProcessArgv(pod, c.env, c.argv, c.cgroup ?? pod.cgroup), c.log, c.workingDir, {})
}

export function spawnSandbox (plan: LabPlan, pod: PlanPod): ChildProcess {
  return spawnDetached(sandboxArgv(plan, pod), '/dev/null', '/', {})
}

export function spawnApiServer (plan: LabPlan, api: PlanKubernetesApi, ferry?: readonly string[]): ChildProcess {
  return spawnDetached(apiServerArgv(plan, api, ferry), api.log, REPO_ROOT, agentEnv(process.env))
}

/** `ferry` is the argv that runs Ferry's CLI (tests substitute one that runs from source). */
export function spawnAgent (plan: LabPlan, node: PlanNode, ferry?: readonly string[]): ChildProcess {
  // The main thread's young generation capped as the DaemonSet caps it (src/config/env.ts, HEAP).
  return spawnDetached(agentArgv(plan, node, ferry), node.agentLog, REPO_ROOT, { ...agentEnv(process.env), NODE_OPTIONS: HEAP.agentNodeOptions })
}

export function spawnController (plan: LabPlan, ca: PlanController, ferry?: readonly string[]): ChildProcess {
  return spawnDetached(controllerArgv(plan, ca, ferry), ca.log, REPO_ROOT, agentEnv(process.env))
}

/** The agent's (and controller's) environment: Ferry's own variables and the basics, nothing the CLI's runner injected (NODE_OPTIONS…). */
export function agentEnv (env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(env)) {
    if (v !== undefined && (k.startsWith('FERRY_') || k === 'PATH' || k === 'HOME' || k === 'LANG' || k === 'TZ')) out[k] = v
  }
  return out
}

function spawnDetached (argv: readonly string[], log: string, cwd: string, env: NodeJS.ProcessEnv): ChildProcess {
  mkdirSync(dirname(log), { recursive: true })
  const fd = openSync(log, 'a', 0o644)
  try {
    const child = spawn(argv[0], argv.slice(1), { cwd, env, detached: true, stdio: ['ignore', fd, fd] })
    child.unref()
    // Keep the 'exit' listener from holding the CLI open once `up` is done.
    child.on('error', () => {})
    return child
  } catch (e) {
    throw ferryError('FERRY_ERR_LAB', `cannot start ${argv.join(' ')}: ${(e as Error).message}`, { cause: e })
  } finally {
    closeSync(fd)
  }
}
