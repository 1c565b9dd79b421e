import t from 'tap'
import { parseAgentOptions, KUBERNETES_DEFAULTS, NODE_NAME_ENV, POD_NAMESPACE_ENV } from '../../src/agent/options'
import { parseCniInstallOptions } from '../../src/cli/cni-command'
import { HEAP } from '../../src/config/env'
import { kustomizeBuild } from '../../src/install/kustomize'
import { OVERLAYS, overlayDir, renderObjects } from '../../src/install/render'
import { AGENT, parseSettings } from '../../src/install/settings'

// The DaemonSet's agent args must be what `ferry agent` accepts — for the base, every
// overlay and `ferry install --render` with options — parsed by the agent's own parser
// with $(VAR) references expanded from the container's env as the kubelet expands them
// (the downward API's spec.nodeName becomes a node name). The kubelet locator's default
// host paths must be the container's mounts, and the drain must end before the kubelet's
// SIGKILL. So the manifests and the parser cannot drift apart again.

type Obj = Record<string, any>
interface Check { equal: (a: unknown, b: unknown, m: string) => void, same: (a: unknown, b: unknown, m: string) => void, ok: (a: unknown, m: string) => void }

function agentPod (objects: Obj[]): Obj {
  const ds = objects.find((o) => o.kind === AGENT.kind && o.metadata.name === AGENT.name)
  if (ds === undefined) throw new Error('no agent DaemonSet')
  return ds.spec.template.spec
}

/** What the kubelet does to args: $(NAME) → the container env's value (fieldRefs resolved by the caller's table). */
function expand (args: string[], container: Obj, downward: Record<string, string>): { args: string[], env: Record<string, string> } {
  const env: Record<string, string> = {}
  for (const e of container.env ?? []) {
    if (typeof e.value === 'string') env[e.name] = e.value
    else if (e.valueFrom?.fieldRef?.fieldPath !== undefined) env[e.name] = downward[e.valueFrom.fieldRef.fieldPath]
  }
  return { args: args.map((a) => a.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, name: string) => env[name] ?? m)), env }
}

async function checkAgent (t: Check, objects: Obj[], what: string): Promise<void> {
  const pod = agentPod(objects)
  const container = pod.containers.find((c: Obj) => c.name === AGENT.container)
  t.equal(container.args[0], 'agent', `${what}: the agent command`)
  const { args, env } = expand(container.args.slice(1), container, { 'spec.nodeName': 'worker-7', 'metadata.namespace': 'mesh-ns' })
  t.equal(env[NODE_NAME_ENV], 'worker-7', `${what}: $${NODE_NAME_ENV} comes from the downward API`)
  t.equal(env.NODE_OPTIONS, HEAP.agentNodeOptions, `${what}: the main thread's young generation is capped as the lab's agents' (src/config/env.ts HEAP)`)
  const o = parseAgentOptions(args, env)
  t.equal(o.node, 'worker-7', `${what}: the node is the pod's`)
  t.equal(o.clusterFile, null, `${what}: no cluster file`)
  t.ok(o.kubernetes !== null, `${what}: --kubernetes`)
  t.equal(o.kubernetes?.kubeconfig, null, `${what}: in-cluster credentials`)
  const mounts = new Set((container.volumeMounts as Obj[]).map((m) => m.mountPath))
  t.ok(mounts.has(o.kubernetes?.hostProc), `${what}: --host-proc ${o.kubernetes?.hostProc} is mounted`)
  t.ok(mounts.has(o.kubernetes?.cgroupRoot), `${what}: --cgroup-root ${o.kubernetes?.cgroupRoot} is mounted`)
  t.ok(mounts.has(o.pinRoot.split('/').slice(0, 4).join('/')), `${what}: the pin root ${o.pinRoot} is on the mounted bpffs`)
  t.equal(o.kubeletCgroup, 'auto', `${what}: probe admission, the kubelet found under --host-proc`)
  const stateMount = (container.volumeMounts as Obj[]).find((m) => o.configCache?.startsWith(`${String(m.mountPath)}/`) === true)
  t.ok(stateMount !== undefined && stateMount.readOnly !== true, `${what}: --config-cache ${String(o.configCache)} is on a writable mount`)
  const stateVolume = (pod.volumes as Obj[]).find((v) => v.name === stateMount?.name)
  t.equal(stateVolume?.hostPath?.path, '/var/lib/ferry', `${what}: a hostPath, so the saved configuration outlives the pod`)
  // The handoff socket: on a writable hostPath, so the old and the new agent pod of a rollout reach the same file.
  const handoffMount = (container.volumeMounts as Obj[]).find((m) => o.handoffSocket?.startsWith(`${String(m.mountPath)}/`) === true)
  t.ok(handoffMount !== undefined && handoffMount.readOnly !== true, `${what}: --handoff-socket ${String(o.handoffSocket)} is on a writable mount`)
  const handoffVolume = (pod.volumes as Obj[]).find((v) => v.name === handoffMount?.name)
  t.equal(handoffVolume?.hostPath?.path, handoffMount?.mountPath, `${what}: a hostPath at the same path, shared by both pods of a rollout`)
  // Tracing: off but in the tracing overlay, which sets OpenTelemetry's variables.
  if (what.endsWith('tracing')) t.same(o.tracing, { endpoint: 'http://otel-collector.observability.svc:4317/', protocol: 'grpc', samplingPercent: 1 }, `${what}: spans to the collector, 1 % sampled`)
  else t.equal(o.tracing, null, `${what}: no tracing`)
  if (what.startsWith('install')) t.same([o.clusterName, o.clusterDomain], ['east-1', 'corp.internal'], `${what}: the cluster's name and DNS domain as set`)
  else t.same([o.clusterName, o.clusterDomain], ['Kubernetes', 'cluster.local'], `${what}: the cluster's name (Istio's default) and DNS domain, given explicitly`)
  t.ok(container.args.includes(`--cluster-name=${o.clusterName}`) && container.args.includes(`--cluster-domain=${o.clusterDomain}`), `${what}: both are in the args, to be changed there`)
  const grace = pod.terminationGracePeriodSeconds ?? 30
  t.ok(o.drainGraceMs < grace * 1000, `${what}: the drain (${o.drainGraceMs} ms) ends before terminationGracePeriodSeconds (${grace} s)`)

  // ferry-cni: the init container's entry is the one the agent keeps (no rewrite at every
  // start), in the directories both mount, with the socket and state file at the host's
  // own paths (the plugin runs on the host).
  t.ok(o.cni !== null, `${what}: the agent serves the ferry-cni plugin`)
  const installer = pod.initContainers.find((c: Obj) => c.name === 'install-cni')
  t.same(installer.args.slice(0, 2), ['cni', 'install'], `${what}: the init container runs ferry cni install`)
  const inst = parseCniInstallOptions(installer.args.slice(2))
  t.same(inst.entry, o.cni?.entry, `${what}: one entry for the installer and the agent`)
  t.equal(inst.confDir, o.cni?.confDir, `${what}: one CNI configuration directory`)
  t.equal(inst.binDir, o.cni?.binDir, `${what}: one CNI bin directory`)
  const hostPathOf = (c: Obj, path: string): string | undefined => {
    const m = (c.volumeMounts as Obj[]).find((x) => path === x.mountPath || path.startsWith(`${String(x.mountPath)}/`))
    const v = (pod.volumes as Obj[]).find((x) => x.name === m?.name)
    return v?.hostPath === undefined ? undefined : `${String(v.hostPath.path)}${path.slice(String(m?.mountPath).length)}`
  }
  for (const path of [o.cni?.entry.socket, o.cni?.entry.stateFile, o.cni?.entry.logFile] as string[]) {
    t.equal(hostPathOf(container, path), path, `${what}: ${path} is the same path on the host`)
  }
  for (const dir of [inst.confDir, inst.binDir]) {
    t.ok(hostPathOf(installer, dir) !== undefined && hostPathOf(installer, dir) === hostPathOf(container, dir), `${what}: ${dir} is the same host directory for both`)
  }
  t.same(o.cni?.daemonSet, { namespace: 'mesh-ns', name: agentDaemonSet(objects).metadata.name }, `${what}: the agent's own DaemonSet, in $${POD_NAMESPACE_ENV} from the downward API`)
}

function agentDaemonSet (objects: Obj[]): Obj {
  return objects.find((o) => o.kind === AGENT.kind && o.metadata.name === AGENT.name) as Obj
}

t.test('the agent\'s args in every overlay parse with --kubernetes, $NODE_NAME, mounted host paths and a drain inside the grace period', async (t) => {
  t.same(KUBERNETES_DEFAULTS, { hostProc: '/host/proc', cgroupRoot: '/host/sys/fs/cgroup', configCache: '/var/lib/ferry/config-cache.json' })
  for (const overlay of OVERLAYS) await checkAgent(t, kustomizeBuild(overlayDir(overlay)), `daemonset/${overlay}`)
})

t.test('the same for `ferry install --render` with options', async (t) => {
  for (const overlay of OVERLAYS) {
    const settings = parseSettings(['trustDomain=example.org', 'logLevel=debug', 'namespace=mesh-system', 'clusterName=east-1', 'clusterDomain=corp.internal'])
    const objects = await renderObjects({ overlay, settings, manifests: true, generateCa: false })
    await checkAgent(t, objects, `install --render --overlay ${overlay}`)
  }
})
