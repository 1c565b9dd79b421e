import { readFileSync, renameSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { parseWorkerCount } from '../agent/worker-count'
import { ENV } from '../config/env'
import { FerryError, ferryError } from '../errors'
import { makeCgroup } from './cgroup'
import { Deadline } from './clock'
import { clusterList, podAnnotations, writeClusterFile } from './cluster-file'
import { writeNodeCniConfig } from './cni/conflist'
import { writeLabCredentials } from './node-credentials'
import { failedLogsDir, labDown } from './down'
import { expectedEnrollment } from './enrollment'
import { directModeWarnings, hostsFileFor } from './hosts'
import { defaultPaths, knownLabNames, requireRoot } from './labs'
import { readManifests } from './manifest'
import { probeWarnings } from './manifest/probes'
import type { LabSpec } from './manifest/spec'
import { checkLabName } from './names'
import { createNode, createUnderlay } from './network'
import { makePodSandbox, startPod, type Recorder } from './pod-runtime'
import { PLUGIN_BINARY } from '../cni/install'
import { preflight } from './preflight'
import { Prober } from './probe'
import { waitForAgents, waitForController, waitForKubelets, waitForPods, waitForUnderlayListener, Watched } from './readiness'
import { makeLabConfigDir } from './policies'
import { writeLabKubeconfig } from './kubeconfig'
import { spawnAgent, spawnApiServer, spawnController, spawnKubelet } from './spawn'
import { claimStateDir, journal, newState, writeState, type LabState } from './state'
import { CA_ROOT_KEY_FILE, planLab, type CniPluginOption, type LabPlan, type LabTracing, type PlanPaths } from './topology'

// `ferry lab up`: validate everything, plan everything, write the plan, then make it —
// underlay, nodes (with each node's CNI conflist), pod sandboxes (netns, veth, cgroup,
// /etc/netns; with --kubernetes-api a sandbox process each: src/lab/pod-runtime.ts),
// cluster.json (with --kubernetes-api also served by the lab's API server, and the
// agents read that instead), one kubelet per node, with the mesh the controller (the
// lab's CA: node credentials, then the process, and wait until it accepts connections)
// and the agents (and wait until they have enrolled the meshed pods and hold their
// certificates, so that apps are captured from their first connection), then each pod
// as the runtime starts it — its chained CNI plugins, then its containers — and wait
// until their ports accept connections and their kubelet has published them Running.
// Any failure, timeout or SIGINT/SIGTERM rolls the lab back with `down`'s code; the
// logs are kept in <labStateDir>/<name>.failed/ for a look.

export interface UpOptions {
  readonly name: string
  readonly files: readonly string[]
  readonly mesh: boolean
  readonly timeoutMs: number
  /** Lifetime of workload certificates (mesh only); default 24 h. Tests use seconds. */
  readonly certTtlMs?: number
  readonly paths?: PlanPaths
  readonly signal?: AbortSignal
  /** Progress lines for a person. */
  readonly log?: (line: string) => void
  readonly newUid?: () => string
  /** argv that runs Ferry's CLI for the agents; default: this Node and bin/ferry.js. Tests run it from source. */
  readonly ferryArgv?: readonly string[]
  /** Serve the lab's objects over the Kubernetes list + watch protocol; agents run with --kubernetes (mesh only). */
  readonly kubernetesApi?: boolean
  /** The agents' --sockmap (default on). */
  readonly sockmap?: boolean
  /** The agents' --workers (default: FERRY_LAB_WORKERS, else the agent's). */
  readonly workers?: number
  /** The agents' --drain-grace (default: the agent's). */
  readonly drainGraceMs?: number
  /** The agents' --otlp-endpoint, --otlp-protocol, --trace-sampling (default: tracing off). */
  readonly tracing?: LabTracing
  /** CNI plugins chained after the lab's primary on every node (tests; Ferry's own plugin). */
  readonly cniPlugins?: readonly CniPluginOption[]
}

export const DEFAULT_UP_TIMEOUT_MS = 60_000

/**
 * FERRY_LAB_WORKERS: the agents' --workers when `up` is not given one, so a whole test
 * run (or the demo) can play at one worker count without editing a test; unset or
 * empty: the agent's own default.
 */
export function labWorkersFromEnv (value: string = ENV.labWorkers): number | undefined {
  return value === '' ? undefined : parseWorkerCount(value, 'FERRY_LAB_WORKERS')
}

export async function labUp (opts: UpOptions): Promise<LabState> {
  const name = checkLabName(opts.name)
  if (opts.kubernetesApi === true && !opts.mesh) throw ferryError('FERRY_ERR_INVALID_ARG', '--kubernetes-api needs the mesh: without it the lab runs no agent to read the API')
  // Checked whether or not --workers overrides it: a bad value is a mistake either way.
  const envWorkers = labWorkersFromEnv()
  requireRoot('ferry lab up')
  const paths = opts.paths ?? defaultPaths()
  const spec = readManifests(opts.files)
  const plan = planLab(spec, { name, mesh: opts.mesh, paths, newUid: opts.newUid, certTtlMs: opts.certTtlMs, kubernetesApi: opts.kubernetesApi, sockmap: opts.sockmap, workers: opts.workers ?? envWorkers, drainGraceMs: opts.drainGraceMs, tracing: opts.tracing, cniPlugins: opts.cniPlugins, ferryCniPlugin: PLUGIN_BINARY })
  preflight(spec, plan, knownLabNames(paths), opts.ferryArgv === undefined)

  claimStateDir(plan.stateDir)
  const state = newState(spec, plan)
  try {
    writeState(plan.stateFile, state)
    await build(spec, plan, state, opts)
    state.phase = 'up'
    writeState(plan.stateFile, state)
    return state
  } catch (err) {
    throw await rollBack(plan, state, err)
  }
}

async function build (spec: LabSpec, plan: LabPlan, state: LabState, opts: UpOptions): Promise<void> {
  const say = opts.log ?? (() => {})
  const step = (s: string): void => {
    opts.signal?.throwIfAborted()
    journal(plan.stateFile, state, s)
  }
  // up is the state's only writer while it runs: steps are journaled at once, pids kept
  // in memory and written with the next step.
  const rec: Recorder = {
    step: async (s) => { step(s) },
    pids: async (entries) => { Object.assign(state.pids, entries) }
  }
  const deadline = new Deadline(opts.timeoutMs)

  step(`cgroup ${plan.cgroupRoot}`)
  makeCgroup(plan.cgroupRoot)
  step(`underlay ${plan.underlay.netns}`)
  await createUnderlay(plan)
  for (const node of plan.nodes) {
    step(`node ${node.name} ${node.netns}`)
    makeCgroup(node.podsCgroup)
    makeCgroup(node.agentCgroup)
    makeCgroup(node.kubeletCgroup)
    await createNode(plan, node)
  }
  step('cni configuration')
  writeNodeCniConfig(plan)
  say(`${plan.nodes.length} node(s) wired to underlay ${plan.underlay.netns}`)
  // The kubelets start now, while the pods are made: they publish pods once cluster.json exists.
  const kubelets = new Map<string, Watched>()
  for (const node of plan.nodes) {
    step(`kubelet ${node.name}`)
    const child = spawnKubelet(plan, node, opts.ferryArgv)
    kubelets.set(node.name, new Watched(`the kubelet of node ${node.name}`, node.kubeletLog, child))
    if (child.pid !== undefined) state.pids[`kubelet/${node.name}`] = child.pid
  }
  for (let i = 0; i < plan.pods.length; i++) await makePodSandbox(plan, plan.pods[i], hostsFileFor(spec, plan, i), rec)
  say(`${plan.pods.length} pod sandbox(es) made`)
  if (!plan.mesh) for (const w of directModeWarnings(spec)) say(`warning: ${w}`)
  for (const w of probeWarnings(spec.pods)) say(`warning: ${w}`)

  step(`cluster file ${plan.clusterFile}`)
  state.generation = 1
  writeClusterFile(plan.clusterFile, clusterList(spec, plan, state.generation))
  writeState(plan.stateFile, state)

  const prober = new Prober()
  try {
    const ca = plan.controller ?? null
    if (ca !== null) {
      step(`controller ${ca.address}:${ca.port}`)
      await writeLabCredentials(plan, ca)
      makeCgroup(ca.cgroup)
      const child = spawnController(plan, ca, opts.ferryArgv)
      if (child.pid !== undefined) state.pids.controller = child.pid
      writeState(plan.stateFile, state)
      await waitForController(plan, ca, new Watched('the lab\'s controller', ca.log, child), prober, deadline, opts.signal)
      say(`controller (CA) listening on ${ca.address}:${ca.port} in ${plan.underlay.netns}`)
    }
    const api = plan.kubernetesApi ?? null
    if (api !== null) {
      step(`api server ${api.address}:${api.port}`)
      writeLabKubeconfig(api, plan.name)
      makeCgroup(api.cgroup)
      const child = spawnApiServer(plan, api, opts.ferryArgv)
      if (child.pid !== undefined) state.pids['api-server'] = child.pid
      writeState(plan.stateFile, state)
      await waitForUnderlayListener(plan, 'the lab\'s API server', api, new Watched('the lab\'s API server', api.log, child), prober, deadline, opts.signal)
      say(`API server (list + watch of the lab's objects) listening on http://${api.address}:${api.port} in ${plan.underlay.netns}`)
    }
    if (plan.mesh) {
      step(`config directory ${makeLabConfigDir(plan)}`)
      const expected = expectedEnrollment(readFileSync(plan.clusterFile, 'utf8'), plan.clusterFile)
      const agents = new Map<string, Watched>()
      for (const node of plan.nodes) {
        step(`agent ${node.name}`)
        const child = spawnAgent(plan, node, opts.ferryArgv)
        agents.set(node.name, new Watched(`the agent of node ${node.name}`, node.agentLog, child))
        if (child.pid !== undefined) state.pids[`node/${node.name}`] = child.pid
      }
      writeState(plan.stateFile, state)
      await waitForAgents(plan, agents, expected, prober, deadline, opts.signal)
      say(`agents ready on ${plan.nodes.map((n) => n.name).join(', ')}`)
    }

    // Each pod as the kubelet starts it: its chained CNI plugins, then its containers.
    // Pods do not wait for each other.
    const started = await Promise.all(plan.pods.map(async (pod, i) =>
      await startPod(plan, pod, podAnnotations(plan, spec.pods[i], pod), rec, { deadline, signal: opts.signal, say })))
    const containers = new Map(started.flatMap((m) => [...m]))
    writeState(plan.stateFile, state)
    await waitForPods(plan, plan.pods, containers, prober, deadline, opts.signal)
    await waitForKubelets(plan, plan.pods, kubelets, deadline, opts.signal)
    say(`${plan.pods.length} pod(s) running`)
  } finally {
    prober.close()
  }
}

/** Node tokens and the CA's root key are not kept with a failed lab's logs. */
function removeSecrets (plan: LabPlan): void {
  const ca = plan.controller ?? null
  if (ca === null) return
  rmSync(join(ca.tokensFile, '..'), { recursive: true, force: true })
  rmSync(join(ca.dataDir, CA_ROOT_KEY_FILE), { force: true })
}

/** Removes everything `up` made; returns the error to throw (the cause, with where its logs went). */
async function rollBack (plan: LabPlan, state: LabState, cause: unknown): Promise<unknown> {
  const failedDir = failedLogsDir(plan.paths, plan.name)
  let err: unknown = cause
  if (cause instanceof Error && cause.name === 'AbortError') err = ferryError('FERRY_ERR_LAB', `lab ${plan.name}: interrupted; rolled back`)
  try {
    state.phase = 'failed'
    state.error = err instanceof Error ? err.message : String(err)
    writeState(plan.stateFile, state)
    rmSync(failedDir, { recursive: true, force: true })
    removeSecrets(plan)
    renameSync(plan.stateDir, failedDir) // logs, state and cluster file, for a look
  } catch { /* keep going: removing the lab matters more than keeping its logs */ }
  const moved = (e: unknown): unknown => e instanceof FerryError
    ? new FerryError(e.code, e.message.split(plan.stateDir + '/').join(failedDir + '/'), { cause: e.cause, errno: e.errno })
    : e
  try {
    await labDown(plan.name, { paths: plan.paths, graceMs: 0, state, removeFailedLogs: false })
  } catch (downErr) {
    const first = moved(err)
    const msg = first instanceof Error ? first.message : String(first)
    return ferryError('FERRY_ERR_LAB', `${msg}\nand rolling back failed too: ${(downErr as Error).message}`, { cause: downErr })
  }
  return moved(err)
}
