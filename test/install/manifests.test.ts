import t from 'tap'
import { spawnSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseAllDocuments } from 'yaml'
import { parseAgentOptions } from '../../src/agent/options'
import { PORTS } from '../../src/config/env'
import { parseControllerOptions } from '../../src/controller/options'
import { type KubeObject, kustomizeBuild } from '../../src/install/kustomize'
import { grantSet, grantsOf, rbacProblems } from '../../src/install/rbac'
import { DAEMONSET_DIR, OVERLAYS, overlayDir } from '../../src/install/render'
import { formatProblems, validateManifests } from '../../src/install/validate'

// daemonset/: the base and every overlay, built by Ferry's renderer, must equal what
// `kubectl kustomize` (kustomize v5.5, offline) built — recorded under
// test/install/kustomize-recorded/ so the check also runs where kubectl is not
// installed; where it is (as on these machines), the recording is checked against a
// fresh `kubectl kustomize` run too, so it cannot go stale — and validate against the Kubernetes OpenAPI schemas (kubernetes-models,
// unknown fields rejected) and keep RBAC least-privilege. No cluster is involved: this
// checks the manifests as the API server's schemas and kustomize see them, not how a
// cluster runs them.

const RECORDED = join(__dirname, 'kustomize-recorded')
/** The agent reads, but for Events about pods and the reviews that authenticate /debug callers. */
const AGENT = { namespace: 'ferry-system', name: 'ferry-agent', writes: ['core/events create', 'authentication.k8s.io/tokenreviews create', 'authorization.k8s.io/subjectaccessreviews create'] }

function objectsOf (yamlText: string): KubeObject[] {
  return parseAllDocuments(yamlText).map((d) => d.toJS() as KubeObject).filter((o) => o !== null)
}

/** kubectl's output, or null when kubectl is not installed. */
function kubectlKustomize (dir: string): KubeObject[] | null {
  const r = spawnSync('kubectl', ['kustomize', dir], { encoding: 'utf8', timeout: 30_000 })
  if ((r.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') return null
  if (r.error !== undefined || r.status !== 0) throw new Error(`kubectl kustomize ${dir} failed: ${r.error?.message ?? r.stderr}`)
  return objectsOf(r.stdout)
}

const built = new Map(OVERLAYS.map((o) => [o, kustomizeBuild(overlayDir(o))]))

function find (objects: KubeObject[], kind: string, name: string): any {
  const o = objects.find((x) => x.kind === kind && x.metadata.name === name)
  if (o === undefined) throw new Error(`no ${kind} ${name}`)
  return o
}

t.test('Ferry\'s renderer builds exactly what kubectl kustomize builds, in the same order', async (t) => {
  for (const overlay of OVERLAYS) {
    const file = join(RECORDED, `${overlay}.yaml`)
    t.ok(existsSync(file), `a recorded kubectl kustomize output for ${overlay}`)
    const recorded = objectsOf(readFileSync(file, 'utf8'))
    t.same(built.get(overlay), recorded, `daemonset/${overlay} equals the recorded kustomize build`)
    const live = kubectlKustomize(overlayDir(overlay))
    if (live !== null) t.same(live, recorded, `the recording of ${overlay} is what kubectl kustomize builds today (re-record if daemonset/ changed)`)
  }
})

t.test('every object of every overlay validates against the Kubernetes schemas', async (t) => {
  for (const overlay of OVERLAYS) {
    const problems = validateManifests(built.get(overlay)!)
    t.equal(formatProblems(problems), '', `${overlay}: no problems`)
  }
  t.same(built.get('production')!.map((o) => o.kind).filter((k) => k === 'PodDisruptionBudget'), ['PodDisruptionBudget'], 'the production overlay adds a PDB')
})

t.test('the validator catches what the API server would refuse (so the clean result above means something)', async (t) => {
  const objects = structuredClone(built.get('base')!)
  const ds = find(objects, 'DaemonSet', 'ferry-agent')
  const agent = ds.spec.template.spec.containers[0]
  agent.securityContext.privilegd = true
  agent.securityContext.allowPrivilegeEscalation = false
  agent.volumeMounts[0].mountPropagation = 'Bidirectional'
  agent.readinessProbe.httpGet.port = 'health'
  ds.spec.selector.matchLabels['app.kubernetes.io/name'] = 'other'
  ds.spec.updateStrategy.rollingUpdate.maxUnavailable = []
  find(objects, 'Deployment', 'ferry-controller').spec.template.spec.containers[0].volumeMounts[0].name = 'missing'
  const text = formatProblems(validateManifests(objects))
  t.match(text, /DaemonSet ferry-system\/ferry-agent: spec\.template\.spec\.containers\[0\]\.securityContext\.privilegd: unknown field "privilegd"/)
  t.match(text, /allowPrivilegeEscalation: cannot be false for a privileged container or one with SYS_ADMIN/)
  t.match(text, /mountPropagation: Bidirectional is allowed only in privileged containers/)
  t.match(text, /readinessProbe: refers to port "health"/)
  t.match(text, /spec\.selector: matchLabels app\.kubernetes\.io\/name=other does not match/)
  t.match(text, /spec\.updateStrategy\.rollingUpdate\.maxUnavailable: /)
  t.match(text, /Deployment ferry-system\/ferry-controller: .*volumeMounts\[0\]\.name: no volume named "missing"/)
})

t.test('RBAC: exactly the grants the agent and the controller need, nothing broader', async (t) => {
  for (const overlay of OVERLAYS) {
    const objects = built.get(overlay)!
    t.same(rbacProblems(objects, [AGENT]), [], `${overlay}: no wildcards, no writes (but Events and reviews) or Secrets for the agent`)
    t.same(grantSet(grantsOf(objects, { namespace: 'ferry-system', name: 'ferry-agent' })), [
      'apps/daemonsets get [ferry-agent]',
      'authentication.k8s.io/tokenreviews create', 'authorization.k8s.io/subjectaccessreviews create',
      'core/events create',
      'core/namespaces get', 'core/namespaces list', 'core/namespaces watch',
      'core/pods get', 'core/pods list', 'core/pods watch',
      'core/services get', 'core/services list', 'core/services watch',
      'discovery.k8s.io/endpointslices get', 'discovery.k8s.io/endpointslices list', 'discovery.k8s.io/endpointslices watch'
    ], `${overlay}: the agent reads pods, namespaces, services and endpointslices (policies come from the controller's stream), posts Events about pods, reviews debug callers' tokens, and reads its own DaemonSet by name (is it being deleted?)`)
    t.same(find(objects, 'ClusterRole', 'ferry-debug').rules, [{ apiGroups: ['ferry.dev'], resources: ['agents/debug'], verbs: ['get'] }], `${overlay}: a role to grant operators the agents' /debug endpoints, bound to nobody`)
    t.notOk(objects.some((o) => (o.kind === 'ClusterRoleBinding' || o.kind === 'RoleBinding') && (o as any).roleRef?.name === 'ferry-debug'), 'ferry-debug is not bound by the install')
    t.same(grantSet(grantsOf(objects, { namespace: 'ferry-system', name: 'ferry-controller' })), [
      'authentication.k8s.io/tokenreviews create',
      'core/pods get', 'core/pods list', 'core/pods watch',
      'gateway.networking.k8s.io/grpcroutes get', 'gateway.networking.k8s.io/grpcroutes list', 'gateway.networking.k8s.io/grpcroutes watch',
      'gateway.networking.k8s.io/grpcroutes/status patch',
      'gateway.networking.k8s.io/httproutes get', 'gateway.networking.k8s.io/httproutes list', 'gateway.networking.k8s.io/httproutes watch',
      'gateway.networking.k8s.io/httproutes/status patch',
      'networking.istio.io/destinationrules get', 'networking.istio.io/destinationrules list', 'networking.istio.io/destinationrules watch',
      'networking.istio.io/destinationrules/status patch',
      'networking.istio.io/virtualservices get', 'networking.istio.io/virtualservices list', 'networking.istio.io/virtualservices watch',
      'networking.istio.io/virtualservices/status patch',
      'security.ferry.dev/authorizationpolicies get', 'security.ferry.dev/authorizationpolicies list', 'security.ferry.dev/authorizationpolicies watch',
      'security.ferry.dev/authorizationpolicies/status patch',
      'security.ferry.dev/peerauthentications get', 'security.ferry.dev/peerauthentications list', 'security.ferry.dev/peerauthentications watch',
      'security.ferry.dev/peerauthentications/status patch',
      'security.ferry.dev/ratelimits get', 'security.ferry.dev/ratelimits list', 'security.ferry.dev/ratelimits watch',
      'security.ferry.dev/ratelimits/status patch',
      'security.istio.io/authorizationpolicies get', 'security.istio.io/authorizationpolicies list', 'security.istio.io/authorizationpolicies watch',
      'security.istio.io/authorizationpolicies/status patch',
      'security.istio.io/peerauthentications get', 'security.istio.io/peerauthentications list', 'security.istio.io/peerauthentications watch',
      'security.istio.io/peerauthentications/status patch'
    ], `${overlay}: the controller reviews tokens, reads pods, the policy resources and the routes, and writes only their status`)
  }
  const broken = structuredClone(built.get('base')!)
  const role = find(broken, 'ClusterRole', 'ferry-agent')
  const n = role.rules.length
  role.rules.push({ apiGroups: [''], resources: ['secrets'], verbs: ['get'] }, { apiGroups: ['*'], resources: ['pods'], verbs: ['delete'] })
  const problems = rbacProblems(broken, [AGENT]).join('\n')
  t.match(problems, `rules[${n}]: Secrets without resourceNames`)
  t.match(problems, `rules[${n + 1}]: a wildcard in apiGroups`)
  t.match(problems, /ferry-agent must only read, but ClusterRole ferry-agent grants delete on pods/)
  t.match(problems, /ferry-agent must not read Secrets/)
})

t.test('the agent DaemonSet: privileges only as needed, on every node, rolled one node at a time, new agent first', async (t) => {
  for (const overlay of OVERLAYS) {
    const ds = find(built.get(overlay)!, 'DaemonSet', 'ferry-agent')
    const pod = ds.spec.template.spec
    const agent = pod.containers.find((c: any) => c.name === 'agent')
    t.equal(pod.hostPID, undefined, 'no hostPID: /host/proc is enough to find pod processes')
    t.equal(pod.hostNetwork, true, 'the node\'s network namespace')
    t.equal(pod.priorityClassName, 'system-node-critical')
    t.same(pod.tolerations, [{ operator: 'Exists' }], 'tolerates every taint')
    // The surge rollout: the new agent starts beside the old one and takes its sockets
    // over (--handoff-socket), so a node is never without an agent. With hostNetwork a
    // declared port is a host port, and the scheduler would keep the surge pod off the
    // node: no container of the pod may declare one.
    t.same(ds.spec.updateStrategy, { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } })
    t.same([...pod.initContainers, ...pod.containers].filter((c: any) => (c.ports ?? []).length > 0).map((c: any) => c.name), [], 'no ports, so no host ports')
    t.equal(agent.securityContext.privileged, false)
    t.same(agent.securityContext.capabilities, { drop: ['ALL'], add: ['BPF', 'NET_ADMIN', 'SYS_ADMIN', 'SYS_PTRACE'] })
    t.equal(agent.securityContext.readOnlyRootFilesystem, true)
    const privileged = [...pod.initContainers, ...pod.containers].filter((c: any) => c.securityContext?.privileged === true)
    t.same(privileged.map((c: any) => c.name), ['mount-bpffs'], 'only the bpffs mount init container is privileged')
    t.same(privileged[0].volumeMounts, [{ name: 'bpffs', mountPath: '/sys/fs/bpf', mountPropagation: 'Bidirectional' }], '…and it sees nothing but bpffs')
    const mounts = Object.fromEntries(agent.volumeMounts.map((m: any) => [m.mountPath, m]))
    const hostPaths = Object.fromEntries(pod.volumes.filter((v: any) => v.hostPath !== undefined).map((v: any) => [v.name, v.hostPath.path]))
    t.match(mounts['/sys/fs/bpf'], { name: 'bpffs', mountPropagation: 'HostToContainer' })
    t.equal(hostPaths.bpffs, '/sys/fs/bpf')
    t.match(mounts['/host/proc'], { name: 'host-proc', readOnly: true })
    t.equal(hostPaths['host-proc'], '/proc')
    t.match(mounts['/host/sys/fs/cgroup'], { name: 'cgroup', readOnly: true, mountPropagation: 'HostToContainer' })
    t.equal(hostPaths.cgroup, '/sys/fs/cgroup')
    t.match(mounts['/var/run/netns'], { name: 'netns', readOnly: true, mountPropagation: 'HostToContainer' })
    t.equal(hostPaths.netns, '/var/run/netns')
    // ferry-cni: the plugin's socket and state file at the same path on the host as here; the CNI directories to keep the entry in.
    t.match(mounts['/var/run/ferry'], { name: 'ferry-run' })
    t.equal(hostPaths['ferry-run'], '/var/run/ferry')
    t.match(mounts['/host/etc/cni/net.d'], { name: 'cni-conf' })
    t.equal(hostPaths['cni-conf'], '/etc/cni/net.d')
    t.match(mounts['/host/opt/cni/bin'], { name: 'cni-bin' })
    t.equal(hostPaths['cni-bin'], '/opt/cni/bin')
    const installCni = pod.initContainers.find((c: any) => c.name === 'install-cni')
    t.same(installCni.securityContext, { privileged: false, runAsUser: 0, runAsGroup: 0, readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] }, seccompProfile: { type: 'RuntimeDefault' } }, 'the plugin\'s installer: no privilege, no capability')
    t.same(installCni.volumeMounts.map((m: any) => `${m.name}:${hostPaths[m.name] as string}`).sort(), ['cni-bin:/opt/cni/bin', 'cni-conf:/etc/cni/net.d'], '…and it sees only the two CNI directories')
    t.same(pod.initContainers.map((c: any) => c.name), ['mount-bpffs', 'install-cni'], 'the plugin is in place before the agent starts')
    const token = pod.volumes.find((v: any) => v.name === 'ferry-token').projected.sources[0].serviceAccountToken
    t.same(token, { path: 'ferry-token', audience: 'ferry-ca', expirationSeconds: 43200 }, 'a pod-bound token for Ferry\'s audience')
    t.same(agent.readinessProbe.httpGet, { path: '/healthz/ready', port: PORTS.ready })
    t.ok(agent.resources.requests.cpu !== undefined && agent.resources.requests.memory !== undefined && agent.resources.limits.memory !== undefined, 'requests and a memory limit')
    t.ok(pod.terminationGracePeriodSeconds >= 10, 'time to drain')
    t.equal(ds.spec.template.metadata.annotations['prometheus.io/port'], String(PORTS.admin), 'scraped on the admin port of src/config/env.ts')
  }
  t.equal(find(built.get('production')!, 'DaemonSet', 'ferry-agent').spec.minReadySeconds, 30)
})

t.test('the controller: CA port, root key from the Secret, no capabilities, preStop before the Service forgets it', async (t) => {
  const d = find(built.get('base')!, 'Deployment', 'ferry-controller')
  const c = d.spec.template.spec.containers[0]
  t.equal(c.ports[0].containerPort, PORTS.ca)
  t.equal(find(built.get('base')!, 'Service', 'ferry-controller').spec.ports[0].port, PORTS.ca)
  t.same(c.securityContext.capabilities, { drop: ['ALL'] })
  t.equal(c.securityContext.allowPrivilegeEscalation, false)
  t.same(d.spec.template.spec.volumes[0], { name: 'ca-root', secret: { secretName: 'ferry-ca-root', defaultMode: 0o400 } })
  t.ok(c.lifecycle.preStop.sleep.seconds > 0)
  t.equal(find(built.get('production')!, 'Deployment', 'ferry-controller').spec.replicas, 2)
})

t.test('the container args are the agent\'s and the controller\'s real options', async (t) => {
  // Guards against the manifests drifting from the option parsers (every overlay and
  // render: agent-args.test.ts for the agent, test/controller/options.test.ts for the
  // controller); here the base's values that other objects depend on.
  const objects = built.get('base')!
  const agentArgs: string[] = find(objects, 'DaemonSet', 'ferry-agent').spec.template.spec.containers[0].args
  t.equal(agentArgs[0], 'agent')
  const agentOpts = parseAgentOptions(agentArgs.slice(1).map((a) => a.replace('$(NODE_NAME)', 'node-1')), { POD_NAMESPACE: 'ferry-system' })
  t.match(agentOpts, { node: 'node-1', pinRoot: '/sys/fs/bpf/ferry', configFromController: true, identity: { caAddress: `ferry-controller.ferry-system.svc:${PORTS.ca}`, trustDomain: 'cluster.local' } })
  const controllerArgs: string[] = find(objects, 'Deployment', 'ferry-controller').spec.template.spec.containers[0].args
  t.equal(controllerArgs[0], 'controller')
  const controllerOpts = parseControllerOptions(controllerArgs.slice(1))
  t.match(controllerOpts, { listen: { host: '0.0.0.0', port: PORTS.ca }, trustDomain: 'cluster.local', stateDir: '/var/lib/ferry-controller' })
  const controllerPod = find(objects, 'Deployment', 'ferry-controller').spec.template.spec
  const stateMount = controllerPod.containers[0].volumeMounts.find((m: any) => m.mountPath === controllerOpts.stateDir)
  t.ok(stateMount !== undefined && stateMount.readOnly !== true, 'the controller\'s --state-dir is a writable mount (its --data-dir is a read-only Secret)')
  t.ok(controllerOpts.servingNames.includes('ferry-controller.ferry-system.svc'))
})

t.test('daemonset/ layout', async (t) => {
  t.equal(DAEMONSET_DIR, join(__dirname, '..', '..', 'daemonset'))
})
