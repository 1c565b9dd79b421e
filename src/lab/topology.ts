import { createHash, randomUUID } from 'node:crypto'
import { basename, join } from 'node:path'
import { PORTS } from '../config/env'
import { CERT_TTL } from '../identity/cert-ttl'
import { resolveContainer } from './container-env'
import { CONTROLLER_UNDERLAY_IP, FIRST_POD_HOST, MAX_PODS_PER_NODE, nodePodCIDRs, nodeUnderlayIPs, podIPs, ServiceIPAllocator } from './ipam'
import type { IPFamily, LabPod, LabService, LabSpec } from './manifest/spec'
import { additionalNetnsName, allocateNetnsNames, cgroupRootName, pinDirName, underlayNetnsName } from './names'

// The whole lab, decided before anything is made: names, addresses, cgroup paths, log
// files, argv and env of every process. Pure (uids and time are injected), so the plan
// is unit-tested and can be written to the state file before the first resource exists.

export interface PlanPaths {
  readonly cgroup2: string
  readonly netnsDir: string
  readonly etcNetnsDir: string
  readonly bpffs: string
  readonly labStateDir: string
}

export interface PlanOptions {
  readonly name: string
  readonly mesh: boolean
  readonly paths: PlanPaths
  readonly newUid?: () => string
  /** Workload certificate lifetime (mesh only); default 24 h. */
  readonly certTtlMs?: number
  /** Serve the lab's objects over the Kubernetes list + watch protocol and run the agents with --kubernetes (mesh only). */
  readonly kubernetesApi?: boolean
  /** The agents' --sockmap; default on. */
  readonly sockmap?: boolean
  /** The agents' --workers; absent: the agent's default. */
  readonly workers?: number
  /** The agents' --drain-grace; absent: the agent's default. */
  readonly drainGraceMs?: number
  /** The agents' tracing flags (--otlp-endpoint …); absent: tracing off. */
  readonly tracing?: LabTracing
  /** CNI plugins chained after the lab's own primary on every node, in order (none by default). */
  readonly cniPlugins?: readonly CniPluginOption[]
  /**
   * With the mesh: the ferry-cni plugin binary, chained last on every node (after
   * `cniPlugins`), its socket and state file shared with the node's agent; absent: none.
   */
  readonly ferryCniPlugin?: string
}

/** The agents' tracing flags, as given to `ferry lab up` (validated there). */
export interface LabTracing {
  readonly endpoint: string
  readonly protocol?: 'grpc' | 'http/protobuf'
  /** Percentage 0-100; absent: the agent's default. */
  readonly samplingPercent?: number
}

/** A chained CNI plugin to put in each node's network configuration list. */
export interface CniPluginOption {
  /** The executable; the lab links it into each node's CNI bin dir as `type`. */
  readonly path: string
  /** The plugin's type (its name in the bin dir); default: the file name of `path` without extension. */
  readonly type?: string
  /** Further keys of the plugin's entry in the conflist (capabilities, plugin settings), or a function of the node giving them. */
  readonly config?: Readonly<Record<string, unknown>> | ((node: Omit<PlanNode, 'cni'>) => Readonly<Record<string, unknown>>)
}

/** A chained plugin as planned for one node. */
export interface PlanCniPlugin {
  readonly type: string
  readonly path: string
  /** The plugin's entry in the conflist besides `type`. */
  readonly config: Readonly<Record<string, unknown>>
}

/**
 * A node's CNI setup, laid out as on a node (/etc/cni/net.d, /opt/cni/bin, the runtime's
 * result cache) below the lab's state dir. The lab is the container runtime: it reads
 * the conflist when it sets up or tears down a pod's network, computes the first
 * (primary) plugin's result itself, and executes the chained plugins from `binDir`.
 */
export interface PlanNodeCni {
  readonly confDir: string
  readonly conflist: string
  readonly binDir: string
  /** ADD results kept for DEL, one file per attachment (libcni's /var/lib/cni/results). */
  readonly resultsDir: string
  /** JSON lines: every plugin call and its outcome. */
  readonly log: string
  readonly plugins: readonly PlanCniPlugin[]
}

export interface PlanNode {
  readonly name: string
  readonly index: number
  readonly netns: string
  readonly ipv4: string
  readonly ipv6: string
  readonly podCIDRv4: string
  readonly podCIDRv6: string
  /** The node's end of its underlay link is `eth0`; this is the underlay's end, on the bridge. */
  readonly underlayPeer: string
  /** Other nodes' pod networks, reached through their underlay address. */
  readonly routes: ReadonlyArray<{ readonly cidr: string, readonly via: string }>
  readonly cgroup: string
  readonly podsCgroup: string
  readonly agentCgroup: string
  /**
   * The node's kubelet (`ferry lab kubelet`): every probe connection to a pod comes from a
   * process in this cgroup, in the node's network namespace, from the node's address.
   */
  readonly kubeletCgroup: string
  /** JSON lines of the kubelet: one per probe result, container restart and status write. */
  readonly kubeletLog: string
  readonly pinRoot: string
  readonly agentLog: string
  /** The agent's bearer token for the controller (mode 0600; mesh only, else null). */
  readonly caTokenFile?: string | null
  readonly cni: PlanNodeCni
  /** The ferry-cni plugin's settings on this node, shared by its conflist entry and the agent's --cni-* (mesh with the plugin; else null or absent). */
  readonly ferryCni?: FerryCniSettings | null
}

/** Where a node's ferry-cni plugin reaches the agent, what it decides from, how long it waits. */
export interface FerryCniSettings {
  readonly socket: string
  readonly stateFile: string
  readonly log: string
  readonly timeoutMs: number
}

/**
 * How long a meshed pod's ADD waits for its enrollment: under the runtime's limit on one
 * plugin call (src/lab/cni/), so the agent's reason, not a timeout, is what the runtime logs.
 */
export const FERRY_CNI_TIMEOUT_MS = 10_000

/**
 * The lab's certificate authority (`ferry controller`), one for the whole lab, in the
 * underlay namespace on an address of the underlay bridge that every node reaches.
 */
export interface PlanController {
  readonly address: string
  readonly port: number
  readonly trustDomain: string
  readonly certTtlMs: number
  /** Below the lab's cgroup root, beside the nodes. */
  readonly cgroup: string
  /** The CA's data directory (root key and certificate), mode 0700. */
  readonly dataDir: string
  /** The root certificate agents trust; the controller writes it on its first start. */
  readonly rootCert: string
  /** Token → node, read by the controller (`--lab-nodes`), mode 0600. */
  readonly tokensFile: string
  readonly log: string
}

export interface PlanContainer {
  readonly name: string
  /** With --kubernetes-api: its own cgroup below the pod's, as containerd makes it (cri-containerd-<id>.scope); else absent (the pod's). */
  readonly cgroup?: string | null
  readonly argv: readonly string[]
  readonly env: Readonly<Record<string, string>>
  readonly workingDir: string
  readonly ports: readonly number[]
  readonly log: string
}

export interface PlanPod {
  readonly namespace: string
  readonly name: string
  readonly uid: string
  readonly node: string
  readonly netns: string
  readonly cgroup: string
  /** The pod's eth0 peer, in the node's namespace. */
  readonly hostVeth: string
  readonly ipv4: string
  readonly ipv6: string
  readonly hostname: string
  readonly graceSeconds: number
  readonly containers: readonly PlanContainer[]
  /**
   * With --kubernetes-api: the cgroup of the pod's sandbox process (the "pause"
   * container, which holds the network namespace from before the containers start to
   * after they end), cri-containerd-<id>.scope below the pod's; else absent.
   */
  readonly sandboxCgroup?: string | null
}

/**
 * The lab's stand-in API server (`ferry lab api-server`), in the underlay namespace on the
 * controller's underlay address, serving the lab's objects to agents run with
 * --kubernetes --kubeconfig.
 */
export interface PlanKubernetesApi {
  readonly address: string
  readonly port: number
  readonly cgroup: string
  /** The kubeconfig the agents use (server, token), mode 0600. */
  readonly kubeconfig: string
  /** The bearer token the server requires, mode 0600. */
  readonly tokenFile: string
  readonly log: string
}

export interface PlanService {
  readonly namespace: string
  readonly name: string
  readonly headless: boolean
  /** Primary first, like spec.clusterIPs. Empty when headless. */
  readonly clusterIPs: readonly string[]
  readonly ipFamilies: readonly IPFamily[]
}

export interface LabPlan {
  readonly name: string
  readonly mesh: boolean
  readonly paths: PlanPaths
  readonly stateDir: string
  readonly stateFile: string
  readonly clusterFile: string
  readonly logsDir: string
  readonly cgroupRoot: string
  readonly underlay: { readonly netns: string, readonly bridge: string }
  readonly nodes: readonly PlanNode[]
  readonly pods: readonly PlanPod[]
  readonly services: readonly PlanService[]
  /** With the mesh: the lab's CA. Null without the mesh (and in state files from before it existed). */
  readonly controller?: PlanController | null
  /** With --kubernetes-api: the lab's list + watch server; else null or absent. */
  readonly kubernetesApi?: PlanKubernetesApi | null
  /** false: the agents run with --sockmap off; absent or true: on. */
  readonly sockmap?: boolean
  /** The agents' --workers; absent: the agent's default. */
  readonly workers?: number
  /** The agents' --drain-grace; absent: the agent's default. */
  readonly drainGraceMs?: number
  /** The agents' tracing flags; absent: tracing off. */
  readonly tracing?: LabTracing
  /** With the mesh: the bearer token that opens the agents' /debug/* (--admin-token-file), mode 0600; null or absent otherwise. */
  readonly adminTokenFile?: string | null
}

export const UNDERLAY_BRIDGE = 'br0'
export const LAB_TRUST_DOMAIN = 'cluster.local'
/** The controller's CA_FILES (src/controller/ca-store.ts; a test keeps them equal, without loading the CA here). */
export const CA_ROOT_CERT_FILE = 'root-cert.pem'
export const CA_ROOT_KEY_FILE = 'root-key.pem'
/** A cgroup name no node can have (node names are DNS subdomains: no '_'). */
export const CONTROLLER_CGROUP = 'ferry_controller'
export const API_SERVER_CGROUP = 'ferry_apiserver'
/** kube-apiserver's secure port; the lab's server speaks plain HTTP on it, inside the underlay. */
export const API_SERVER_PORT = 6443

export const POD_IFNAME = 'eth0'
export const NODE_UPLINK = 'eth0'
/** Below the node's cgroup, beside kubepods.slice and the agent's. */
export const KUBELET_CGROUP = 'kubelet'
/** The network name of every node's conflist, and the type of its first plugin: the lab's own primary, never executed. */
export const LAB_CNI_NETWORK = 'ferry-lab'
export const LAB_CNI_PRIMARY = 'ferry-lab-primary'
export const LAB_CONFLIST = '10-ferry-lab.conflist'

export function planLab (spec: LabSpec, opts: PlanOptions): LabPlan {
  const { name, paths } = opts
  const newUid = opts.newUid ?? randomUUID
  const stateDir = join(paths.labStateDir, name)
  const logsDir = join(stateDir, 'logs')
  const tokensDir = join(stateDir, 'tokens')
  const cgroupRoot = join(paths.cgroup2, cgroupRootName(name))

  const netnsNames = allocateNetnsNames(name, [
    ...spec.nodes.map((n) => ({ id: `node/${n.name}`, readable: n.name })),
    ...spec.pods.map((p) => ({ id: `pod/${p.namespace}/${p.name}`, readable: `${p.namespace}-${p.name}` }))
  ])

  const nodes: PlanNode[] = spec.nodes.map((n, i) => {
    const index = i + 1
    const ips = nodeUnderlayIPs(index)
    const cidrs = nodePodCIDRs(index)
    const cgroup = join(cgroupRoot, n.name)
    const node: Omit<PlanNode, 'cni'> = {
      name: n.name,
      index,
      netns: netnsNames.get(`node/${n.name}`) as string,
      ipv4: ips.v4,
      ipv6: ips.v6,
      podCIDRv4: cidrs.v4,
      podCIDRv6: cidrs.v6,
      underlayPeer: `vn${index}`,
      routes: spec.nodes.flatMap((_, j) => {
        if (j === i) return []
        const them = nodeUnderlayIPs(j + 1)
        const theirs = nodePodCIDRs(j + 1)
        return [{ cidr: theirs.v4, via: them.v4 }, { cidr: theirs.v6, via: them.v6 }]
      }),
      cgroup,
      podsCgroup: join(cgroup, 'kubepods.slice', 'kubepods-besteffort.slice'),
      agentCgroup: join(cgroup, 'ferry-agent'),
      kubeletCgroup: join(cgroup, KUBELET_CGROUP),
      kubeletLog: join(logsDir, `kubelet-${n.name}.log`),
      pinRoot: join(paths.bpffs, pinDirName(name, n.name)),
      agentLog: join(logsDir, `node-${n.name}.log`),
      caTokenFile: opts.mesh ? join(tokensDir, `${n.name}.token`) : null
    }
    const ferryCni = opts.mesh && opts.ferryCniPlugin !== undefined
      ? {
          socket: join(stateDir, 'cni', n.name, 'agent.sock'),
          stateFile: join(stateDir, 'cni', n.name, 'cni-state.json'),
          log: join(logsDir, `ferry-cni-${n.name}.log`),
          timeoutMs: FERRY_CNI_TIMEOUT_MS
        }
      : null
    const chained = [...(opts.cniPlugins ?? []), ...(ferryCni === null ? [] : [ferryCniPlugin(opts.ferryCniPlugin as string, ferryCni)])]
    return { ...node, cni: planNodeCni(stateDir, logsDir, node, chained), ferryCni }
  })
  const nodeByName = new Map(nodes.map((n) => [n.name, n]))

  const nextHost = new Map<string, number>()
  const pods: PlanPod[] = spec.pods.map((p) => {
    const node = nodeByName.get(p.nodeName)
    if (node === undefined) throw new Error(`pod ${p.namespace}/${p.name}: unknown node ${p.nodeName}`) // the manifest stage rules this out
    const host = nextHost.get(node.name) ?? FIRST_POD_HOST
    nextHost.set(node.name, host + 1)
    return planPod(p, node, host, newUid(), netnsNames.get(`pod/${p.namespace}/${p.name}`) as string, logsDir, opts.kubernetesApi === true)
  })

  // Asked-for addresses first, then the rest in a stable order, so the same manifests
  // give the same addresses every time.
  const services = planServices(spec.services, [])

  const dataDir = join(stateDir, 'ca')
  const controller: PlanController | null = !opts.mesh
    ? null
    : {
        address: CONTROLLER_UNDERLAY_IP,
        port: PORTS.ca,
        trustDomain: LAB_TRUST_DOMAIN,
        certTtlMs: opts.certTtlMs ?? CERT_TTL.defaultMs,
        cgroup: join(cgroupRoot, CONTROLLER_CGROUP),
        dataDir,
        rootCert: join(dataDir, CA_ROOT_CERT_FILE),
        tokensFile: join(tokensDir, 'lab-nodes.json'),
        log: join(logsDir, 'controller.log')
      }

  const kubernetesApi: PlanKubernetesApi | null = opts.kubernetesApi !== true || !opts.mesh
    ? null
    : {
        address: CONTROLLER_UNDERLAY_IP,
        port: API_SERVER_PORT,
        cgroup: join(cgroupRoot, API_SERVER_CGROUP),
        kubeconfig: join(tokensDir, 'kubeconfig'),
        tokenFile: join(tokensDir, 'api-server.token'),
        log: join(logsDir, 'api-server.log')
      }

  return {
    name,
    mesh: opts.mesh,
    paths,
    stateDir,
    stateFile: join(stateDir, 'state.json'),
    clusterFile: join(stateDir, 'cluster.json'),
    logsDir,
    cgroupRoot,
    underlay: { netns: underlayNetnsName(name), bridge: UNDERLAY_BRIDGE },
    nodes,
    pods,
    services,
    controller,
    kubernetesApi,
    ...(opts.sockmap === false ? { sockmap: false } : {}),
    ...(opts.workers === undefined ? {} : { workers: opts.workers }),
    ...(opts.drainGraceMs === undefined ? {} : { drainGraceMs: opts.drainGraceMs }),
    ...(opts.tracing === undefined ? {} : { tracing: opts.tracing }),
    adminTokenFile: opts.mesh ? join(tokensDir, 'admin.token') : null
  }
}

/** Ferry's entry, as `ferry cni install` writes it on a node (src/cni/entry.ts), with the lab's paths. */
function ferryCniPlugin (path: string, s: FerryCniSettings): CniPluginOption {
  return {
    path,
    type: 'ferry-cni',
    config: { agentSocket: s.socket, stateFile: s.stateFile, timeoutMs: s.timeoutMs, logFile: s.log, capabilities: { 'io.kubernetes.cri.pod-annotations': true } }
  }
}

function planNodeCni (stateDir: string, logsDir: string, node: Omit<PlanNode, 'cni'>, chained: readonly CniPluginOption[]): PlanNodeCni {
  const dir = join(stateDir, 'cni', node.name)
  const confDir = join(dir, 'net.d')
  return {
    confDir,
    conflist: join(confDir, LAB_CONFLIST),
    binDir: join(dir, 'bin'),
    resultsDir: join(dir, 'results'),
    log: join(logsDir, `cni-${node.name}.log`),
    plugins: chained.map((o) => ({
      type: o.type ?? basename(o.path).replace(/\.[^.]*$/, ''),
      path: o.path,
      config: typeof o.config === 'function' ? o.config(node) : (o.config ?? {})
    }))
  }
}

/** One pod's place: addresses from its node's host number, names, cgroups, processes. Pure. */
export function planPod (p: LabPod, node: PlanNode, host: number, uid: string, netns: string, logsDir: string, kubernetesApi: boolean): PlanPod {
  const ips = podIPs(node.index, host)
  const podCgroup = join(node.podsCgroup, `kubepods-besteffort-pod${uid.replace(/-/g, '_')}.slice`)
  const facts = { uid, podIPs: [ips.v4, ips.v6], hostIPs: [node.ipv4, node.ipv6] }
  return {
    namespace: p.namespace,
    name: p.name,
    uid,
    node: node.name,
    netns,
    cgroup: podCgroup,
    ...(kubernetesApi ? { sandboxCgroup: join(podCgroup, containerScope(uid, '')) } : {}),
    hostVeth: `vp${host}`,
    ipv4: ips.v4,
    ipv6: ips.v6,
    hostname: p.hostname,
    graceSeconds: p.terminationGracePeriodSeconds,
    containers: p.containers.map((c) => {
      const { env, argv } = resolveContainer(p, c, facts)
      return {
        name: c.name,
        ...(kubernetesApi ? { cgroup: join(podCgroup, containerScope(uid, c.name)) } : {}),
        argv,
        env,
        workingDir: c.workingDir,
        ports: c.ports.map((port) => port.containerPort),
        log: join(logsDir, `${p.namespace}_${p.name}_${c.name}.log`)
      }
    })
  }
}

/**
 * Cluster IPs for `services`: asked-for addresses first, then the rest in a stable order,
 * so the same manifests give the same addresses every time; `existing` are taken.
 */
export function planServices (services: readonly LabService[], existing: readonly PlanService[]): PlanService[] {
  const alloc = new ServiceIPAllocator()
  for (const s of existing) for (const ip of s.clusterIPs) alloc.reserve(ip)
  for (const s of services) for (const ip of Object.values(s.requestedClusterIPs)) alloc.reserve(ip)
  const order = [...services].sort((a, b) => `${a.namespace}/${a.name}`.localeCompare(`${b.namespace}/${b.name}`))
  const vips = new Map<string, string[]>()
  for (const s of order) {
    if (s.headless) continue
    vips.set(`${s.namespace}/${s.name}`, s.ipFamilies.map((f) => s.requestedClusterIPs[f] ?? alloc.allocate(f)))
  }
  return services.map((s) => ({
    namespace: s.namespace,
    name: s.name,
    headless: s.headless,
    clusterIPs: vips.get(`${s.namespace}/${s.name}`) ?? [],
    ipFamilies: s.ipFamilies
  }))
}

/**
 * Places for pods added to a running lab (`ferry lab apply`): the next free host number
 * on each pod's node (after the highest in use, else the lowest free), a network
 * namespace name no other object of the lab has, a fresh uid. Pure, like planLab.
 */
export function planPodAdditions (plan: LabPlan, pods: readonly LabPod[], newUid: () => string = randomUUID): PlanPod[] {
  const used = new Map<string, Set<number>>()
  for (const p of plan.pods) {
    const set = used.get(p.node) ?? new Set<number>()
    set.add(Number(p.ipv4.split('.')[3]))
    used.set(p.node, set)
  }
  const taken = new Set([plan.underlay.netns, ...plan.nodes.map((n) => n.netns), ...plan.pods.map((p) => p.netns)])
  const kubernetesApi = plan.kubernetesApi != null
  return pods.map((p) => {
    const node = plan.nodes.find((n) => n.name === p.nodeName)
    if (node === undefined) throw new Error(`pod ${p.namespace}/${p.name}: unknown node ${p.nodeName}`) // the manifest stage rules this out
    const hosts = used.get(node.name) ?? new Set<number>()
    const host = nextHostNumber(hosts)
    if (host === null) throw new RangeError(`node ${node.name} has room for ${MAX_PODS_PER_NODE} pods`)
    hosts.add(host)
    used.set(node.name, hosts)
    const netns = additionalNetnsName(plan.name, `pod/${p.namespace}/${p.name}`, `${p.namespace}-${p.name}`, taken)
    taken.add(netns)
    return planPod(p, node, host, newUid(), netns, plan.logsDir, kubernetesApi)
  })
}

function nextHostNumber (used: ReadonlySet<number>): number | null {
  const last = FIRST_POD_HOST + MAX_PODS_PER_NODE - 1
  const max = Math.max(FIRST_POD_HOST - 1, ...used)
  if (max < last) return max + 1
  for (let h = FIRST_POD_HOST; h <= last; h++) if (!used.has(h)) return h
  return null
}

/** containerd's systemd scope of a container (the sandbox: name ""), named after its id. */
export function containerScope (uid: string, container: string): string {
  return `cri-containerd-${containerId(uid, container)}.scope`
}

/** A stable 64-hex id of a pod's container (the sandbox: name ""), from the pod's uid and the name, as containerd's ids look. */
export function containerId (uid: string, container: string): string {
  return createHash('sha256').update(`${uid}/${container}`).digest('hex')
}

export function netnsPath (paths: Pick<PlanPaths, 'netnsDir'>, netns: string): string {
  return join(paths.netnsDir, netns)
}

export function etcNetnsDir (paths: Pick<PlanPaths, 'etcNetnsDir'>, netns: string): string {
  return join(paths.etcNetnsDir, netns)
}
