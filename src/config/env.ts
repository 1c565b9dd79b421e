import { existsSync } from 'node:fs'

// Every port, path and environment variable Ferry uses, in one place.
// Ports follow Istio's numbering where a peer exists, so operators recognise them.

export const PORTS = Object.freeze({
  /** Per-pod outbound listener, inside the pod's netns, on 127.0.0.1 and [::1]. */
  outbound: 15001,
  /** Per-pod inbound listener, inside the pod's netns, on 127.0.0.1 and [::1] (reached via sk_lookup). */
  inbound: 15006,
  /** HBONE mTLS tunnel, in the node netns. */
  tunnel: 15008,
  /** Agent admin: Prometheus /metrics and debug endpoints, in the node's netns. */
  admin: 15020,
  /** Agent readiness: /healthz/ready, in the node's netns. */
  ready: 15021,
  /** Controller certificate authority (gRPC over TLS), as istiod's 15012. */
  ca: 15012
})

export const PATHS = Object.freeze({
  bpffs: '/sys/fs/bpf',
  /** Default pin root of an agent on a real node; the lab gives each node its own. */
  pinRoot: '/sys/fs/bpf/ferry',
  cgroup2: process.env.FERRY_CGROUP2_ROOT ?? detectCgroup2Root(),
  netnsDir: '/var/run/netns',
  /** The running kernel's BTF, checked for what the sockmap shortcut reads (src/capture/sk-msg-fields.ts); FERRY_KERNEL_BTF where a node keeps it elsewhere. */
  kernelBtf: process.env.FERRY_KERNEL_BTF ?? '/sys/kernel/btf/vmlinux',
  /** The ferry-cni plugin's files on a node (docs/install.md): a hostPath shared by the plugin and the agent. */
  cniRunDir: '/var/run/ferry',
  cniSocket: '/var/run/ferry/cni.sock',
  cniStateFile: '/var/run/ferry/cni-state.json',
  cniLogFile: '/var/run/ferry/cni.log',
  /** Where container runtimes look for CNI configurations and plugins. */
  cniConfDir: '/etc/cni/net.d',
  cniBinDir: '/opt/cni/bin',
  /** The agent's state on a real node (a hostPath of daemonset/base/agent.yaml): its saved configuration. */
  agentStateDir: '/var/lib/ferry',
  labStateDir: process.env.FERRY_LAB_STATE_DIR ?? '/var/run/ferry/labs'
})

/** Environment variables Ferry reads. Anything else is not configuration. */
export const ENV = Object.freeze({
  logLevel: process.env.FERRY_LOG_LEVEL ?? 'info',
  /** Comma-separated trace channels, e.g. "proxy,capture" (see src/telemetry/trace.ts). */
  trace: process.env.FERRY_TRACE ?? '',
  /**
   * The lab's agents' --workers when `ferry lab up` is not given one (src/lab/up.ts; unset
   * or empty: the agent's own default). `npm run test:workers-1` sets it to 1: the tests'
   * labs then run their agents' data path on the main thread.
   */
  labWorkers: process.env.FERRY_LAB_WORKERS ?? ''
})

/**
 * The V8 young generation of the agent's threads. V8 grows a thread's two semi-spaces up
 * to 16 MiB each (a 48 MiB young generation) as start-up's long-lived objects survive
 * its scavenges, and an idle agent keeps them: 32 MiB of RSS in the main thread and 16 in
 * each worker, mostly garbage. Capped at 2 MiB each (6 MiB young generations), the agent
 * scavenges more often under load; docs/architecture.md ("Memory") has the figures.
 */
const SEMI_SPACE_MB = 2
export const HEAP = Object.freeze({
  /** A worker thread's resourceLimits.maxYoungGenerationSizeMb: V8's young generation is three semi-spaces (two, and the new large-object space). */
  workerYoungGenerationMb: 3 * SEMI_SPACE_MB,
  /** NODE_OPTIONS for the process that runs `ferry agent` (the main thread's limit): the lab's agents and the DaemonSet's container (daemonset/base/agent.yaml). */
  agentNodeOptions: `--max-semi-space-size=${SEMI_SPACE_MB}`
})

function detectCgroup2Root (): string {
  // Hybrid hosts (like this one) mount cgroup2 at /sys/fs/cgroup/unified; unified
  // hosts mount it at /sys/fs/cgroup. Decided once, at start-up.
  return existsSync('/sys/fs/cgroup/unified/cgroup.procs') ? '/sys/fs/cgroup/unified' : '/sys/fs/cgroup'
}
